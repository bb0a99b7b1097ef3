//! `kura api`: one signed call to a kura server — any AWS Secrets Manager operation or one of
//! kura's `Kura.*` extensions, which the AWS CLI cannot send.

use std::path::{Path, PathBuf};

use kura_iam::sigv4;

pub struct ApiArgs {
    pub endpoint: String,
    pub credentials: Option<PathBuf>,
    pub region: String,
    pub operation: String,
    pub body: Option<String>,
}

struct Credentials {
    access_key_id: String,
    secret_access_key: zeroize::Zeroizing<String>,
}

/// `[default]` profile of an AWS shared-credentials file.
fn read_credentials_file(path: &Path) -> Result<Credentials, String> {
    let text = std::fs::read_to_string(path)
        .map(zeroize::Zeroizing::new)
        .map_err(|e| format!("cannot read credentials file {}: {e}", path.display()))?;
    let mut in_default = false;
    let (mut id, mut secret) = (None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_default = line == "[default]";
        } else if in_default && let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_string()),
                "aws_secret_access_key" => {
                    secret = Some(zeroize::Zeroizing::new(v.trim().to_string()))
                }
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
            access_key_id,
            secret_access_key,
        }),
        _ => Err(format!(
            "{} has no [default] profile with aws_access_key_id and aws_secret_access_key",
            path.display()
        )),
    }
}

/// `--credentials`, else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else AWS_SHARED_CREDENTIALS_FILE,
/// else the root credentials of `./kura-data`.
fn credentials(explicit: Option<&Path>) -> Result<Credentials, String> {
    if let Some(p) = explicit {
        return read_credentials_file(p);
    }
    if let (Ok(id), Ok(secret)) = (
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Credentials {
            access_key_id: id,
            secret_access_key: zeroize::Zeroizing::new(secret),
        });
    }
    let file = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("./kura-data/root-credentials"));
    read_credentials_file(&file)
}

/// The HTTP client: when `AWS_CA_BUNDLE` names a PEM file, it trusts the certificates in it
/// and no others (as the AWS CLI does); else the system's roots.
pub(crate) fn http_client() -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder();
    if let Some(path) = std::env::var_os("AWS_CA_BUNDLE").filter(|p| !p.is_empty()) {
        let shown = Path::new(&path).display().to_string();
        let pem =
            std::fs::read(&path).map_err(|e| format!("cannot read AWS_CA_BUNDLE {shown}: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("AWS_CA_BUNDLE {shown} is not a PEM bundle: {e}"))?;
        if certs.is_empty() {
            return Err(format!(
                "AWS_CA_BUNDLE {shown} holds no PEM CERTIFICATE block"
            ));
        }
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// Runs the call; prints the answer (pretty JSON) on stdout, or the error on stderr.
pub async fn run(args: ApiArgs) -> Result<(), String> {
    let target = if args.operation.contains('.') {
        args.operation.clone()
    } else {
        format!("secretsmanager.{}", args.operation)
    };
    let body = match args.body.as_deref() {
        None => "{}".to_string(),
        Some("-") => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| format!("cannot read the body from stdin: {e}"))?;
            s
        }
        Some(b) => b.to_string(),
    };
    serde_json::from_str::<serde_json::Value>(&body)
        .map_err(|e| format!("the request body is not JSON: {e}"))?;
    let json = call(
        &args.endpoint,
        args.credentials.as_deref(),
        &args.region,
        &target,
        body,
    )
    .await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json).unwrap_or_default()
    );
    Ok(())
}

/// One signed call (`target` as in `X-Amz-Target`); the answer's JSON, or the error as
/// `Code: message`.
pub async fn call(
    endpoint: &str,
    credentials_file: Option<&Path>,
    region: &str,
    target: &str,
    body: String,
) -> Result<serde_json::Value, String> {
    let creds = credentials(credentials_file)?;
    let url = reqwest::Url::parse(endpoint)
        .map_err(|e| format!("--endpoint {endpoint:?} is not a URL: {e}"))?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => return Err(format!("--endpoint {endpoint:?} has no host")),
    };
    let headers = sigv4::json_call_headers(
        &host,
        target,
        body.as_bytes(),
        &creds.access_key_id,
        &creds.secret_access_key,
        region,
        chrono::Utc::now(),
    )
    .map_err(|e| format!("cannot sign the request: {e}"))?;
    let mut request = http_client()?.post(url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let resp = request
        .body(body)
        .send()
        .await
        .map_err(|e| format!("cannot reach {endpoint}: {e}"))?;
    answer(resp).await
}

/// A kura answer as JSON; an error answer as `Code: message`.
pub async fn answer(resp: reqwest::Response) -> Result<serde_json::Value, String> {
    let ok = resp.status().is_success();
    let text = resp
        .text()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    if ok {
        Ok(json)
    } else {
        Err(format!(
            "{}: {}",
            json["__type"].as_str().unwrap_or("error"),
            json["message"].as_str().unwrap_or("(no message)")
        ))
    }
}
