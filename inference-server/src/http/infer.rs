//! An inference request: read the body within the limits, decode it
//! against the model's signature, queue it for a batch, encode the answer,
//! and note the shapes (and the values a payload policy keeps) for its
//! audit record.

use std::sync::atomic::Ordering;

use aimass_engine::EngineError;
use aimass_engine::tensor::Tensor;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response};

use super::{ApiError, CallShapes, HEADER_LENGTH, Origin, RequestBody, Service};
use crate::protocol::elements::Elements;
use crate::protocol::{self, InferRequest, ProtocolError};

impl Service {
    /// Answers one inference request: the body, then [`Service::score`],
    /// the answer.
    pub(super) async fn infer<B: RequestBody>(
        &self,
        req: Request<B>,
        shapes: Option<&mut CallShapes>,
        origin: Origin,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let (body, header_length) = self.read_body(req).await?;
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
        let (decoded, outputs) = self.score(request, binary, shapes, origin).await?;
        let encoded = protocol::encode(
            &self.model_name,
            &self.model_version,
            &decoded,
            &outputs,
            self.signature(),
        )
        .map_err(|e| ApiError::Internal(format!("cannot encode the response: {e}")))?;
        Ok(answer(encoded))
    }

    /// Scores a request however it came (REST or gRPC): rehearsal faults,
    /// decoding against the signature, feature rules, a model run; the
    /// decoded request (what to answer) and the model's outputs, with the
    /// shapes noted for the audit record and a caller's rows counted for
    /// drift.
    pub(crate) async fn score(
        &self,
        request: InferRequest,
        binary: &[u8],
        shapes: Option<&mut CallShapes>,
        origin: Origin,
    ) -> Result<(protocol::Decoded, Vec<Tensor>), ApiError> {
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
        self.check_named_model(&request)?;
        let input_shapes = shapes.is_some().then(|| self.input_shapes(&request));
        let mut decoded = protocol::decode(request, binary, self.signature())?;
        let drift = self.drift.as_ref().filter(|_| origin == Origin::Caller);
        if let Some(drift) = drift {
            drift.admit(&decoded.inputs, decoded.rows)?;
            drift.count_inputs(&decoded.inputs, decoded.rows);
        }
        // A copy of the inputs only for a request the shadow scores too.
        let shadowed = self
            .shadow
            .as_ref()
            .filter(|s| origin == Origin::Caller && s.chosen())
            .map(|s| (s, decoded.inputs.clone()));
        let outputs = self
            .run(std::mem::take(&mut decoded.inputs), decoded.rows)
            .await?;
        if let Some((shadow, inputs)) = shadowed {
            shadow.offer(inputs, &outputs);
        }
        if let Some(drift) = drift {
            drift.count_outputs(&outputs, decoded.rows);
        }
        if let Some(shapes) = shapes {
            shapes.inputs = input_shapes.unwrap_or_default();
            shapes.outputs = self.output_shapes(&outputs);
        }
        Ok((decoded, outputs))
    }

    /// Whether the model a body names, if it names one, is the one served
    /// (the path named it already).
    fn check_named_model(&self, request: &InferRequest) -> Result<(), ProtocolError> {
        let named = [
            ("model_name", &request.model_name, &self.model_name),
            ("model_version", &request.model_version, &self.model_version),
        ];
        for (field, sent, served) in named {
            if let Some(sent) = sent
                && sent != served
            {
                return Err(ProtocolError::OtherModel {
                    field,
                    sent: sent.clone(),
                    served: served.clone(),
                });
            }
        }
        Ok(())
    }

    /// Reads the body within the size limit, the body budget and the read
    /// timeout; with the length of its JSON part when binary data follows.
    async fn read_body<B: RequestBody>(
        &self,
        req: Request<B>,
    ) -> Result<(Bytes, Option<usize>), ApiError> {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
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
        let body = self.read_limited(req.into_body(), declared).await?;
        Ok((body, header_length))
    }

    /// Reads a request body (`declared` bytes long, when its length is
    /// known) within the size limit, the read timeout and the body budget:
    /// a declared length is reserved at once, an unknown one as it arrives.
    pub(crate) async fn read_limited<B: RequestBody>(
        &self,
        body: B,
        declared: Option<usize>,
    ) -> Result<Bytes, ApiError> {
        let limit = self.limits.max_request_bytes;
        if declared.is_some_and(|n| n > limit) {
            return Err(ApiError::TooLarge(limit));
        }
        let mut reservation = self.bodies.reservation();
        if let Some(declared) = declared {
            reservation.grow(declared)?;
        }
        let read_timeout = self.limits.body_read_timeout;
        let read = async {
            let mut body = std::pin::pin!(Limited::new(body, limit));
            let mut chunks: Vec<Bytes> = Vec::new();
            let mut read = 0;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| {
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
                if let Ok(data) = frame.into_data() {
                    read += data.len();
                    reservation.grow(read)?;
                    chunks.push(data);
                }
            }
            // One chunk (the usual small request) is kept as it came.
            Ok(match chunks.as_slice() {
                [one] => one.clone(),
                _ => Bytes::from(chunks.concat()),
            })
        };
        tokio::time::timeout(read_timeout, read)
            .await
            .map_err(|_| ApiError::BodyTimeout(read_timeout))?
    }

    /// The inputs as the audit record keeps them: names, types, shapes,
    /// and only the values the payload policy keeps.
    fn input_shapes(&self, request: &InferRequest) -> Vec<aimass_audit::TensorShape> {
        let payload = self.enforcement.as_ref().and_then(|e| e.payload.as_ref());
        request
            .inputs
            .iter()
            .map(|i| aimass_audit::TensorShape {
                name: i.name.clone(),
                datatype: i.datatype.clone(),
                shape: i.shape.clone(),
                values: payload
                    .and_then(|p| p.record(&i.name, || i.data.as_ref().map(Elements::values))),
            })
            .collect()
    }

    /// Queues `inputs` for a model run and waits for it, within the
    /// request timeout; or runs them in place when the model answers them
    /// quicker than a hand-off to a worker.
    async fn run(&self, inputs: Vec<Tensor>, rows: usize) -> Result<Vec<Tensor>, ApiError> {
        let reply = if self.batcher.runs_in_place(rows) {
            self.batcher.run_here(inputs, rows)
        } else {
            let receiver = self.batcher.submit(inputs, rows).map_err(ApiError::Busy)?;
            let timeout = self.limits.request_timeout;
            match tokio::time::timeout(timeout, receiver).await {
                Err(_) => return Err(ApiError::Timeout(timeout)),
                Ok(Err(_)) => {
                    return Err(ApiError::Internal("the inference worker stopped".into()));
                }
                Ok(Ok(reply)) => reply,
            }
        };
        match reply {
            Err(EngineError::Run(e)) => Err(ApiError::Internal(format!("inference failed: {e}"))),
            Err(e) => Err(ApiError::Internal(e.to_string())),
            Ok(outputs) => Ok(outputs),
        }
    }

    /// The outputs as the audit record keeps them: names, types, shapes.
    fn output_shapes(&self, outputs: &[Tensor]) -> Vec<aimass_audit::TensorShape> {
        self.signature()
            .outputs
            .iter()
            .zip(outputs)
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
            .collect()
    }
}

/// The response carrying an encoded answer, JSON or with binary data.
fn answer(encoded: protocol::Encoded) -> Response<Full<Bytes>> {
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
    response
}
