//! The HTTP front: what a request needs (`Service`, limits, rehearsal
//! faults), the routes (`routes`), inference (`infer`), the security layer
//! in front of the API port (`guard`), the admin port (`admin`), and the
//! one place where failures become status codes (`error`).

mod admin;
mod error;
mod guard;
mod infer;
mod routes;
#[cfg(test)]
pub(crate) mod tests;

pub use admin::handle_admin;
pub use error::ApiError;
pub use guard::{handle_api, recorded_operation};
pub use routes::server_metadata;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};

use crate::batching::Batcher;
use crate::metrics::Metrics;
use aimass_engine::Backend;
use routes::{Port, route_caught};

/// The header that says how long the JSON part of a body with binary tensor
/// data is.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// Limits on requests.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest body accepted.
    pub max_request_bytes: usize,
    /// Longest a request may take, queueing included.
    pub request_timeout: Duration,
    /// Longest reading a request's body may take.
    pub body_read_timeout: Duration,
    /// The limits of every connection.
    pub connections: crate::connections::Limits,
}

/// The bytes of request bodies the server holds at once, so many large
/// bodies at the same time are refused (429) instead of exhausting memory.
#[derive(Debug)]
pub struct BodyBudget {
    kibibytes: Arc<tokio::sync::Semaphore>,
}

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        Self {
            kibibytes: Arc::new(tokio::sync::Semaphore::new(bytes.div_ceil(1024).max(1))),
        }
    }

    /// An empty reservation for one body, grown as it arrives.
    fn reservation(&self) -> Reservation {
        Reservation {
            budget: Arc::clone(&self.kibibytes),
            held: None,
            kib: 0,
        }
    }
}

/// The part of the [`BodyBudget`] one body holds, released when dropped.
struct Reservation {
    budget: Arc<tokio::sync::Semaphore>,
    held: Option<tokio::sync::OwnedSemaphorePermit>,
    kib: u32,
}

impl Reservation {
    /// Holds enough for `bytes` in all, or refuses (429) when the budget
    /// has not that much left.
    fn grow(&mut self, bytes: usize) -> Result<(), ApiError> {
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).map_err(|_| ApiError::Saturated)?;
        let Some(more) = kib.checked_sub(self.kib).filter(|more| *more > 0) else {
            return Ok(());
        };
        let permit = Arc::clone(&self.budget)
            .try_acquire_many_owned(more)
            .map_err(|_| ApiError::Saturated)?;
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        self.kib = kib;
        Ok(())
    }
}

/// Deliberate failures for rehearsals: every `every`-th inference request is
/// answered with 500, and every request can be slowed down, so canary
/// rollbacks, autoscaling, migrations and alerts can be tested against a real
/// server. Off unless configured.
#[derive(Debug, Default)]
pub struct FaultInjection {
    every: Option<u64>,
    seen: std::sync::atomic::AtomicU64,
    delay_millis: std::sync::atomic::AtomicU64,
    armed_millis: u64,
}

impl FaultInjection {
    /// Fails every `every`-th request; `None` or 0 never fails.
    pub fn every(every: Option<u64>) -> Self {
        Self {
            every: every.filter(|n| *n > 0),
            ..Self::default()
        }
    }

    /// Also holds every inference request for `delay` before it is run.
    pub fn with_delay(self, delay: Duration) -> Self {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_millis.store(millis, Ordering::Relaxed);
        self
    }

    /// Arms a delay of `delay` that [`FaultInjection::toggle`] switches on
    /// and off at run time (the server does on SIGUSR1), so one process of
    /// many can be made slow.
    pub fn armed(mut self, delay: Duration) -> Self {
        self.armed_millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Switches the armed delay on, or off when it is on. Returns whether it
    /// is now on.
    pub fn toggle(&self) -> bool {
        let on = self.delay_millis.load(Ordering::Relaxed) != self.armed_millis;
        self.delay_millis
            .store(if on { self.armed_millis } else { 0 }, Ordering::Relaxed);
        on
    }

    pub(crate) fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_millis.load(Ordering::Relaxed))
    }

    /// Whether this request is one to fail.
    fn strike(&self) -> bool {
        self.every
            .is_some_and(|n| self.seen.fetch_add(1, Ordering::Relaxed) % n == n - 1)
    }
}

/// Everything a request needs.
pub struct Service {
    /// Name the model is served under.
    pub model_name: String,
    /// Version it is served under.
    pub model_version: String,
    /// The model.
    pub backend: Arc<dyn Backend>,
    /// The queue in front of it.
    pub batcher: Batcher,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The model is loaded and warm, and the server is serving.
    pub ready: AtomicBool,
    /// A shutdown began: probes answer not ready, so traffic moves away,
    /// while requests that still arrive are answered.
    pub draining: AtomicBool,
    /// Request limits.
    pub limits: Limits,
    /// The bytes of request bodies held at once.
    pub bodies: BodyBudget,
    /// Deliberate failures, for rehearsals.
    pub faults: FaultInjection,
    /// Authentication, authorisation, rate limits and audit of calls on the
    /// API port; `None` serves anyone, unrecorded.
    pub enforcement: Option<crate::security::Enforcement>,
    /// Probes and /metrics are on their own port, not on the API port.
    pub admin_separate: bool,
    /// TLS on the API port (and client certificates), when configured.
    pub tls: Option<Arc<crate::security::mtls::ReloadingAcceptor>>,
    /// Drift counting and feature rules, when the version has a baseline.
    pub drift: Option<crate::drift::Drift>,
    /// The shadow scored beside the model, if one runs.
    pub shadow: Option<crate::shadow::Shadow>,
}

/// Who sent an inference request: a caller, whose rows count for drift,
/// or the operator's warm-up, whose zeros do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A caller.
    Caller,
    /// The warm-up.
    WarmUp,
}

/// The routes of the API port as (method, path template): the test that
/// proves no route escapes the security layer walks this list, and another
/// checks that the router answers every entry.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/metrics"),
    ("GET", "/v2/models/{model}"),
    ("GET", "/v2/models/{model}/ready"),
    ("POST", "/v2/models/{model}/infer"),
    ("GET", "/v2/models/{model}/versions/{version}"),
    ("GET", "/v2/models/{model}/versions/{version}/ready"),
    ("POST", "/v2/models/{model}/versions/{version}/infer"),
];

/// Names, types and shapes of what a call sent and got, for its audit
/// record.
#[derive(Debug, Default)]
pub struct CallShapes {
    /// Inputs sent.
    pub inputs: Vec<aimass_audit::TensorShape>,
    /// Outputs answered.
    pub outputs: Vec<aimass_audit::TensorShape>,
}

/// A request body: hyper's, or any other (tests pass whole bodies).
pub trait RequestBody:
    hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send
{
}
impl<B> RequestBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
{
}

/// Handles one request on the API port without a security layer; never
/// fails (errors are responses).
pub async fn handle<B: RequestBody>(
    service: Arc<Service>,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let infer = req.uri().path().trim_end_matches('/').ends_with("/infer");
    let answer = route_caught(&service, req, Port::Api, None);
    Ok(observed(&service, infer, answer).await)
}

/// Awaits `answer`; an inference request is counted in flight while it
/// runs, then by status code and duration.
async fn observed(
    service: &Service,
    infer: bool,
    answer: impl Future<Output = Response<Full<Bytes>>>,
) -> Response<Full<Bytes>> {
    if !infer {
        return answer.await;
    }
    let started = Instant::now();
    let metrics = &service.metrics;
    metrics.in_flight.inc();
    let response = answer.await;
    metrics.in_flight.dec();
    metrics.answered(response.status(), started.elapsed());
    response
}
