//! The HTTP front: Open Inference Protocol v2 routes, limits, and the one
//! place where errors become status codes and `{"error": "..."}` bodies.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::batching::{Batcher, SubmitError};
use crate::metrics::Metrics;
use crate::protocol::{
    self, InferRequest, MetadataTensor, ModelMetadata, ProtocolError, ServerMetadata,
};
use aimass_engine::{Backend, EngineError, Signature};

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

    /// Reserves `bytes` for one body, at once or not at all.
    fn reserve(&self, bytes: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).ok()?;
        Arc::clone(&self.kibibytes).try_acquire_many_owned(kib).ok()
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
    /// Ready to serve: the model is loaded and warm, and no shutdown began.
    pub ready: AtomicBool,
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

/// Why a request failed, and so its status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: no such route, model or version.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists with another method.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(Method),
    /// 401: an admin action without the operator's proof.
    #[error("{0}")]
    Unauthenticated(String),
    /// 400: the request is malformed or does not fit the model.
    #[error(transparent)]
    BadRequest(#[from] ProtocolError),
    /// 413: the body is larger than allowed.
    #[error("the request body exceeds {0} bytes")]
    TooLarge(usize),
    /// 429: the queue is full.
    #[error("{0}")]
    Busy(SubmitError),
    /// 429: too many request bytes are held at once.
    #[error("the server holds too many request bodies at once; retry")]
    Saturated,
    /// 408: the body did not arrive in time.
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(Duration),
    /// 503: not ready (loading or shutting down).
    #[error("the model is not ready")]
    NotReady,
    /// 504: the request took longer than allowed.
    #[error("the request took longer than {0:?}")]
    Timeout(Duration),
    /// 500: the model failed on valid input.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The status code of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Busy(SubmitError::QueueFull(_)) | Self::Saturated => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Busy(SubmitError::Closed) | Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = json_response(self.status(), &json!({"error": self.to_string()}));
        if matches!(self, Self::Busy(_) | Self::Saturated) {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, Self::BodyTimeout(_)) {
            // The rest of the body may still be on its way.
            response
                .headers_mut()
                .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body)
        .unwrap_or_else(|_| b"{\"error\":\"cannot encode the response\"}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
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

/// Handles one request; never fails (errors are responses).
pub async fn handle<B: RequestBody>(
    service: Arc<Service>,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let is_infer = req.uri().path().ends_with("/infer");
    let started = Instant::now();
    if is_infer {
        service.metrics.in_flight.inc();
    }
    let response = route_caught(&service, req, Port::Api, None).await;
    if is_infer {
        service.metrics.in_flight.dec();
        service
            .metrics
            .requests
            .with_label_values(&[response.status().as_str()])
            .inc();
        service
            .metrics
            .request_seconds
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}

/// Handles one request on the API port: through the security layer when
/// the server enforces one, else as [`handle`].
///
/// `certificate` is the principal of the connection's verified client
/// certificate, if it presented one.
pub async fn handle_api<B: RequestBody>(
    service: Arc<Service>,
    req: Request<B>,
    peer: std::net::SocketAddr,
    certificate: Option<Arc<crate::security::Principal>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if service.enforcement.is_none() {
        return handle(service, req).await;
    }
    Ok(guarded(&service, req, peer, certificate.as_deref()).await)
}

/// Handles one request on the admin port: probes, metrics, `POST
/// /warm-up`, which runs one inference of zeros through the whole request
/// path (decode, batch, model, encode) so an orchestrator can check a new
/// replica end to end without caller credentials or data of its own, and
/// `GET /audit/checkpoint`, the tail of the audit chain (sequence and MAC,
/// no record content) and its seal, for the operator to check and keep.
pub async fn handle_admin<B: RequestBody>(
    service: Arc<Service>,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    match req.uri().path().trim_end_matches('/') {
        "/v2/health/live" | "/v2/health/ready" | "/metrics" => {
            Ok(route(&service, req, Port::Admin, None)
                .await
                .unwrap_or_else(ApiError::into_response))
        }
        "/warm-up" if req.method() == Method::POST => {
            if let Some(key) = service.enforcement.as_ref().and_then(|e| e.warm_up_key.as_ref()) {
                let proof = req
                    .headers()
                    .get(aimass_audit::key_handover::WARM_UP_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                if !aimass_audit::key_handover::check_warm_up_proof(key, proof, jiff::Timestamp::now().as_second()) {
                    return Ok(ApiError::Unauthenticated(format!(
                        "a warm-up needs the operator's proof in header {}",
                        aimass_audit::key_handover::WARM_UP_HEADER
                    ))
                    .into_response());
                }
            }
            let zeros = Request::new(Full::new(Bytes::from(zeros_request(&service).to_string())));
            Ok(service
                .infer(zeros, None)
                .await
                .unwrap_or_else(ApiError::into_response))
        }
        "/warm-up" => Ok(ApiError::MethodNotAllowed(req.method().clone()).into_response()),
        "/audit/checkpoint" if req.method() == Method::GET => {
            match service.enforcement.as_ref().and_then(|e| Some((e.audit.as_ref()?, &e.target))) {
                Some((audit, target)) => Ok(json_response(StatusCode::OK, &audit.sealed_checkpoint(target))),
                None => Ok(ApiError::NotFound("this server keeps no audit trail".into()).into_response()),
            }
        }
        path => Ok(ApiError::NotFound(format!(
            "the admin port serves /v2/health/live, /v2/health/ready, /metrics, POST /warm-up and /audit/checkpoint, not {path}"
        ))
        .into_response()),
    }
}

/// An inference request of one row of zeros for every input.
fn zeros_request(service: &Service) -> serde_json::Value {
    let inputs: Vec<serde_json::Value> = service
        .signature()
        .inputs
        .iter()
        .map(|spec| {
            let shape: Vec<i64> = spec.shape.iter().map(|d| (*d).max(1)).collect();
            let count = usize::try_from(shape.iter().product::<i64>()).unwrap_or(1);
            let zero = match spec.datatype {
                aimass_engine::tensor::DataType::Bytes => json!(""),
                aimass_engine::tensor::DataType::Bool => json!(false),
                _ => json!(0),
            };
            json!({"name": spec.name, "shape": shape, "datatype": spec.datatype.as_str(), "data": vec![zero; count]})
        })
        .collect();
    json!({ "inputs": inputs })
}

/// Most body bytes read (and dropped) from a refused request so its
/// connection can carry the next one: a scoring request fits many times.
const REFUSED_BODY_DRAIN_BYTES: usize = 64 * 1024;

/// Reads and drops a refused request's body; `false` when it is larger
/// than [`REFUSED_BODY_DRAIN_BYTES`] or cannot be read, and the connection
/// must close.
async fn drained<B: RequestBody>(body: B) -> bool {
    let limited = Limited::new(body, REFUSED_BODY_DRAIN_BYTES);
    tokio::time::timeout(std::time::Duration::from_secs(1), limited.collect())
        .await
        .is_ok_and(|read| read.is_ok())
}

/// authenticate → authorise → rate limit → route, and one audit record
/// whatever the outcome.
async fn guarded<B: RequestBody>(
    service: &Service,
    req: Request<B>,
    peer: std::net::SocketAddr,
    certificate: Option<&crate::security::Principal>,
) -> Response<Full<Bytes>> {
    use crate::security::{Action, Refusal};
    let Some(enforcement) = &service.enforcement else {
        return ApiError::Internal("no security layer".into()).into_response();
    };
    let received = jiff::Timestamp::now();
    let started = Instant::now();
    let operation = operation(req.method(), req.uri().path());
    let action = if req.uri().path().trim_end_matches('/').ends_with("/infer") {
        Action::Infer
    } else {
        Action::Read
    };
    let mut decision = aimass_audit::Decision::default();
    let mut shapes = CallShapes::default();
    let admission = enforcement
        .admit(req.headers(), certificate, peer.ip(), action, &mut decision)
        .await;
    let actor = admission.principal.as_ref().map_or_else(
        || aimass_audit::Actor {
            method: "None".into(),
            ..Default::default()
        },
        crate::security::Principal::actor,
    );
    let response = match admission.verdict {
        Ok(()) => {
            let is_infer = action == Action::Infer;
            if is_infer {
                service.metrics.in_flight.inc();
            }
            let response = route_caught(service, req, Port::Api, Some(&mut shapes)).await;
            if is_infer {
                service.metrics.in_flight.dec();
                service
                    .metrics
                    .requests
                    .with_label_values(&[response.status().as_str()])
                    .inc();
                service
                    .metrics
                    .request_seconds
                    .observe(started.elapsed().as_secs_f64());
            }
            response
        }
        Err(refusal) => {
            let status = match &refusal {
                Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
                Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
                Refusal::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
                Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            let mut response = json_response(status, &json!({"error": refusal.to_string()}));
            let headers = response.headers_mut();
            match &refusal {
                Refusal::Unauthenticated => {
                    headers.insert(
                        hyper::header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"aimass\""),
                    );
                }
                Refusal::RateLimited(wait) => {
                    headers.insert(
                        RETRY_AFTER,
                        HeaderValue::from(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
                    );
                }
                _ => {}
            }
            if !drained(req.into_body()).await {
                // The rest of the body is still on the wire: the
                // connection cannot carry another request.
                headers.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    };
    let call = crate::security::Call {
        received,
        latency: started.elapsed(),
        actor,
        source: peer.to_string(),
        operation,
        decision,
        status: response.status().as_u16(),
        shapes,
    };
    match enforcement.record(call) {
        Ok(()) => response,
        Err(message) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": format!("the call could not be audited: {message}")}),
        ),
    }
}

/// Routes a request; a panic anywhere on its way is answered 500 and
/// counted, never carried to the connection (its audit record and gauges
/// are still written).
async fn route_caught<B: RequestBody>(
    service: &Service,
    req: Request<B>,
    port: Port,
    shapes: Option<&mut CallShapes>,
) -> Response<Full<Bytes>> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(route(service, req, port, shapes))
        .catch_unwind()
        .await
    {
        Ok(result) => result.unwrap_or_else(ApiError::into_response),
        Err(_) => {
            service.metrics.panics.with_label_values(&["request"]).inc();
            ApiError::Internal("the request could not be handled".into()).into_response()
        }
    }
}

/// The most characters of a path an audit record keeps.
const RECORDED_PATH_CHARS: usize = 128;

/// Method and path as an audit record keeps them: at most
/// [`RECORDED_PATH_CHARS`] of the path, so a 60 KB path does not write 60 KB
/// per call.
pub(crate) fn operation(method: &Method, path: &str) -> String {
    match path.char_indices().nth(RECORDED_PATH_CHARS) {
        Some((end, _)) => format!("{method} {}…", path.get(..end).unwrap_or_default()),
        None => format!("{method} {path}"),
    }
}

/// Which listener a request came in on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Port {
    Api,
    Admin,
}

async fn route<B: RequestBody>(
    service: &Service,
    req: Request<B>,
    port: Port,
    shapes: Option<&mut CallShapes>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    let get = |r: Response<Full<Bytes>>| {
        if method == Method::GET {
            Ok(r)
        } else {
            Err(ApiError::MethodNotAllowed(method.clone()))
        }
    };
    let not_here = || {
        Err(ApiError::NotFound(format!(
            "{path} is served on the admin port, not here"
        )))
    };
    match segments.as_slice() {
        ["v2", "health", ..] | ["metrics"] if service.admin_separate && port == Port::Api => {
            not_here()
        }
        ["v2"] => get(json_response(StatusCode::OK, &server_metadata())),
        ["v2", "health", "live"] => get(json_response(StatusCode::OK, &json!({"live": true}))),
        ["v2", "health", "ready"] => {
            let ready = service.ready.load(Ordering::Acquire);
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            get(json_response(status, &json!({"ready": ready})))
        }
        ["metrics"] => match service.metrics.render() {
            Ok(text) => {
                let mut r = Response::new(Full::new(Bytes::from(text)));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                get(r)
            }
            Err(e) => Err(ApiError::Internal(format!("cannot render metrics: {e}"))),
        },
        ["v2", "models", name, rest @ ..] => {
            let (version, action) = match rest {
                ["versions", v, action @ ..] => (Some(*v), action),
                action => (None, action),
            };
            service.check_model(name, version)?;
            match action {
                [] => get(json_response(StatusCode::OK, &service.model_metadata())),
                ["ready"] => {
                    let ready = service.ready.load(Ordering::Acquire);
                    let status = if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    get(json_response(
                        status,
                        &json!({"name": service.model_name, "ready": ready}),
                    ))
                }
                ["infer"] if method == Method::POST => service.infer(req, shapes).await,
                ["infer"] => Err(ApiError::MethodNotAllowed(method)),
                _ => Err(ApiError::NotFound(format!(
                    "{path} is not an Open Inference Protocol route"
                ))),
            }
        }
        _ => Err(ApiError::NotFound(format!(
            "{path} is not an Open Inference Protocol route"
        ))),
    }
}

fn server_metadata() -> ServerMetadata {
    ServerMetadata {
        name: "aimass-inference-server",
        version: env!("CARGO_PKG_VERSION"),
        extensions: vec![
            "binary_tensor_data",
            "model_repository_metadata",
            "statistics_prometheus",
        ],
    }
}

fn metadata_tensors(specs: &[aimass_engine::TensorSpec]) -> Vec<MetadataTensor> {
    specs
        .iter()
        .map(|s| MetadataTensor {
            name: s.name.clone(),
            datatype: s.datatype.as_str(),
            shape: s.shape.clone(),
        })
        .collect()
}

impl Service {
    fn signature(&self) -> &Signature {
        self.backend.signature()
    }

    fn check_model(&self, name: &str, version: Option<&str>) -> Result<(), ApiError> {
        if name != self.model_name {
            return Err(ApiError::NotFound(format!(
                "unknown model {name:?}; this server serves {:?}",
                self.model_name
            )));
        }
        match version {
            Some(v) if v != self.model_version => Err(ApiError::NotFound(format!(
                "unknown version {v:?} of model {name:?}; this server serves version {:?}",
                self.model_version
            ))),
            _ => Ok(()),
        }
    }

    fn model_metadata(&self) -> ModelMetadata {
        let mut parameters = Map::new();
        let dependent = self.backend.batch_dependent();
        parameters.insert("batch_dependent".into(), Value::Bool(dependent));
        parameters.insert(
            "dynamic_batching".into(),
            Value::String(
                if dependent {
                    "off: outputs depend on the whole batch"
                } else {
                    "on"
                }
                .into(),
            ),
        );
        ModelMetadata {
            name: self.model_name.clone(),
            versions: vec![self.model_version.clone()],
            platform: "onnx",
            inputs: metadata_tensors(&self.signature().inputs),
            outputs: metadata_tensors(&self.signature().outputs),
            parameters,
        }
    }

    async fn infer<B: RequestBody>(
        &self,
        req: Request<B>,
        shapes: Option<&mut CallShapes>,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        if !self.ready.load(Ordering::Acquire) {
            return Err(ApiError::NotReady);
        }
        let delay = self.faults.delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.faults.strike() {
            return Err(ApiError::Internal(
                "fault injected (--fault-error-every)".into(),
            ));
        }
        let limit = self.limits.max_request_bytes;
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(ApiError::TooLarge(limit));
        }
        let header_length = match req.headers().get(HEADER_LENGTH) {
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok())
                    .ok_or_else(|| {
                        ProtocolError::Malformed(format!("{HEADER_LENGTH} must be a byte count"))
                    })?,
            ),
            None => None,
        };
        let _reservation = self
            .bodies
            .reserve(declared.unwrap_or(limit))
            .ok_or(ApiError::Saturated)?;
        let read_timeout = self.limits.body_read_timeout;
        let body =
            tokio::time::timeout(read_timeout, Limited::new(req.into_body(), limit).collect())
                .await
                .map_err(|_| ApiError::BodyTimeout(read_timeout))?
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        ApiError::TooLarge(limit)
                    } else {
                        ApiError::BadRequest(ProtocolError::Malformed(format!(
                            "cannot read the body: {e}"
                        )))
                    }
                })?;
        let body = body.to_bytes();
        let (json, binary) = match header_length {
            Some(n) if n <= body.len() => body.split_at(n),
            Some(n) => {
                return Err(ProtocolError::Malformed(format!(
                    "{HEADER_LENGTH} is {n}, but the body has only {} bytes",
                    body.len()
                ))
                .into());
            }
            None => (&body[..], &[][..]),
        };
        let request: InferRequest = serde_json::from_slice(json)
            .map_err(|e| ProtocolError::Malformed(format!("invalid JSON: {e}")))?;
        // Values go into the audit record only as a payload policy keeps them.
        let payload = self
            .enforcement
            .as_ref()
            .and_then(|e| e.payload.as_ref())
            .filter(|_| shapes.is_some());
        let input_shapes: Vec<aimass_audit::TensorShape> = request
            .inputs
            .iter()
            .map(|i| aimass_audit::TensorShape {
                name: i.name.clone(),
                datatype: i.datatype.clone(),
                shape: i.shape.clone(),
                values: payload.and_then(|p| {
                    p.record(&i.name, || {
                        i.data
                            .as_ref()
                            .map(crate::protocol::elements::Elements::values)
                    })
                }),
            })
            .collect();
        let mut decoded = protocol::decode(request, binary, self.signature())?;
        let inputs = std::mem::take(&mut decoded.inputs);
        let receiver = self
            .batcher
            .submit(inputs, decoded.rows)
            .map_err(ApiError::Busy)?;
        let timeout = self.limits.request_timeout;
        let outputs = match tokio::time::timeout(timeout, receiver).await {
            Err(_) => return Err(ApiError::Timeout(timeout)),
            Ok(Err(_)) => return Err(ApiError::Internal("the inference worker stopped".into())),
            Ok(Ok(Err(EngineError::Run(e)))) => {
                return Err(ApiError::Internal(format!("inference failed: {e}")));
            }
            Ok(Ok(Err(e))) => return Err(ApiError::Internal(e.to_string())),
            Ok(Ok(Ok(outputs))) => outputs,
        };
        let encoded = protocol::encode(
            &self.model_name,
            &self.model_version,
            &decoded,
            &outputs,
            self.signature(),
        )
        .map_err(|e| ApiError::Internal(format!("cannot encode the response: {e}")))?;
        if let Some(shapes) = shapes {
            shapes.inputs = input_shapes;
            shapes.outputs = self
                .signature()
                .outputs
                .iter()
                .zip(&outputs)
                .map(|(spec, tensor)| aimass_audit::TensorShape {
                    name: spec.name.clone(),
                    datatype: spec.datatype.to_string(),
                    shape: tensor
                        .shape
                        .iter()
                        .map(|d| i64::try_from(*d).unwrap_or(i64::MAX))
                        .collect(),
                    values: None,
                })
                .collect();
        }
        let mut response = Response::new(Full::new(Bytes::from(encoded.body)));
        let headers = response.headers_mut();
        match encoded.header_length {
            Some(n) => {
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                headers.insert(HEADER_LENGTH, HeaderValue::from(n));
            }
            None => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
        }
        Ok(response)
    }
}
