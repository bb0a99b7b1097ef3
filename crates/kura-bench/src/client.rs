//! The load generator's HTTP client: one keep-alive HTTP/1.1 connection per worker, each
//! request signed with SigV4 by kura's own signer, exactly as an AWS SDK would sign it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::StatusCode;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use kura_iam::sigv4::{self, SigningKey};
use tokio::net::TcpStream;

pub const REGION: &str = "us-east-1";
pub const SERVICE: &str = "secretsmanager";
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// What the AWS SDKs sign for a JSON-protocol service (less their user-agent header).
const SIGNED_HEADERS: [&str; 4] = ["content-type", "host", "x-amz-date", "x-amz-target"];
/// No single request may hold a worker longer than this, so every loop ends.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An access key pair, as kura writes it into `DATA_DIR/root-credentials`.
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Credentials {
    /// Reads the `[default]` profile of an AWS-style INI credentials file.
    pub fn from_file(path: &Path) -> Result<Credentials, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let (mut id, mut secret) = (None, None);
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_string()),
                "aws_secret_access_key" => secret = Some(v.trim().to_string()),
                _ => {}
            }
        }
        match (id, secret) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
                access_key_id,
                secret_access_key,
            }),
            _ => Err(format!("{} has no access key pair", path.display())),
        }
    }
}

/// Signs requests for one host. The derived key is cached per day, as the SDKs do; the
/// canonical request, string to sign and HMAC are computed for every request.
pub struct Signer {
    creds: Arc<Credentials>,
    host: String,
    signed_headers: Vec<String>,
    signed_list: String,
    day_key: Option<(String, Arc<SigningKey>)>,
}

pub struct Signature {
    pub amz_date: String,
    pub authorization: String,
}

impl Signer {
    pub fn new(creds: Arc<Credentials>, host: String) -> Signer {
        Signer {
            creds,
            host,
            signed_headers: SIGNED_HEADERS.iter().map(|h| h.to_string()).collect(),
            signed_list: SIGNED_HEADERS.join(";"),
            day_key: None,
        }
    }

    fn key(&mut self, day: &str) -> Arc<SigningKey> {
        match &self.day_key {
            Some((d, k)) if d == day => k.clone(),
            _ => {
                let k = Arc::new(sigv4::derive_signing_key(
                    &self.creds.secret_access_key,
                    day,
                    REGION,
                    SERVICE,
                ));
                self.day_key = Some((day.to_string(), k.clone()));
                k
            }
        }
    }

    pub fn sign(&mut self, target: &str, body: &[u8]) -> Result<Signature, String> {
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let day = &amz_date[..8];
        let headers = [
            ("content-type", JSON_CONTENT_TYPE),
            ("host", self.host.as_str()),
            ("x-amz-date", amz_date.as_str()),
            ("x-amz-target", target),
        ];
        let request = sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body,
        };
        let creq = sigv4::canonical_request(&request, &self.signed_headers)
            .map_err(|e| format!("canonical request: {e}"))?;
        let scope = format!("{day}/{REGION}/{SERVICE}/aws4_request");
        let sts = sigv4::string_to_sign(&amz_date, &scope, &creq);
        let signature = self.key(day).sign(&sts);
        let authorization = format!(
            "{} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
            sigv4::ALGORITHM,
            self.creds.access_key_id,
            self.signed_list
        );
        Ok(Signature {
            amz_date,
            authorization,
        })
    }
}

/// One HTTP/1.1 keep-alive connection, re-opened only if the server closes it.
pub struct Conn {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Connections opened after the first one (0 when keep-alive holds).
    pub reconnects: u64,
    opened: bool,
}

async fn handshake<B>(addr: SocketAddr) -> Result<SendRequest<B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            sender: None,
            reconnects: 0,
            opened: false,
        }
    }

    pub async fn connect(&mut self) -> Result<(), String> {
        if self.sender.as_ref().is_some_and(|s| !s.is_closed()) {
            return Ok(());
        }
        self.sender = Some(handshake(self.addr).await?);
        if self.opened {
            self.reconnects += 1;
        }
        self.opened = true;
        Ok(())
    }

    async fn send(
        &mut self,
        req: hyper::Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), String> {
        self.connect().await?;
        let sender = self.sender.as_mut().ok_or("no connection")?;
        let exchange = async {
            sender
                .ready()
                .await
                .map_err(|e| format!("connection: {e}"))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("response body: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        let result = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
        };
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}

/// A signing client for `POST /` with `X-Amz-Target`.
pub struct Client {
    pub conn: Conn,
    signer: Signer,
    host: String,
}

impl Client {
    pub fn new(addr: SocketAddr, creds: Arc<Credentials>) -> Client {
        let host = addr.to_string();
        Client {
            conn: Conn::new(addr),
            signer: Signer::new(creds, host.clone()),
            host,
        }
    }

    /// Sends `body` to `target` (e.g. `secretsmanager.GetSecretValue`) and returns the answer.
    pub async fn call(&mut self, target: &str, body: Bytes) -> Result<(StatusCode, Bytes), String> {
        let sig = self.signer.sign(target, &body)?;
        let req = hyper::Request::post("/")
            .header(HOST, self.host.as_str())
            .header(CONTENT_TYPE, JSON_CONTENT_TYPE)
            .header("x-amz-date", sig.amz_date)
            .header("x-amz-target", target)
            .header(AUTHORIZATION, sig.authorization)
            .body(Full::new(body))
            .map_err(|e| format!("building the request: {e}"))?;
        self.conn.send(req).await
    }

    /// Like [`Client::call`], but anything other than 200 is an error carrying the body.
    pub async fn call_ok(&mut self, target: &str, body: Bytes) -> Result<Bytes, String> {
        match self.call(target, body).await? {
            (StatusCode::OK, b) => Ok(b),
            (status, b) => Err(format!(
                "{target}: {status}: {}",
                String::from_utf8_lossy(&b)
            )),
        }
    }
}

/// `GET /health` on a fresh connection: true on 200, false on anything else or no answer.
pub async fn health_ok(addr: SocketAddr) -> bool {
    let attempt = async {
        let mut sender = handshake::<Empty<Bytes>>(addr).await.ok()?;
        let req = hyper::Request::get("/health")
            .header(HOST, addr.to_string())
            .body(Empty::new())
            .ok()?;
        let resp = sender.send_request(req).await.ok()?;
        Some(resp.status() == StatusCode::OK)
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
