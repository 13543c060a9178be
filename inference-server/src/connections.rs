//! Connections as a hostile client sees them: a cap per listener, a deadline
//! for each request's head (a new connection must send one too), an idle
//! keep-alive timeout, a maximum age, and a graceful end for all of them when
//! the server drains.
//!
//! hyper's own header timeout also runs while a keep-alive connection waits
//! for its next request, which would make the idle timeout as short as the
//! header timeout (and break proxies that keep upstream connections for a
//! minute); so each connection's stream is watched here instead: bytes
//! arriving on an idle connection start the head deadline, the handler
//! marks when a request's head has been read and when it has been answered.
//! An HTTP/2 (gRPC) connection carries many requests at once: it is busy
//! while any is open, and its reads are not watched (pings and window
//! updates are not request heads; its first request must still come within
//! the header timeout).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

/// The limits of every connection of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most open connections; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// How long a request's head may take, from its first byte (or from the
    /// connection's start, for its first request).
    pub header_timeout: Duration,
    /// How long a connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long a connection may live; it then ends after its current
    /// request, so clients reconnect and spread over new replicas.
    pub max_age: Duration,
}

/// What a connection is doing, as far as its limits care.
const PARTIAL: u8 = 0;
const BUSY: u8 = 1;
const IDLE: u8 = 2;

/// One connection's activity, shared by its stream and its handler.
#[derive(Debug)]
pub struct Activity {
    born: Instant,
    state: AtomicU8,
    /// Milliseconds after `born` at which `state` was entered.
    since: AtomicU64,
    /// Requests begun and not yet answered.
    open: AtomicU32,
}

/// What a connection's limits say about it now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within its limits.
    Keep,
    /// Too slow sending a request head: closed at once.
    Close,
    /// Idle too long, or too old: ended after its current request.
    Retire,
}

impl Activity {
    /// A new connection, which must send its first request head within the
    /// header timeout.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            born: Instant::now(),
            state: AtomicU8::new(PARTIAL),
            since: AtomicU64::new(0),
            open: AtomicU32::new(0),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn enter(&self, state: u8) {
        self.since.store(self.now(), Ordering::Relaxed);
        self.state.store(state, Ordering::Release);
    }

    /// Bytes arrived: on an idle connection, a request head has begun.
    fn read_some(&self) {
        if self.state.load(Ordering::Acquire) == IDLE {
            self.enter(PARTIAL);
        }
    }

    /// The handler has a whole request head.
    pub fn request_started(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.enter(BUSY);
    }

    /// The handler has answered; the connection is idle when no other
    /// request is open on it.
    pub fn request_finished(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) <= 1 {
            self.open.store(0, Ordering::Release);
            self.enter(IDLE);
        }
    }

    /// What `limits` say about the connection now.
    pub fn verdict(&self, limits: &Limits) -> Verdict {
        self.verdict_at(limits, self.now())
    }

    fn verdict_at(&self, limits: &Limits, now: u64) -> Verdict {
        let since = Duration::from_millis(now.saturating_sub(self.since.load(Ordering::Relaxed)));
        match self.state.load(Ordering::Acquire) {
            PARTIAL if since > limits.header_timeout => Verdict::Close,
            IDLE if since > limits.idle_timeout => Verdict::Retire,
            _ if Duration::from_millis(now) > limits.max_age => Verdict::Retire,
            _ => Verdict::Keep,
        }
    }
}

/// A stream whose reads tell its [`Activity`] that a request has begun.
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    /// Watches `inner` for `activity`.
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read_some();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The connections of one listener: its cap, and the signal that ends them
/// gracefully when the server drains.
pub struct Pool {
    limits: Limits,
    slots: Arc<Semaphore>,
    draining: watch::Sender<bool>,
    /// Told whenever a connection ends.
    ended: Arc<Notify>,
}

impl Pool {
    /// A pool for connections under `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            draining: watch::channel(false).0,
            ended: Arc::new(Notify::new()),
        }
    }

    /// A slot for a new connection, or `None` when the cap is reached (the
    /// caller closes the connection).
    pub fn admit(&self) -> Option<Slot> {
        let permit = Arc::clone(&self.slots).try_acquire_owned().ok()?;
        Some(Slot {
            permit: Some(permit),
            limits: self.limits,
            draining: self.draining.subscribe(),
            ended: Arc::clone(&self.ended),
        })
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.limits
            .max_connections
            .saturating_sub(self.slots.available_permits())
    }

    /// Ends every connection after its current request and waits, at most
    /// `timeout`, until none is open (connections accepted meanwhile
    /// included); whether none is.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let _ = self.draining.send(true);
        let none_open = async {
            loop {
                let ended = self.ended.notified();
                if self.open() == 0 {
                    return;
                }
                ended.await;
            }
        };
        tokio::time::timeout(timeout, none_open).await.is_ok()
    }
}

/// A connection's place in its [`Pool`].
pub struct Slot {
    /// Held until the connection ends.
    permit: Option<OwnedSemaphorePermit>,
    limits: Limits,
    draining: watch::Receiver<bool>,
    ended: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The place is free before the pool hears of it.
        drop(self.permit.take());
        self.ended.notify_waiters();
    }
}

/// A hyper connection that can be asked to end gracefully.
pub trait Graceful: std::future::Future {
    /// Finish the current request, then close.
    fn graceful_shutdown(self: Pin<&mut Self>);

    /// Ends a connection accepted while the pool drains, after the
    /// requests its client sent with it.
    fn retire_fresh(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S> Graceful for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::Connection::graceful_shutdown(self);
    }

    /// Nothing: a graceful shutdown would close it before its first
    /// request is read; it is built without keep-alive instead (see
    /// [`Slot::draining`]) and closes after that request.
    fn retire_fresh(self: Pin<&mut Self>) {}
}

impl<I, S, E> Graceful for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http2::Connection::graceful_shutdown(self);
    }
}

impl Slot {
    /// Whether the pool was draining when this connection was accepted: an
    /// HTTP/1 connection must then be built without keep-alive, so that it
    /// answers one request and closes.
    pub fn draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Serves `connection` within the limits, watching `activity`, until it
    /// ends, is closed for a slow head, or has retired.
    pub async fn serve<C: Graceful>(mut self, connection: C, activity: &Activity) {
        tokio::pin!(connection);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retiring = self.draining();
        if retiring {
            connection.as_mut().retire_fresh();
        }
        loop {
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = tick.tick() => match activity.verdict(&self.limits) {
                    Verdict::Close => return,
                    Verdict::Retire if !retiring => {
                        retiring = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    _ => {}
                },
                changed = self.draining.changed(), if !retiring => {
                    if changed.is_err() || *self.draining.borrow() {
                        retiring = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

/// How often a connection's limits are checked.
const TICK: Duration = Duration::from_millis(250);

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_connections: 2,
        header_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        max_age: Duration::from_secs(600),
    };

    #[test]
    fn a_connection_moves_through_its_deadlines() {
        let activity = Activity::new();
        // A new connection must send a head within the header timeout.
        assert_eq!(activity.verdict_at(&LIMITS, 1_000), Verdict::Keep);
        assert_eq!(activity.verdict_at(&LIMITS, 5_001), Verdict::Close);
        // A request in progress is the body timeout's business.
        activity.request_started();
        assert_eq!(activity.verdict_at(&LIMITS, 30_000), Verdict::Keep);
        // Answered: idle, then a fresh head deadline once bytes arrive.
        activity.request_finished();
        let answered = activity.since.load(Ordering::Relaxed);
        assert_eq!(
            activity.verdict_at(&LIMITS, answered + 59_000),
            Verdict::Keep
        );
        assert_eq!(
            activity.verdict_at(&LIMITS, answered + 60_001),
            Verdict::Retire
        );
        activity.read_some();
        let began = activity.since.load(Ordering::Relaxed);
        assert_eq!(activity.verdict_at(&LIMITS, began + 5_001), Verdict::Close);
        // Old connections retire however busy.
        activity.request_started();
        assert_eq!(activity.verdict_at(&LIMITS, 600_001), Verdict::Retire);
    }

    #[test]
    fn a_connection_with_requests_side_by_side_is_idle_only_when_all_are_answered() {
        let activity = Activity::new();
        activity.request_started();
        activity.request_started();
        activity.request_finished();
        assert_eq!(activity.state.load(Ordering::Acquire), BUSY);
        activity.request_finished();
        assert_eq!(activity.state.load(Ordering::Acquire), IDLE);
        let answered = activity.since.load(Ordering::Relaxed);
        assert_eq!(
            activity.verdict_at(&LIMITS, answered + 60_001),
            Verdict::Retire
        );
    }

    #[tokio::test]
    async fn the_cap_refuses_connections_and_the_drain_waits_for_them() {
        let pool = Pool::new(LIMITS);
        let first = pool.admit().expect("a slot");
        let second = pool.admit().expect("a slot");
        assert!(pool.admit().is_none(), "over the cap");
        assert_eq!(pool.open(), 2);
        drop(first);
        assert!(pool.admit().is_some());
        assert!(
            !pool.drain(Duration::from_millis(50)).await,
            "one still open"
        );
        drop(second);
        assert!(pool.drain(Duration::from_millis(50)).await);
    }
}
