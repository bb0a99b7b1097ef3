//! A tiny HTTP/1.1 receiver for webhooks and notifications, and a check of kura's
//! `kura-signature` on what it receives.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long `Receiver::wait_until` waits for a request.
const RECEIVE_WAIT: Duration = Duration::from_secs(20);

#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Lower-cased names.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {:?}", self.body))
    }
}

pub type Reply = Pin<Box<dyn Future<Output = u16> + Send>>;
pub type Handler = Arc<dyn Fn(Received) -> Reply + Send + Sync>;

/// An HTTP/1.1 server on 127.0.0.1 that records every request and answers with the status the
/// handler returns (no body, `connection: close`).
pub struct Receiver {
    pub url: String,
    requests: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(handler: Handler) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (log, handler) = (log.clone(), handler.clone());
                tokio::spawn(async move {
                    let _ = serve_one(stream, log, handler).await;
                });
            }
        });
        Receiver {
            url,
            requests,
            task,
        }
    }

    /// A receiver that always answers `status`.
    pub async fn always(status: u16) -> Receiver {
        Receiver::start(Arc::new(move |_| Box::pin(async move { status }))).await
    }

    pub fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.requests().iter().map(Received::json).collect()
    }

    /// Polls until a request satisfies `pred`, then returns all requests so far.
    pub async fn wait_until(
        &self,
        what: &str,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + RECEIVE_WAIT;
        loop {
            let all = self.requests();
            if pred(&all) {
                return all;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver did not get {what} within {RECEIVE_WAIT:?}; it got {all:#?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve_one(
    mut stream: tokio::net::TcpStream,
    log: Arc<Mutex<Vec<Received>>>,
    handler: Handler,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_string();
    let path = request_line.next().unwrap_or("").to_string();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    let request = Received {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    log.lock().unwrap().push(request.clone());
    let status = handler(request).await;
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        500 => "Internal Server Error",
        _ => "Status",
    };
    stream
        .write_all(
            format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    stream.shutdown().await
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    use aws_lc_rs::hmac;
    hex(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message).as_ref())
}

/// Checks `kura-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` and
/// returns `t`.
pub fn check_signature(secret: &str, request: &Received) -> Result<i64, String> {
    let header = request
        .header("kura-signature")
        .ok_or_else(|| format!("no kura-signature header in {request:?}"))?;
    let (mut t, mut v1) = (None, None);
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {
                return Err(format!(
                    "unexpected part {part:?} in kura-signature {header:?}"
                ));
            }
        }
    }
    let t = t.ok_or_else(|| format!("no t= in kura-signature {header:?}"))?;
    let v1 = v1.ok_or_else(|| format!("no v1= in kura-signature {header:?}"))?;
    let t_secs: i64 = t
        .parse()
        .map_err(|_| format!("t={t:?} in kura-signature is not unix seconds"))?;
    let expected = hmac_sha256_hex(
        secret.as_bytes(),
        format!("{t}.{}", request.body).as_bytes(),
    );
    if v1 != expected {
        return Err(format!(
            "kura-signature {header:?} does not match HMAC-SHA256 of \"<t>.<body>\" (expected v1={expected})"
        ));
    }
    Ok(t_secs)
}

pub fn sdk_error<E, R>(e: aws_sdk_secretsmanager::error::SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    format!("{}", DisplayErrorContext(&e))
}

/// The work of an AWS rotation Lambda at one step, done by a test's webhook with `client`'s
/// credentials, with a deterministic new value (`webhook-password-TOKEN`).
pub async fn lambda_step(
    client: &aws_sdk_secretsmanager::Client,
    request: &Received,
) -> Result<(), String> {
    let event = request.json();
    let (Some(step), Some(arn), Some(token)) = (
        event["Step"].as_str(),
        event["SecretId"].as_str(),
        event["ClientRequestToken"].as_str(),
    ) else {
        return Err(format!("incomplete event {event}"));
    };
    match step {
        "createSecret" => {
            let existing = client
                .get_secret_value()
                .secret_id(arn)
                .version_id(token)
                .version_stage("AWSPENDING")
                .send()
                .await;
            match existing {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("ResourceNotFoundException") => client
                    .put_secret_value()
                    .secret_id(arn)
                    .client_request_token(token)
                    .secret_string(format!("webhook-password-{token}"))
                    .version_stages("AWSPENDING")
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(sdk_error),
                Err(e) => Err(sdk_error(e)),
            }
        }
        "setSecret" | "testSecret" => Ok(()),
        "finishSecret" => {
            let d = client
                .describe_secret()
                .secret_id(arn)
                .send()
                .await
                .map_err(sdk_error)?;
            let current = d
                .version_ids_to_stages()
                .into_iter()
                .flatten()
                .find(|(_, labels)| labels.iter().any(|l| l == "AWSCURRENT"))
                .map(|(id, _)| id.clone());
            if current.as_deref() == Some(token) {
                return Ok(());
            }
            client
                .update_secret_version_stage()
                .secret_id(arn)
                .version_stage("AWSCURRENT")
                .move_to_version_id(token)
                .set_remove_from_version_id(current)
                .send()
                .await
                .map(|_| ())
                .map_err(sdk_error)
        }
        other => Err(format!("unknown step {other:?}")),
    }
}
