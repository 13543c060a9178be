//! The API port under enforcement: authenticate, authorise, rate limit,
//! route, and one audit record for every call, whatever its outcome.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, HeaderValue};
use hyper::{Request, Response};

use super::routes::{Port, route_caught};
use super::{ApiError, CallShapes, RequestBody, Service, handle, observed};
use crate::security::{Action, Principal};

/// Handles one request on the API port: through the security layer when
/// the server enforces one, else as [`handle`].
///
/// `certificate` is the principal of the connection's verified client
/// certificate, if it presented one.
pub async fn handle_api<B: RequestBody>(
    service: Arc<Service>,
    req: Request<B>,
    peer: std::net::SocketAddr,
    certificate: Option<Arc<Principal>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if service.enforcement.is_none() {
        return handle(service, req).await;
    }
    Ok(guarded(&service, req, peer, certificate.as_deref()).await)
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
    certificate: Option<&Principal>,
) -> Response<Full<Bytes>> {
    let Some(enforcement) = &service.enforcement else {
        return ApiError::Internal("no security layer".into()).into_response();
    };
    let received = jiff::Timestamp::now();
    let started = Instant::now();
    let operation = recorded_operation(req.method(), req.uri().path());
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
    let actor = admission.actor();
    let response = match admission.verdict {
        Ok(()) => {
            let answer = route_caught(service, req, Port::Api, Some(&mut shapes));
            observed(service, action == Action::Infer, answer).await
        }
        Err(refusal) => {
            let mut response = ApiError::Refused(refusal).into_response();
            if action == Action::Infer {
                // Counted as answered, as gRPC counts its refusals.
                service
                    .metrics
                    .answered(response.status(), started.elapsed());
            }
            if !drained(req.into_body()).await {
                // The rest of the body is still on the wire: the
                // connection cannot carry another request.
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
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
        Err(message) => ApiError::Unaudited(message).into_response(),
    }
}

/// The most characters of a path an audit record keeps.
const RECORDED_PATH_CHARS: usize = 128;

/// A call as an audit record keeps it, the method (`POST`, or `gRPC` for
/// a gRPC call) and path: at most [`RECORDED_PATH_CHARS`] of the path, so a
/// 60 KB path does not write 60 KB per call.
pub fn recorded_operation(method: impl std::fmt::Display, path: &str) -> String {
    match path.char_indices().nth(RECORDED_PATH_CHARS) {
        Some((end, _)) => format!("{method} {}…", path.get(..end).unwrap_or_default()),
        None => format!("{method} {path}"),
    }
}
