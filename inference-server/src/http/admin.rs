//! The admin port: probes, metrics, the operator's warm-up, the audit
//! chain's checkpoint and the drift counts. Never reachable from callers
//! (its own listener).

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::error::json_response;
use super::routes::{Port, route};
use super::{ApiError, RequestBody, Service};

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
                .infer(zeros, None, super::Origin::WarmUp)
                .await
                .unwrap_or_else(ApiError::into_response))
        }
        "/warm-up" => Ok(ApiError::MethodNotAllowed(req.method().clone()).into_response()),
        "/drift" if req.method() == Method::GET => match &service.drift {
            Some(drift) => Ok(json_response(StatusCode::OK, &drift.report())),
            None => Ok(ApiError::NotFound("this server counts no drift: it was started without --baseline-uri".into()).into_response()),
        },
        "/audit/checkpoint" if req.method() == Method::GET => {
            match service.enforcement.as_ref().and_then(|e| Some((e.audit.as_ref()?, &e.target))) {
                Some((audit, target)) => Ok(json_response(StatusCode::OK, &audit.sealed_checkpoint(target))),
                None => Ok(ApiError::NotFound("this server keeps no audit trail".into()).into_response()),
            }
        }
        path => Ok(ApiError::NotFound(format!(
            "the admin port serves /v2/health/live, /v2/health/ready, /metrics, POST /warm-up, /audit/checkpoint and /drift, not {path}"
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
