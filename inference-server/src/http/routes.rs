//! The Open Inference Protocol routes and the metadata they answer.

use std::sync::atomic::Ordering;

use aimass_engine::Signature;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::error::json_response;
use super::{ApiError, CallShapes, RequestBody, Service};
use crate::protocol::{MetadataTensor, ModelMetadata, ServerMetadata};

/// Which listener a request came in on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Port {
    /// The callers' port.
    Api,
    /// Probes, metrics and the operator's actions.
    Admin,
}

/// Answers one request by its path, or says why not.
pub(super) async fn route<B: RequestBody>(
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
            let ready = service.is_ready();
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
                    let ready = service.is_ready();
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
                ["infer"] if method == Method::POST => {
                    service.infer(req, shapes, super::Origin::Caller).await
                }
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

/// What `GET /v2` says of the server.
pub fn server_metadata() -> ServerMetadata {
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

/// Tensors as model metadata lists them.
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

/// Routes a request; a panic anywhere on its way is answered 500 and
/// counted, never carried to the connection (its audit record and gauges
/// are still written).
pub(super) async fn route_caught<B: RequestBody>(
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

impl Service {
    /// What readiness probes are told: serving, and not shutting down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }

    /// The served model's inputs and outputs.
    pub(crate) fn signature(&self) -> &Signature {
        self.backend.signature()
    }

    /// Whether `name` (and `version`) is the served model.
    pub(crate) fn check_model(&self, name: &str, version: Option<&str>) -> Result<(), ApiError> {
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

    /// What `GET /v2/models/{name}` says of the model.
    pub(crate) fn model_metadata(&self) -> ModelMetadata {
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
}
