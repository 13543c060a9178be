//! The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`,
//! as KServe and Triton serve it), on its own port and behind the same
//! gates, limits, batching and audit trail as REST: a call is authenticated
//! (bearer token in the `authorization` metadata, API key or client
//! certificate), authorised, rate limited and recorded before and after
//! tonic's generated server decodes it; its message is read within the same
//! size limit, read timeout and body budget; and a scoring call goes through
//! the same decoder and batcher ([`Service::score`]) as a REST one.

mod convert;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tonic::body::Body;

use crate::http::{ApiError, CallShapes, Service};
use crate::security::{Action, Principal};
use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};

/// The messages and server generated from `proto/inference.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
pub mod proto {
    tonic::include_proto!("inference");
}

/// The gRPC front of a [`Service`].
#[derive(Clone)]
pub struct Grpc {
    service: Arc<Service>,
    server: GrpcInferenceServiceServer<Front>,
}

impl Grpc {
    /// The gRPC service of `service`, taking messages up to its request
    /// size limit.
    pub fn new(service: Arc<Service>) -> Self {
        let limit = service.limits.max_request_bytes;
        let server = GrpcInferenceServiceServer::new(Front {
            service: Arc::clone(&service),
        })
        .max_decoding_message_size(limit);
        Self { service, server }
    }

    /// Answers one call: through the security layer when the server
    /// enforces one; never fails (errors are gRPC statuses).
    ///
    /// `certificate` is the principal of the connection's verified client
    /// certificate, if it presented one.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: std::net::SocketAddr,
        certificate: Option<Arc<Principal>>,
    ) -> Result<Response<Body>, Infallible> {
        let received = jiff::Timestamp::now();
        let started = Instant::now();
        let operation = crate::http::recorded_operation("gRPC", req.uri().path());
        let action = if req.uri().path().ends_with("/ModelInfer") {
            Action::Infer
        } else {
            Action::Read
        };
        let metrics = &self.service.metrics;
        let (parts, body) = req.into_parts();
        let mut decision = aimass_audit::Decision::default();
        let admission = match &self.service.enforcement {
            Some(enforcement) => Some(
                enforcement
                    .admit(
                        &parts.headers,
                        certificate.as_deref(),
                        peer.ip(),
                        action,
                        &mut decision,
                    )
                    .await,
            ),
            None => None,
        };
        let infer = action == Action::Infer;
        if infer {
            metrics.in_flight.inc();
        }
        let deadline = deadline(&parts.headers);
        let (response, outcome) = match admission.as_ref().map(|a| &a.verdict) {
            Some(Err(refusal)) => failed(ApiError::Refused(refusal.clone())),
            _ => match deadline {
                // The caller's deadline, when it is sooner than the server's
                // own request timeout (which bounds the model run anyway).
                Some(deadline) if deadline < self.service.limits.request_timeout => {
                    tokio::time::timeout(deadline, self.answer(parts, body))
                        .await
                        .unwrap_or_else(|_| failed(ApiError::Timeout(deadline)))
                }
                _ => self.answer(parts, body).await,
            },
        };
        if infer {
            metrics.in_flight.dec();
            metrics.answered(outcome.status, started.elapsed());
        }
        let (Some(enforcement), Some(admission)) = (&self.service.enforcement, admission) else {
            return Ok(response);
        };
        let actor = admission.actor();
        let call = crate::security::Call {
            received,
            latency: started.elapsed(),
            actor,
            source: peer.to_string(),
            operation,
            decision,
            status: outcome.status.as_u16(),
            shapes: outcome.shapes,
        };
        match enforcement.record(call) {
            Ok(()) => Ok(response),
            Err(message) => Ok(failed(ApiError::Unaudited(message)).0),
        }
    }

    /// Reads the message within the limits and hands it to the generated
    /// server; a panic on the way is answered INTERNAL and counted.
    async fn answer(
        &self,
        mut parts: hyper::http::request::Parts,
        body: Incoming,
    ) -> (Response<Body>, Outcome) {
        use futures::FutureExt;
        let body = match self.service.read_limited(body, None).await {
            Ok(body) => body,
            Err(e) => return failed(e),
        };
        let slot = Slot::default();
        parts.extensions.insert(slot.clone());
        let call = tower_service::Service::call(
            &mut self.server.clone(),
            Request::from_parts(parts, Full::new(body)),
        );
        let response = match std::panic::AssertUnwindSafe(call).catch_unwind().await {
            Ok(Ok(response)) => response,
            Ok(Err(never)) => match never {},
            Err(_) => {
                self.service
                    .metrics
                    .panics
                    .with_label_values(&["request"])
                    .inc();
                return failed(ApiError::Internal("the call could not be handled".into()));
            }
        };
        let outcome = slot.take().unwrap_or_else(|| Outcome {
            // Refused by the generated server before a method ran: an
            // unknown method, or a message that does not decode.
            status: match response.headers().get("grpc-status").map(|v| v.as_bytes()) {
                None | Some(b"0") => StatusCode::OK,
                Some(b"12") => StatusCode::NOT_FOUND,
                Some(_) => StatusCode::BAD_REQUEST,
            },
            shapes: CallShapes::default(),
        });
        (response, outcome)
    }
}

/// The caller's deadline (`grpc-timeout`: up to 8 digits and a unit, H, M,
/// S, m, u or n); `None` when absent or malformed.
fn deadline(headers: &hyper::HeaderMap) -> Option<std::time::Duration> {
    use std::time::Duration;
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// How a call ended, as its audit record and metrics keep it: the HTTP
/// status the same outcome has on REST (UNAUTHENTICATED is 401,
/// RESOURCE_EXHAUSTED from a full queue 429, …), and its tensors.
#[derive(Debug, Default)]
struct Outcome {
    status: StatusCode,
    shapes: CallShapes,
}

/// Where a method leaves its call's [`Outcome`] for [`Grpc::handle`].
#[derive(Clone, Default)]
struct Slot(Arc<Mutex<Option<Outcome>>>);

impl Slot {
    fn put(&self, outcome: Outcome) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(outcome);
    }

    fn take(&self) -> Option<Outcome> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// The trailers-only answer of a failed call, and its outcome.
fn failed(error: ApiError) -> (Response<Body>, Outcome) {
    let outcome = Outcome {
        status: error.status(),
        shapes: CallShapes::default(),
    };
    (error.grpc_status().into_http(), outcome)
}

/// The methods, each answering from the [`Service`]; what a call's
/// outcome was is left in its [`Slot`].
struct Front {
    service: Arc<Service>,
}

impl Front {
    /// `result` as the generated server wants it, its outcome noted.
    fn finish<T>(
        slot: Option<&Slot>,
        result: Result<T, ApiError>,
        shapes: CallShapes,
    ) -> Result<tonic::Response<T>, tonic::Status> {
        let status = match &result {
            Ok(_) => StatusCode::OK,
            Err(e) => e.status(),
        };
        if let Some(slot) = slot {
            slot.put(Outcome { status, shapes });
        }
        result
            .map(tonic::Response::new)
            .map_err(|e| e.grpc_status())
    }

    /// The call's answer from `answer`, for a request on the served model.
    fn about_model<M, T>(
        &self,
        request: tonic::Request<M>,
        name: impl Fn(&M) -> (&str, &str),
        answer: impl FnOnce(&Service) -> T,
    ) -> Result<tonic::Response<T>, tonic::Status> {
        let slot = request.extensions().get::<Slot>().cloned();
        let (model, version) = name(request.get_ref());
        let version = (!version.is_empty()).then_some(version);
        let result = self
            .service
            .check_model(model, version)
            .map(|()| answer(&self.service));
        Self::finish(slot.as_ref(), result, CallShapes::default())
    }

    /// Scores `request`: the model it names must be the one served.
    async fn infer(
        &self,
        request: proto::ModelInferRequest,
        shapes: &mut CallShapes,
    ) -> Result<proto::ModelInferResponse, ApiError> {
        let version = (!request.model_version.is_empty()).then_some(request.model_version.as_str());
        self.service.check_model(&request.model_name, version)?;
        let (request, binary) = convert::infer_request(request)?;
        let (decoded, outputs) = self
            .service
            .score(request, &binary, Some(shapes), crate::http::Origin::Caller)
            .await?;
        Ok(convert::infer_response(
            &self.service.model_name,
            &self.service.model_version,
            &decoded,
            &outputs,
            self.service.signature(),
        ))
    }
}

type Answer<T> = Result<tonic::Response<T>, tonic::Status>;

#[tonic::async_trait]
impl GrpcInferenceService for Front {
    async fn server_live(
        &self,
        request: tonic::Request<proto::ServerLiveRequest>,
    ) -> Answer<proto::ServerLiveResponse> {
        let slot = request.extensions().get::<Slot>().cloned();
        Self::finish(
            slot.as_ref(),
            Ok(proto::ServerLiveResponse { live: true }),
            CallShapes::default(),
        )
    }

    async fn server_ready(
        &self,
        request: tonic::Request<proto::ServerReadyRequest>,
    ) -> Answer<proto::ServerReadyResponse> {
        let slot = request.extensions().get::<Slot>().cloned();
        let ready = self.service.is_ready();
        Self::finish(
            slot.as_ref(),
            Ok(proto::ServerReadyResponse { ready }),
            CallShapes::default(),
        )
    }

    async fn model_ready(
        &self,
        request: tonic::Request<proto::ModelReadyRequest>,
    ) -> Answer<proto::ModelReadyResponse> {
        self.about_model(
            request,
            |r| (&r.name, &r.version),
            |service| proto::ModelReadyResponse {
                ready: service.is_ready(),
            },
        )
    }

    async fn server_metadata(
        &self,
        request: tonic::Request<proto::ServerMetadataRequest>,
    ) -> Answer<proto::ServerMetadataResponse> {
        let slot = request.extensions().get::<Slot>().cloned();
        let metadata = crate::http::server_metadata();
        let response = proto::ServerMetadataResponse {
            name: metadata.name.to_owned(),
            version: metadata.version.to_owned(),
            extensions: metadata.extensions.into_iter().map(str::to_owned).collect(),
        };
        Self::finish(slot.as_ref(), Ok(response), CallShapes::default())
    }

    async fn model_metadata(
        &self,
        request: tonic::Request<proto::ModelMetadataRequest>,
    ) -> Answer<proto::ModelMetadataResponse> {
        self.about_model(
            request,
            |r| (&r.name, &r.version),
            |service| convert::model_metadata(service.model_metadata()),
        )
    }

    async fn model_infer(
        &self,
        request: tonic::Request<proto::ModelInferRequest>,
    ) -> Answer<proto::ModelInferResponse> {
        let slot = request.extensions().get::<Slot>().cloned();
        let mut shapes = CallShapes::default();
        let result = self.infer(request.into_inner(), &mut shapes).await;
        Self::finish(slot.as_ref(), result, shapes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_callers_deadline_is_read_as_grpc_writes_it_and_nonsense_is_ignored() {
        let read = |value: &str| {
            let mut headers = hyper::HeaderMap::new();
            headers.insert("grpc-timeout", value.parse().unwrap());
            deadline(&headers)
        };
        assert_eq!(read("2S"), Some(Duration::from_secs(2)));
        assert_eq!(read("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(read("5M"), Some(Duration::from_secs(300)));
        assert_eq!(read("250m"), Some(Duration::from_millis(250)));
        assert_eq!(read("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(read("7n"), Some(Duration::from_nanos(7)));
        for nonsense in ["", "S", "123456789S", "10x", "-1S", "1.5S", "é"] {
            assert_eq!(read(nonsense), None, "{nonsense:?}");
        }
        assert_eq!(deadline(&hyper::HeaderMap::new()), None);
    }
}
