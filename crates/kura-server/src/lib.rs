//! kura's service layer and HTTP server.

pub mod http;
pub mod init;
pub mod service;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kura_core::{Error, Result, SystemClock};

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub region: String,
}

/// Runs the server until SIGINT or SIGTERM, then lets in-flight requests finish.
pub async fn run(config: Config) -> Result<()> {
    let opened = init::open(&config.data_dir, &config.region, Arc::new(SystemClock)).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::internal(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal(format!("listener address: {e}")))?;
    let state = Arc::new(http::AppState {
        service: opened.service,
        signing_keys: http::SigningKeyCache::default(),
    });
    tracing::info!(
        %addr,
        data_dir = %config.data_dir.display(),
        credentials = %opened.credentials_file.display(),
        "kura is serving; clients: AWS_SHARED_CREDENTIALS_FILE={} aws --endpoint-url http://{addr} secretsmanager ...",
        opened.credentials_file.display()
    );
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| Error::internal(format!("server: {e}")))?;
    tracing::info!("kura stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot watch SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
