//! The ceiling: a bare axum server in the bench's own process, on the same tokio/hyper
//! stack as kura, answering every `POST /` with a constant body. Driving it with the same
//! client and signing work shows what the machine, the loopback and the load generator
//! allow before kura does any work of its own.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;

use crate::client::JSON_CONTENT_TYPE;

/// About the size of a real GetSecretValue answer with a 64-character value.
const BODY: &str = concat!(
    r#"{"ARN":"arn:aws:secretsmanager:us-east-1:000000000000:secret:bench-00000000-AbCdEf","#,
    r#""Name":"bench-00000000","VersionId":"00000000-0000-4000-a000-000000000000","#,
    r#""SecretString":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","#,
    r#""VersionStages":["AWSCURRENT"],"CreatedDate":1700000000.0}"#
);

async fn answer(_body: Bytes) -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    ([(CONTENT_TYPE, JSON_CONTENT_TYPE)], BODY)
}

/// Starts the server on a free port of 127.0.0.1; it runs until the process ends.
pub async fn start() -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("ceiling server: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("ceiling server: {e}"))?;
    let app = Router::new().route("/", post(answer));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("kura-bench: the ceiling server stopped: {e}");
        }
    });
    Ok(addr)
}
