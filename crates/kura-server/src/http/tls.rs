//! TLS on the listener: the certificate chain and key (and the CA that client certificates
//! must come from) read from PEM files, and replaced while the server runs — on SIGHUP and when
//! the files change — without touching the connections already open.
//!
//! Each new connection takes the configuration current when it arrives; a connection keeps the
//! one it was accepted with until it closes. A new pair that does not load (a key that does
//! not match the certificate, a file half written) is refused with a log line, and the last
//! good configuration goes on serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kura_core::{Error, Result};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// How often the files are compared with what was last loaded.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// Where the listener's TLS material lives (`--tls-cert`, `--tls-key`, `--tls-client-ca`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate first, then the intermediates that lead to its CA.
    pub cert: PathBuf,
    /// The private key of the first certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate issued by one of these CAs.
    pub client_ca: Option<PathBuf>,
}

/// The TLS configuration new connections are accepted with, and how it is reloaded.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    /// A digest of the files as last read, loaded or refused: a change is tried once.
    seen: Mutex<Vec<u8>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Loads the files; at start-up a pair that does not load is an error.
    pub fn load(files: TlsFiles) -> Result<Arc<Tls>> {
        let seen = fingerprint(&files);
        let config = server_config(&files)
            .map_err(|e| Error::invalid_parameter(format!("cannot serve TLS: {e}")))?;
        Ok(Arc::new(Tls {
            files,
            current: RwLock::new(config),
            seen: Mutex::new(seen),
        }))
    }

    /// The acceptor for a connection arriving now.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = match self.current.read() {
            Ok(c) => c.clone(),
            Err(c) => c.into_inner().clone(),
        };
        tokio_rustls::TlsAcceptor::from(config)
    }

    /// Reads the files again and, if they load, serves new connections with them. `why` names
    /// what asked (a signal, a change of the files) in the log line.
    pub fn reload(&self, why: &str) -> bool {
        let digest = fingerprint(&self.files);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = digest;
        }
        match server_config(&self.files) {
            Ok(config) => {
                match self.current.write() {
                    Ok(mut c) => *c = config,
                    Err(c) => *c.into_inner() = config,
                }
                tracing::info!(
                    cert = %self.files.cert.display(),
                    "TLS certificate reloaded ({why}); new connections use it"
                );
                true
            }
            Err(e) => {
                tracing::error!(
                    cert = %self.files.cert.display(),
                    "TLS reload ({why}) refused, still serving the previous certificate: {e}"
                );
                false
            }
        }
    }

    /// Reloads on SIGHUP, and when the files' contents change (checked every 2 s), until the
    /// returned task is aborted.
    pub fn watch(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        use tokio::signal::unix::{SignalKind, signal};
        tokio::spawn(async move {
            let mut hangup = match signal(SignalKind::hangup()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(
                        "cannot watch SIGHUP, TLS files are reloaded on change only: {e}"
                    );
                    None
                }
            };
            let mut poll = tokio::time::interval(POLL_EVERY);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let hup = async {
                    match hangup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = hup => {
                        let tls = self.clone();
                        // Reading and parsing files blocks: off the async threads.
                        let _ = tokio::task::spawn_blocking(move || tls.reload("SIGHUP")).await;
                    }
                    _ = poll.tick() => {
                        let tls = self.clone();
                        let _ = tokio::task::spawn_blocking(move || {
                            let changed = tls
                                .seen
                                .lock()
                                .map(|seen| *seen != fingerprint(&tls.files))
                                .unwrap_or(false);
                            if changed {
                                tls.reload("the files changed");
                            }
                        })
                        .await;
                    }
                }
            }
        })
    }
}

/// A digest of the three files' contents (a missing file counts as empty): the key's bytes are
/// not kept.
fn fingerprint(files: &TlsFiles) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for path in [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        let bytes = zeroize::Zeroizing::new(std::fs::read(path).unwrap_or_default());
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(&bytes);
    }
    ctx.finish().as_ref().to_vec()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A rustls configuration from the files: TLS 1.2 and 1.3 only, HTTP/2 and HTTP/1.1 by ALPN.
fn server_config(files: &TlsFiles) -> std::result::Result<Arc<ServerConfig>, String> {
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "{}: no private key could be read ({e}); give the PEM key of the certificate",
            files.key.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: not a usable CA certificate: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "{} and {} are not a certificate chain and its key: {e}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Every CERTIFICATE block of a PEM file, in order; at least one.
fn certificates(path: &Path) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no PEM CERTIFICATE block in the file",
            path.display()
        ));
    }
    Ok(certs)
}
