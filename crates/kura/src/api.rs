//! `kura api`: one signed call to a kura server — any AWS Secrets Manager operation or one of
//! kura's `Kura.*` extensions, which the AWS CLI cannot send.

use std::path::Path;

use crate::client::{Client, ClientError, ConnectOptions};

pub use crate::client::http_client;

/// An error as `kura api` and `kura operator` print it: `Code: message` for a server's.
pub fn error_text(e: &ClientError) -> String {
    match e {
        ClientError::Api { code, message, .. } => format!("{code}: {message}"),
        ClientError::Usage(m)
        | ClientError::Unreachable(m)
        | ClientError::Other(m)
        | ClientError::Child(_, m) => m.clone(),
    }
}

/// Runs the call; prints the answer (pretty JSON) on stdout.
pub async fn run(
    connect: &ConnectOptions,
    operation: &str,
    body: Option<String>,
) -> Result<(), ClientError> {
    let target = if operation.contains('.') {
        operation.to_string()
    } else {
        format!("secretsmanager.{operation}")
    };
    let body = match body.as_deref() {
        None => "{}".to_string(),
        Some("-") => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| ClientError::Usage(format!("cannot read the body from stdin: {e}")))?;
            s
        }
        Some(b) => b.to_string(),
    };
    serde_json::from_str::<serde_json::Value>(&body)
        .map_err(|e| ClientError::Usage(format!("the request body is not JSON: {e}")))?;
    let client = Client::connect(connect)?;
    let json = client.call_raw(&target, body).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json).unwrap_or_default()
    );
    Ok(())
}

/// One signed call (`target` as in `X-Amz-Target`) to `endpoint`; the answer's JSON, or the
/// error as `Code: message`.
pub async fn call(
    endpoint: &str,
    credentials_file: Option<&Path>,
    region: &str,
    target: &str,
    body: String,
) -> Result<serde_json::Value, String> {
    let opts = ConnectOptions {
        endpoint: Some(endpoint.to_string()),
        region: Some(region.to_string()),
        credentials_file: credentials_file.map(Path::to_path_buf),
        profile: None,
    };
    let client = Client::connect(&opts).map_err(|e| error_text(&e))?;
    client
        .call_raw(target, body)
        .await
        .map_err(|e| error_text(&e))
}

/// A kura answer as JSON; an error answer as `Code: message`.
pub async fn answer(resp: reqwest::Response) -> Result<serde_json::Value, String> {
    crate::client::answer(resp)
        .await
        .map_err(|e| error_text(&e))
}
