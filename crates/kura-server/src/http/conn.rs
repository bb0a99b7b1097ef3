//! Connections: the accept loop, the cap on open connections, and the timeouts hyper does not
//! keep for a server (an idle keep-alive timeout separate from the header-read timeout).
//!
//! Each connection is in one of two phases. *Waiting*: no request is being served, and the
//! connection must show progress by a deadline — its first request head complete within the
//! header-read timeout of connecting, a later request started (first byte) within the idle
//! timeout of the previous answer and its head complete within the header-read timeout of that
//! first byte. *Busy*: requests are being served; the handler bounds how long it waits for a
//! body. A connection that misses its deadline is dropped.
//!
//! At the connection cap a new connection takes the place of the waiting connection closest
//! to its deadline, so that hundreds of silent or slow-header sockets cannot keep signed
//! clients out; only when every connection is busy is the new one closed.
//!
//! On a TLS listener the handshake is part of the first wait: it and the first request head
//! share the header-read deadline, and a connection still handshaking can be evicted like any
//! other waiting one, so sockets that never finish a handshake cannot hold slots either.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// How long connections may take and how many may be open; `kura server` flags set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From connecting (or from the first byte of a later request) to the end of its head.
    pub header_read_timeout: Duration,
    /// From the end of an answer to the first byte of the next request on the connection.
    pub idle_timeout: Duration,
    /// From the end of a request's head to the end of its body.
    pub body_read_timeout: Duration,
    /// Connections open at once. Beyond it a new connection replaces a waiting one, or is
    /// closed at once when all are busy.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(20),
            // Below the common default of 1,024 open files, with room for the database,
            // rotation subprocesses and their sockets.
            max_connections: 512,
        }
    }
}

/// hyper's own ceiling on a request head. kura refuses smaller heads itself, with an AWS
/// error and an audit record (see `MAX_HEADERS` in `http`); hyper's plain 431 answers only
/// what does not fit here.
const HYPER_MAX_HEADERS: usize = 256;
const HYPER_MAX_BUF: usize = 128 * 1024;

/// How often an accept error is retried (a full file table empties as connections close).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No request in service; the connection is dropped at `deadline` unless it progresses.
    /// `idle`: no byte of the next request has come yet.
    Waiting { deadline: Instant, idle: bool },
    /// This many requests are being served (more than one only with HTTP/2).
    Busy(usize),
}

/// One connection's phase, shared by its reader, its service and its watchdog.
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
    limits: Limits,
    /// Set when a new connection needs this one's slot.
    evicted: AtomicBool,
    /// Where this connection's slot goes when it ends, once evicted: straight to the
    /// connection that evicted it, so no other can take it first.
    heir: Mutex<Option<oneshot::Sender<OwnedSemaphorePermit>>>,
}

impl Activity {
    fn new(limits: Limits) -> Self {
        Activity {
            // A new connection owes its first request head within the header-read timeout.
            phase: Mutex::new(Phase::Waiting {
                deadline: Instant::now() + limits.header_read_timeout,
                idle: false,
            }),
            changed: Notify::new(),
            limits,
            evicted: AtomicBool::new(false),
            heir: Mutex::new(None),
        }
    }

    fn evict(&self, heir: oneshot::Sender<OwnedSemaphorePermit>) {
        if let Ok(mut h) = self.heir.lock() {
            *h = Some(heir);
        }
        self.evicted.store(true, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// Gives the slot to the connection that evicted this one, if any; else frees it.
    fn release(&self, slot: OwnedSemaphorePermit) {
        let heir = self.heir.lock().ok().and_then(|mut h| h.take());
        if let Some(heir) = heir {
            // A heir that is gone drops the slot, which frees it.
            let _ = heir.send(slot);
        }
    }

    fn phase(&self) -> Phase {
        match self.phase.lock() {
            Ok(p) => *p,
            Err(p) => *p.into_inner(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Phase)) {
        let mut phase = match self.phase.lock() {
            Ok(p) => p,
            Err(p) => p.into_inner(),
        };
        f(&mut phase);
        drop(phase);
        self.changed.notify_one();
    }

    /// Bytes arrived: on an idle connection a request has begun, and its head is now due.
    fn on_bytes(&self) {
        if matches!(self.phase(), Phase::Waiting { idle: true, .. }) {
            let deadline = Instant::now() + self.limits.header_read_timeout;
            self.update(|p| {
                if matches!(p, Phase::Waiting { idle: true, .. }) {
                    *p = Phase::Waiting {
                        deadline,
                        idle: false,
                    };
                }
            });
        }
    }

    fn request_started(self: &Arc<Self>) -> Busy {
        self.update(|p| {
            *p = match *p {
                Phase::Busy(n) => Phase::Busy(n + 1),
                Phase::Waiting { .. } => Phase::Busy(1),
            }
        });
        Busy(self.clone())
    }

    /// Resolves with the name of the deadline the connection missed.
    async fn missed_deadline(&self) -> &'static str {
        loop {
            let changed = self.changed.notified();
            match self.phase() {
                // An evicted connection finishes the requests it is serving first.
                Phase::Busy(_) => changed.await,
                Phase::Waiting { .. } if self.evicted.load(Ordering::SeqCst) => {
                    return "connection limit reached, making room for a new connection";
                }
                Phase::Waiting { deadline, idle } => {
                    if Instant::now() >= deadline {
                        return if idle {
                            "idle timeout"
                        } else {
                            "header read timeout"
                        };
                    }
                    tokio::select! {
                        _ = changed => {}
                        _ = tokio::time::sleep_until(deadline) => {}
                    }
                }
            }
        }
    }
}

/// A request in service; when its answer has been produced the connection waits again.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let idle_timeout = self.0.limits.idle_timeout;
        self.0.update(|p| {
            *p = match *p {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => Phase::Waiting {
                    deadline: Instant::now() + idle_timeout,
                    idle: true,
                },
            }
        });
    }
}

/// The socket, telling its connection's [`Activity`] when bytes arrive.
struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.on_bytes();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A connection's byte stream once accepted: the socket itself, or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Whether a request came over TLS, for the doors (`aws:SecureTransport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    pub tls: bool,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// the open connections to finish what they are serving. With `tls`, every connection is a TLS
/// one, accepted with the configuration current when it arrives.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Arc<super::tls::Tls>>,
    shutdown: impl Future<Output = ()>,
) {
    let transport = Transport { tls: tls.is_some() };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_headers(HYPER_MAX_HEADERS)
        .max_buf_size(HYPER_MAX_BUF);
    let builder = Arc::new(builder);
    let max = limits
        .max_connections
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(Semaphore::new(max));
    // Closed when the server stops: every connection then shuts down gracefully.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    let open: Arc<Mutex<HashMap<u64, Arc<Activity>>>> = Arc::default();
    let mut next_id: u64 = 0;
    let mut refusing = false;
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, for one: wait for connections to close.
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => Ok(slot),
            // The evicted connection hands its slot over as soon as it is not serving a
            // request; this one waits for it.
            Err(_) if let Some(inherit) = make_room(&open) => Err(inherit),
            // All busy: closed at once rather than left waiting, so the client sees the
            // refusal (and retries) instead of hanging.
            Err(_) => {
                if !refusing {
                    tracing::warn!(
                        max_connections = max,
                        "connection limit reached with every connection busy: closing new ones"
                    );
                    refusing = true;
                }
                drop(stream);
                continue;
            }
        };
        refusing = false;
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let open = open.clone();
        let slots = slots.clone();
        let activity = Arc::new(Activity::new(limits));
        // Registered now if it has its slot, so that the next connection can already find it.
        if slot.is_ok()
            && let Ok(mut open) = open.lock()
        {
            open.insert(id, activity.clone());
        }
        let watched = Watched {
            io: stream,
            activity: activity.clone(),
        };
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        let service = {
            let activity = activity.clone();
            let router = router.clone();
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(transport);
                let busy = activity.request_started();
                let router = router.clone();
                async move {
                    let answer = router.oneshot(req.map(Body::new)).await;
                    drop(busy);
                    answer
                }
            })
        };
        let builder = builder.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let slot = match slot {
                Ok(slot) => slot,
                Err(inherit) => {
                    let slot = match inherit.await {
                        Ok(slot) => slot,
                        Err(_) => match slots.acquire_owned().await {
                            Ok(slot) => slot,
                            Err(_) => return,
                        },
                    };
                    if let Ok(mut open) = open.lock() {
                        open.insert(id, activity.clone());
                    }
                    slot
                }
            };
            let io: Box<dyn Stream> = match acceptor {
                None => Box::new(watched),
                Some(acceptor) => match handshake(acceptor, watched, &activity, &mut stop).await {
                    Ok(stream) => Box::new(stream),
                    Err(why) => {
                        tracing::debug!(%peer, "closing a connection before TLS was set up: {why}");
                        if let Ok(mut open) = open.lock() {
                            open.remove(&id);
                        }
                        activity.release(slot);
                        return;
                    }
                },
            };
            let conn = builder.serve_connection(TokioIo::new(io), service);
            let mut conn = std::pin::pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, "connection ended: {e}");
                        }
                        break;
                    }
                    missed = activity.missed_deadline() => {
                        tracing::debug!(%peer, "closing a connection: {missed}");
                        break;
                    }
                    _ = stop.changed(), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            if let Ok(mut open) = open.lock() {
                open.remove(&id);
            }
            activity.release(slot);
        });
    }
    drop(stop_tx);
    drop(open);
    drop(listener);
    // Every connection holds a slot until it ends: having them all back means all are done.
    let _ = slots.acquire_many(max as u32).await;
}

/// The TLS handshake, within the connection's first deadline (which the first request head
/// shares); it gives up when the connection is evicted or the server stops.
async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    socket: Watched<tokio::net::TcpStream>,
    activity: &Activity,
    stop: &mut watch::Receiver<()>,
) -> Result<tokio_rustls::server::TlsStream<Watched<tokio::net::TcpStream>>, String> {
    tokio::select! {
        done = acceptor.accept(socket) => done.map_err(|e| format!("TLS handshake failed: {e}")),
        missed = activity.missed_deadline() => Err(missed.to_string()),
        _ = stop.changed() => Err("the server is stopping".to_string()),
    }
}

/// Evicts the waiting connection nearest its deadline and returns where its slot will come;
/// `None` if every connection is busy.
fn make_room(
    open: &Mutex<HashMap<u64, Arc<Activity>>>,
) -> Option<oneshot::Receiver<OwnedSemaphorePermit>> {
    let open = open.lock().ok()?;
    let victim = open
        .values()
        .filter(|a| !a.evicted.load(Ordering::SeqCst))
        .filter_map(|a| match a.phase() {
            Phase::Waiting { deadline, .. } => Some((deadline, a)),
            Phase::Busy(_) => None,
        })
        .min_by_key(|(deadline, _)| *deadline);
    let (_, victim) = victim?;
    let (heir, inherit) = oneshot::channel();
    victim.evict(heir);
    Some(inherit)
}
