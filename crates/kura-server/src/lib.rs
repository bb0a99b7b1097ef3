//! kura's service layer and HTTP server.

pub mod http;
pub mod init;
pub mod node;
pub mod seal;
pub mod service;

pub use kura_core::Error;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kura_core::Result;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// A PostgreSQL database shared by the nodes of a cluster; `None`: the data directory's
    /// embedded SQLite database.
    pub database_url: Option<String>,
    pub region: String,
    /// Run on a manual clock that `Kura.SetClock` / `Kura.AdvanceClock` move (tests only).
    pub test_clock: bool,
    /// Tests only: rotations stop before this step (`setSecret`, ...).
    pub test_pause_before_step: Option<String>,
    /// Connection timeouts and cap.
    pub limits: http::Limits,
    /// The seal asked for (`--seal`); `None`: the installation's own (`file` for a new one).
    pub seal: Option<seal::SealChoice>,
}

/// Runs the server until SIGINT or SIGTERM, then lets in-flight requests finish.
pub async fn run(config: Config) -> Result<()> {
    let pause_before_step = match &config.test_pause_before_step {
        Some(step) => Some(kura_core::model::RotationStep::parse(step).ok_or_else(|| {
            Error::invalid_parameter(format!(
                "--test-pause-before-step {step:?} is not createSecret, setSecret, testSecret or finishSecret"
            ))
        })?),
        None => None,
    };
    let prepared = init::prepare(&config.data_dir, config.database_url.as_deref()).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::internal(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal(format!("listener address: {e}")))?;
    // Rotation functions call back on this address; a wildcard listener is reached locally.
    let callback = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        }
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    };
    let options = node::ServiceOptions {
        region: config.region.clone(),
        test_clock: config.test_clock,
        pause_before_step,
        endpoint: format!("http://{callback}"),
    };
    let node = node::Node::start(prepared, options, config.seal.clone()).await?;
    let state = Arc::new(http::AppState {
        node: node.clone(),
        body_read_timeout: config.limits.body_read_timeout,
    });
    let credentials_file = config.data_dir.join(init::CREDENTIALS_FILE);
    // A node that joined a cluster has no credentials file: the first node wrote it.
    let credentials = if credentials_file.exists() {
        credentials_file.display().to_string()
    } else {
        "the root-credentials file of the node that initialised the database".to_string()
    };
    let status = node.status().await;
    tracing::info!(
        %addr,
        data_dir = %config.data_dir.display(),
        database = %config.database_url.as_deref().map(init::shown_url).unwrap_or_else(|| "embedded SQLite".into()),
        seal = status.seal_type,
        sealed = status.sealed,
        %credentials,
        "kura is serving; clients: AWS_SHARED_CREDENTIALS_FILE=<{credentials}> aws --endpoint-url http://{addr} secretsmanager ..."
    );
    http::conn::serve(
        listener,
        http::router(state.clone()),
        config.limits,
        shutdown_signal(),
    )
    .await;
    node.stop().await;
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
