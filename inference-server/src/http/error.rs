//! The one place where a request's failure becomes a status code, the
//! headers it calls for and a `{"error": "..."}` body: the server's own
//! errors, the security layer's refusals, and a call that could not be
//! audited.

use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Response, StatusCode};
use serde::Serialize;
use serde_json::json;

use crate::batching::SubmitError;
use crate::protocol::ProtocolError;
use crate::security::Refusal;

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
    /// 401, 403, 429 or 503: the security layer refused the call.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// 503: the call was answered but could not be audited, so its answer
    /// is withheld.
    #[error("the call could not be audited: {0}")]
    Unaudited(String),
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
            Self::Refused(Refusal::Unauthenticated { .. } | Refusal::UnknownApiKey) => {
                StatusCode::UNAUTHORIZED
            }
            Self::Refused(Refusal::Forbidden(_)) => StatusCode::FORBIDDEN,
            Self::Refused(Refusal::RateLimited(_)) => StatusCode::TOO_MANY_REQUESTS,
            Self::Refused(Refusal::Unavailable(_)) | Self::Unaudited(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The same failure as a gRPC status: the code gRPC gives the same
    /// condition, and the same message.
    pub fn grpc_status(&self) -> tonic::Status {
        use tonic::Code;
        let code = match self {
            Self::NotFound(_) => Code::NotFound,
            Self::MethodNotAllowed(_) => Code::Unimplemented,
            Self::Unauthenticated(_)
            | Self::Refused(Refusal::Unauthenticated { .. } | Refusal::UnknownApiKey) => {
                Code::Unauthenticated
            }
            Self::Refused(Refusal::Forbidden(_)) => Code::PermissionDenied,
            Self::BadRequest(_) => Code::InvalidArgument,
            Self::TooLarge(_)
            | Self::Busy(SubmitError::QueueFull(_))
            | Self::Saturated
            | Self::Refused(Refusal::RateLimited(_)) => Code::ResourceExhausted,
            Self::BodyTimeout(_) | Self::Timeout(_) => Code::DeadlineExceeded,
            Self::Busy(SubmitError::Closed)
            | Self::NotReady
            | Self::Refused(Refusal::Unavailable(_))
            | Self::Unaudited(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        };
        tonic::Status::new(code, self.to_string())
    }

    /// The response: the status, `{"error": "..."}`, and the headers the
    /// status calls for.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = json_response(self.status(), &json!({"error": self.to_string()}));
        let headers = response.headers_mut();
        match &self {
            Self::Busy(_) | Self::Saturated => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::Refused(Refusal::RateLimited(wait)) => {
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
            }
            Self::Refused(Refusal::Unauthenticated { .. } | Refusal::UnknownApiKey) => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"aimass\""),
                );
            }
            // The rest of the body may still be on its way.
            Self::BodyTimeout(_) => {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// A JSON response with `status`.
pub(super) fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body)
        .unwrap_or_else(|_| b"{\"error\":\"cannot encode the response\"}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header a response must carry: name and value.
    type Header = Option<(&'static str, &'static str)>;

    #[test]
    fn every_failure_has_its_status_and_the_headers_it_calls_for() {
        let table: Vec<(ApiError, u16, Header)> = vec![
            (ApiError::NotFound("x".into()), 404, None),
            (ApiError::MethodNotAllowed(Method::PUT), 405, None),
            (ApiError::Unauthenticated("x".into()), 401, None),
            (
                ApiError::BadRequest(ProtocolError::Malformed("x".into())),
                400,
                None,
            ),
            (ApiError::TooLarge(10), 413, None),
            (
                ApiError::Busy(SubmitError::QueueFull(4)),
                429,
                Some(("retry-after", "1")),
            ),
            (ApiError::Saturated, 429, Some(("retry-after", "1"))),
            (ApiError::Busy(SubmitError::Closed), 503, None),
            (
                ApiError::BodyTimeout(Duration::from_secs(1)),
                408,
                Some(("connection", "close")),
            ),
            (ApiError::NotReady, 503, None),
            (ApiError::Timeout(Duration::from_secs(1)), 504, None),
            (ApiError::Internal("x".into()), 500, None),
            (
                ApiError::Refused(Refusal::Unauthenticated {
                    audience: "scoring".into(),
                }),
                401,
                Some(("www-authenticate", "Bearer realm=\"aimass\"")),
            ),
            (
                ApiError::Refused(Refusal::UnknownApiKey),
                401,
                Some(("www-authenticate", "Bearer realm=\"aimass\"")),
            ),
            (ApiError::Refused(Refusal::Forbidden("x".into())), 403, None),
            (
                ApiError::Refused(Refusal::RateLimited(Duration::from_millis(1500))),
                429,
                Some(("retry-after", "2")),
            ),
            (
                ApiError::Refused(Refusal::Unavailable("x".into())),
                503,
                None,
            ),
            (ApiError::Unaudited("disk full".into()), 503, None),
        ];
        for (error, status, header) in table {
            let what = format!("{error:?}");
            let message = error.to_string();
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status, "{what}");
            assert_eq!(
                response.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
                Some(&b"application/json"[..]),
                "{what}"
            );
            if let Some((name, value)) = header {
                assert_eq!(
                    response.headers().get(name).and_then(|v| v.to_str().ok()),
                    Some(value),
                    "{what}"
                );
            }
            assert!(!message.is_empty(), "{what}");
        }
    }
}
