//! kura's service layer and HTTP server.

pub mod backup;
pub mod console;
pub mod http;
pub mod init;
pub mod metrics;
pub mod node;
pub mod root_file;
pub mod rootkey;
pub mod seal;
pub mod service;

pub use kura_core::Error;
/// Rotations running at once on a server unless `--rotation-concurrency` says otherwise.
pub const DEFAULT_ROTATION_CONCURRENCY: usize = service::rotation::DEFAULT_CONCURRENCY;

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
    /// Rotations running at once on this server (`--rotation-concurrency`).
    pub rotation_concurrency: usize,
    /// The read cache's bound in bytes (`--cache-size`); 0: no cache.
    pub cache_bytes: usize,
    /// Connection timeouts and cap.
    pub limits: http::Limits,
    /// The seal asked for (`--seal`); `None`: the installation's own (`file` for a new one).
    pub seal: Option<seal::SealChoice>,
    /// Serve TLS with these files; `None`: plain HTTP.
    pub tls: Option<http::TlsFiles>,
    /// Allow plain HTTP on an address other than loopback (TLS ends in front of kura).
    pub insecure_http: bool,
    /// Where `GET /metrics` is served.
    pub metrics: http::MetricsExposure,
    /// How long web console sessions last.
    pub console: console::Settings,
}

/// Plain HTTP is served on loopback only, unless the operator says TLS is handled elsewhere:
/// signatures protect requests from tampering but not secret values from being read.
fn check_transport(config: &Config) -> Result<()> {
    if config.tls.is_some()
        || config.insecure_http
        || config.listen.ip().to_canonical().is_loopback()
    {
        return Ok(());
    }
    Err(Error::invalid_parameter(format!(
        "kura will not serve plain HTTP on {}, which is not a loopback address: secret values would cross the network unencrypted. Give --tls-cert FILE --tls-key FILE (KURA_TLS_CERT, KURA_TLS_KEY) to serve HTTPS, or --insecure-http (KURA_INSECURE_HTTP=true) if TLS ends in front of kura (a proxy or load balancer).",
        config.listen
    )))
}

/// Runs the server until SIGINT or SIGTERM, then lets in-flight requests finish.
pub async fn run(config: Config) -> Result<()> {
    check_transport(&config)?;
    // Before anything is initialised: a wrong file is reported and nothing else done.
    let tls = config.tls.clone().map(http::Tls::load).transpose()?;
    let pause_before_step = match &config.test_pause_before_step {
        Some(step) => Some(kura_core::model::RotationStep::parse(step).ok_or_else(|| {
            Error::invalid_parameter(format!(
                "--test-pause-before-step {step:?} is not createSecret, setSecret, testSecret or finishSecret"
            ))
        })?),
        None => None,
    };
    let prepared = init::prepare(&config.data_dir, config.database_url.as_deref()).await?;
    prepared.store.set_cache_budget(config.cache_bytes);
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
    let scheme = if tls.is_some() { "https" } else { "http" };
    let options = node::ServiceOptions {
        region: config.region.clone(),
        test_clock: config.test_clock,
        pause_before_step,
        endpoint: format!("{scheme}://{callback}"),
        rotation_concurrency: config.rotation_concurrency,
    };
    let node = node::Node::start(prepared, options, config.seal.clone()).await?;
    let state = Arc::new(http::AppState {
        node: node.clone(),
        body_read_timeout: config.limits.body_read_timeout,
        metrics_on_main: config.metrics == http::MetricsExposure::Main,
        console: console::Console::new(config.console),
    });
    let metrics_listener = match config.metrics {
        http::MetricsExposure::Listen(at) => {
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .map_err(|e| Error::internal(format!("cannot listen for metrics on {at}: {e}")))?;
            let router = http::metrics_router(state.clone());
            tracing::info!(addr = %at, "serving GET /metrics");
            Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router.into_make_service()).await {
                    tracing::error!("the metrics listener failed: {e}");
                }
            }))
        }
        _ => None,
    };
    let credentials_file = config.data_dir.join(init::CREDENTIALS_FILE);
    let reloads = match tls.clone() {
        Some(tls) => tls.watch(),
        None => tokio::spawn(nothing_to_reload()),
    };
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
        tls = tls.is_some(),
        "kura is serving; clients: AWS_SHARED_CREDENTIALS_FILE=<{credentials}> aws --endpoint-url {scheme}://{addr} secretsmanager ..."
    );
    let stopping = node.clone();
    let shutdown = async move {
        shutdown_signal().await;
        // Long-polls answer now rather than holding the shutdown for their whole wait.
        if let Some(live) = stopping.live() {
            live.service.stop_watches();
        }
    };
    http::conn::serve(
        listener,
        http::router(state.clone()),
        config.limits,
        tls,
        shutdown,
    )
    .await;
    reloads.abort();
    if let Some(m) = metrics_listener {
        m.abort();
    }
    node.stop().await;
    tracing::info!("kura stopped");
    Ok(())
}

/// Without TLS there is nothing to reload, but SIGHUP (a service manager's "reload") must not
/// end the server as it would by default.
async fn nothing_to_reload() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP: nothing to reload (kura serves no TLS)");
    }
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
