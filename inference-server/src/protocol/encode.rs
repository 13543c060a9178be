//! Response encoding: JSON, with the outputs the client wanted as binary
//! tensor data appended after the JSON header.

use serde_json::{Map, Value};

use super::decode::Decoded;
use super::{InferResponse, ResponseOutput};
use aimass_engine::Signature;
use aimass_engine::tensor::{Tensor, TensorData};

/// An encoded response body.
#[derive(Debug)]
pub struct Encoded {
    /// The whole body: JSON, then binary data if any.
    pub body: Vec<u8>,
    /// Length of the JSON header when binary data follows it (the value of
    /// `Inference-Header-Content-Length`).
    pub header_length: Option<usize>,
}

/// Encodes the outputs the request asked for.
pub fn encode(
    model_name: &str,
    model_version: &str,
    request: &Decoded,
    outputs: &[Tensor],
    signature: &Signature,
) -> Result<Encoded, serde_json::Error> {
    let mut binary = Vec::new();
    let mut documents = Vec::with_capacity(request.outputs.len());
    for wanted in &request.outputs {
        let Some(tensor) = outputs.get(wanted.index) else {
            continue;
        };
        let name = signature
            .outputs
            .get(wanted.index)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let (parameters, data) = if wanted.binary {
            let before = binary.len();
            append_binary(&tensor.data, &mut binary);
            let mut p = Map::new();
            p.insert(
                "binary_data_size".into(),
                Value::from(binary.len() - before),
            );
            (Some(p), None)
        } else {
            (None, Some(&tensor.data))
        };
        documents.push(ResponseOutput {
            name,
            shape: tensor.shape.clone(),
            datatype: tensor.datatype().as_str(),
            parameters,
            data,
        });
    }
    let response = InferResponse {
        model_name: model_name.to_owned(),
        model_version: model_version.to_owned(),
        id: request.id.clone(),
        parameters: request.parameters.clone(),
        outputs: documents,
    };
    let mut body = serde_json::to_vec(&response)?;
    let header_length =
        (!binary.is_empty() || request.outputs.iter().any(|o| o.binary)).then_some(body.len());
    body.extend_from_slice(&binary);
    Ok(Encoded {
        body,
        header_length,
    })
}

/// Appends elements in the binary tensor format (little-endian; BYTES as
/// 4-byte length and content).
pub fn append_binary(data: &TensorData, out: &mut Vec<u8>) {
    fn each<T, const N: usize>(v: &[T], out: &mut Vec<u8>, bytes: fn(&T) -> [u8; N]) {
        out.reserve(v.len() * N);
        for x in v {
            out.extend_from_slice(&bytes(x));
        }
    }
    match data {
        TensorData::Bool(v) => out.extend(v.iter().map(|b| u8::from(*b))),
        TensorData::Uint8(v) => out.extend_from_slice(v),
        TensorData::Uint16(v) => each(v, out, |x| x.to_le_bytes()),
        TensorData::Uint32(v) => each(v, out, |x| x.to_le_bytes()),
        TensorData::Uint64(v) => each(v, out, |x| x.to_le_bytes()),
        TensorData::Int8(v) => each(v, out, |x| x.to_le_bytes()),
        TensorData::Int16(v) => each(v, out, |x| x.to_le_bytes()),
        TensorData::Int32(v) => each(v, out, |x| x.to_le_bytes()),
        TensorData::Int64(v) => each(v, out, |x| x.to_le_bytes()),
        TensorData::Fp32(v) => each(v, out, |x| x.to_le_bytes()),
        TensorData::Fp64(v) => each(v, out, |x| x.to_le_bytes()),
        TensorData::Bytes(v) => {
            for item in v {
                out.extend_from_slice(&u32::try_from(item.len()).unwrap_or(u32::MAX).to_le_bytes());
                out.extend_from_slice(item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::decode::OutputRequest;
    use aimass_engine::TensorSpec;
    use aimass_engine::tensor::DataType;

    fn signature() -> Signature {
        Signature {
            inputs: Vec::new(),
            outputs: vec![
                TensorSpec {
                    name: "label".into(),
                    datatype: DataType::Int64,
                    shape: vec![-1],
                },
                TensorSpec {
                    name: "probabilities".into(),
                    datatype: DataType::Fp32,
                    shape: vec![-1, 2],
                },
            ],
            on_request: 0,
        }
    }

    fn decoded(outputs: Vec<OutputRequest>) -> Decoded {
        Decoded {
            id: Some("r1".into()),
            parameters: None,
            inputs: Vec::new(),
            outputs,
            rows: 1,
        }
    }

    fn results() -> Vec<Tensor> {
        vec![
            Tensor::new(vec![1], TensorData::Int64(vec![1])).unwrap(),
            Tensor::new(vec![1, 2], TensorData::Fp32(vec![0.1, f32::NAN])).unwrap(),
        ]
    }

    #[test]
    fn json_outputs_keep_f32_precision_and_echo_the_id() {
        let request = decoded(vec![OutputRequest {
            index: 1,
            binary: false,
        }]);
        let e = encode("fraud", "3", &request, &results(), &signature()).unwrap();
        assert_eq!(e.header_length, None);
        let text = String::from_utf8(e.body).unwrap();
        assert_eq!(
            text,
            r#"{"model_name":"fraud","model_version":"3","id":"r1","outputs":[{"name":"probabilities","shape":[1,2],"datatype":"FP32","data":[0.1,null]}]}"#
        );
    }

    #[test]
    fn binary_outputs_follow_the_json_header() {
        let request = decoded(vec![
            OutputRequest {
                index: 0,
                binary: true,
            },
            OutputRequest {
                index: 1,
                binary: false,
            },
        ]);
        let e = encode("fraud", "3", &request, &results(), &signature()).unwrap();
        let header = e.header_length.unwrap();
        let json: Value = serde_json::from_slice(&e.body[..header]).unwrap();
        assert_eq!(json["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert!(json["outputs"][0].get("data").is_none());
        assert_eq!(&e.body[header..], &1i64.to_le_bytes());
    }
}
