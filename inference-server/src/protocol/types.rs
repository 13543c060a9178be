//! The protocol's documents, as serde types.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use aimass_engine::tensor::TensorData;

/// `POST /v2/models/{name}[/versions/{version}]/infer` request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// Echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// The model, when the client repeats it in the body (KServe's client
    /// does); it must be the one in the path.
    #[serde(default)]
    pub model_name: Option<String>,
    /// The version, when the client repeats it in the body; it must be the
    /// one served.
    #[serde(default)]
    pub model_version: Option<String>,
    /// Request parameters, e.g. `binary_data_output`.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// The input tensors.
    pub inputs: Vec<RequestInput>,
    /// The outputs wanted (all when absent).
    #[serde(default)]
    pub outputs: Option<Vec<RequestOutput>>,
}

/// One input tensor of a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestInput {
    /// Input name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<i64>,
    /// Element type, e.g. `FP32`.
    pub datatype: String,
    /// Tensor parameters, e.g. `binary_data_size`.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// Elements, flat or nested, row-major, read into one typed vector;
    /// absent when sent as binary data.
    #[serde(default)]
    pub data: Option<super::elements::Elements>,
}

/// One requested output.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestOutput {
    /// Output name.
    pub name: String,
    /// Output parameters, e.g. `binary_data`.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
}

/// Inference response body.
#[derive(Debug, Serialize)]
pub struct InferResponse<'a> {
    /// The model that answered.
    pub model_name: String,
    /// Its version.
    pub model_version: String,
    /// The request's id, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The request's parameters, passed through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    /// The output tensors.
    pub outputs: Vec<ResponseOutput<'a>>,
}

/// One output tensor of a response.
#[derive(Debug, Serialize)]
pub struct ResponseOutput<'a> {
    /// Output name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Element type.
    pub datatype: &'static str,
    /// `binary_data_size` when the data follows in binary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    /// Elements, flat, row-major; absent when sent as binary data.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_data"
    )]
    pub data: Option<&'a TensorData>,
}

/// Elements as a flat JSON array: numbers (NaN as null), booleans, or
/// strings for BYTES.
fn serialize_data<S: serde::Serializer>(
    data: &Option<&TensorData>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let Some(data) = data else {
        return s.serialize_none();
    };
    match data {
        TensorData::Bytes(items) => {
            let mut seq = s.serialize_seq(Some(items.len()))?;
            for item in items {
                seq.serialize_element(&String::from_utf8_lossy(item))?;
            }
            seq.end()
        }
        TensorData::Bool(v) => v.serialize(s),
        TensorData::Uint8(v) => v.serialize(s),
        TensorData::Uint16(v) => v.serialize(s),
        TensorData::Uint32(v) => v.serialize(s),
        TensorData::Uint64(v) => v.serialize(s),
        TensorData::Int8(v) => v.serialize(s),
        TensorData::Int16(v) => v.serialize(s),
        TensorData::Int32(v) => v.serialize(s),
        TensorData::Int64(v) => v.serialize(s),
        TensorData::Fp32(v) => v.serialize(s),
        TensorData::Fp64(v) => v.serialize(s),
    }
}

/// `GET /v2` body.
#[derive(Debug, Serialize)]
pub struct ServerMetadata {
    /// Server name.
    pub name: &'static str,
    /// Server version.
    pub version: &'static str,
    /// Protocol extensions supported.
    pub extensions: Vec<&'static str>,
}

/// A tensor in model metadata.
#[derive(Debug, Serialize)]
pub struct MetadataTensor {
    /// Name.
    pub name: String,
    /// Element type.
    pub datatype: &'static str,
    /// Dimensions, `-1` for any size.
    pub shape: Vec<i64>,
}

/// `GET /v2/models/{name}` body.
#[derive(Debug, Serialize)]
pub struct ModelMetadata {
    /// Model name.
    pub name: String,
    /// Versions served.
    pub versions: Vec<String>,
    /// Model format.
    pub platform: &'static str,
    /// Inputs.
    pub inputs: Vec<MetadataTensor>,
    /// Outputs.
    pub outputs: Vec<MetadataTensor>,
    /// Facts about serving, e.g. whether requests are batched together.
    pub parameters: Map<String, Value>,
}
