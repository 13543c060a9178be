//! The gRPC messages as the REST documents the rest of the server knows:
//! a `ModelInferRequest` becomes an [`InferRequest`] whose inputs all come
//! as binary tensor data (raw contents as sent, typed contents written out),
//! so both protocols go through one decoder; outputs go back as raw
//! contents, as Triton answers.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use super::proto::infer_parameter::ParameterChoice;
use super::proto::model_infer_response::InferOutputTensor;
use super::proto::model_metadata_response::TensorMetadata;
use super::proto::{
    InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse,
    ModelMetadataResponse,
};
use crate::protocol::{
    Decoded, InferRequest, ModelMetadata, ProtocolError, RequestInput, RequestOutput, append_binary,
};
use aimass_engine::Signature;
use aimass_engine::tensor::{DataType, Tensor, TensorData};

/// `request` as a REST request and its binary tensor data.
pub fn infer_request(request: ModelInferRequest) -> Result<(InferRequest, Vec<u8>), ProtocolError> {
    let raw = request.raw_input_contents;
    if !raw.is_empty() && raw.len() != request.inputs.len() {
        return Err(ProtocolError::Malformed(format!(
            "raw_input_contents has {} entries, but there are {} inputs: give one per input, or none and contents in each",
            raw.len(),
            request.inputs.len()
        )));
    }
    let mut binary = Vec::with_capacity(raw.iter().map(Vec::len).sum());
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for (i, input) in request.inputs.into_iter().enumerate() {
        let before = binary.len();
        match (raw.get(i), input.contents) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    &input.name,
                    "give its elements in contents or in raw_input_contents, not both",
                ));
            }
            (Some(bytes), None) => binary.extend_from_slice(bytes),
            (None, Some(contents)) => {
                let data = typed(&input.name, &input.datatype, contents)?;
                append_binary(&data, &mut binary);
            }
            (None, None) => {
                return Err(bad(
                    &input.name,
                    "no data: give contents, or raw_input_contents for every input",
                ));
            }
        }
        let mut parameters = Map::new();
        parameters.insert(
            "binary_data_size".into(),
            Value::from(binary.len() - before),
        );
        inputs.push(RequestInput {
            name: input.name,
            shape: input.shape,
            datatype: input.datatype,
            parameters: Some(parameters),
            data: None,
        });
    }
    let outputs = (!request.outputs.is_empty()).then(|| {
        request
            .outputs
            .into_iter()
            .map(|o| RequestOutput {
                name: o.name,
                parameters: None,
            })
            .collect()
    });
    let request = InferRequest {
        id: non_empty(request.id),
        model_name: None,
        model_version: None,
        parameters: (!request.parameters.is_empty()).then(|| to_json(request.parameters)),
        inputs,
        outputs,
    };
    Ok((request, binary))
}

/// The answer to a scored request: the outputs it asked for, as raw
/// contents.
pub fn infer_response(
    model_name: &str,
    model_version: &str,
    request: &Decoded,
    outputs: &[Tensor],
    signature: &Signature,
) -> ModelInferResponse {
    let mut response = ModelInferResponse {
        model_name: model_name.to_owned(),
        model_version: model_version.to_owned(),
        id: request.id.clone().unwrap_or_default(),
        parameters: request
            .parameters
            .as_ref()
            .map(from_json)
            .unwrap_or_default(),
        ..ModelInferResponse::default()
    };
    for wanted in &request.outputs {
        let (Some(tensor), Some(spec)) = (
            outputs.get(wanted.index),
            signature.outputs.get(wanted.index),
        ) else {
            continue;
        };
        let mut raw = Vec::new();
        append_binary(&tensor.data, &mut raw);
        response.outputs.push(InferOutputTensor {
            name: spec.name.clone(),
            datatype: tensor.datatype().as_str().to_owned(),
            shape: tensor
                .shape
                .iter()
                .map(|d| i64::try_from(*d).unwrap_or(i64::MAX))
                .collect(),
            ..InferOutputTensor::default()
        });
        response.raw_output_contents.push(raw);
    }
    response
}

/// Model metadata as the gRPC service answers it (its parameters as
/// properties).
pub fn model_metadata(metadata: ModelMetadata) -> ModelMetadataResponse {
    let tensors = |tensors: Vec<crate::protocol::MetadataTensor>| {
        tensors
            .into_iter()
            .map(|t| TensorMetadata {
                name: t.name,
                datatype: t.datatype.to_owned(),
                shape: t.shape,
            })
            .collect()
    };
    ModelMetadataResponse {
        name: metadata.name,
        versions: metadata.versions,
        platform: metadata.platform.to_owned(),
        inputs: tensors(metadata.inputs),
        outputs: tensors(metadata.outputs),
        properties: metadata
            .parameters
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn bad(name: &str, reason: &str) -> ProtocolError {
    ProtocolError::BadData {
        name: name.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The elements of typed `contents` for an input of `datatype`: only the
/// field of that type may hold elements, and each must fit the type.
fn typed(
    name: &str,
    datatype: &str,
    contents: InferTensorContents,
) -> Result<TensorData, ProtocolError> {
    let datatype = DataType::parse(datatype).ok_or_else(|| ProtocolError::WrongDatatype {
        name: name.to_owned(),
        got: datatype.to_owned(),
        expected: "a datatype of the protocol".into(),
    })?;
    let filled: Vec<&str> = [
        ("bool_contents", contents.bool_contents.len()),
        ("int_contents", contents.int_contents.len()),
        ("int64_contents", contents.int64_contents.len()),
        ("uint_contents", contents.uint_contents.len()),
        ("uint64_contents", contents.uint64_contents.len()),
        ("fp32_contents", contents.fp32_contents.len()),
        ("fp64_contents", contents.fp64_contents.len()),
        ("bytes_contents", contents.bytes_contents.len()),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(field, _)| field)
    .collect();
    let field = contents_field(datatype);
    if let Some(other) = filled.iter().find(|f| **f != field) {
        return Err(bad(
            name,
            &format!("{datatype} elements go in contents.{field}, not contents.{other}"),
        ));
    }
    let narrow = |reason: String| bad(name, &reason);
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(contents.bool_contents),
        DataType::Uint8 => {
            TensorData::Uint8(fit(contents.uint_contents, datatype).map_err(narrow)?)
        }
        DataType::Uint16 => {
            TensorData::Uint16(fit(contents.uint_contents, datatype).map_err(narrow)?)
        }
        DataType::Uint32 => TensorData::Uint32(contents.uint_contents),
        DataType::Uint64 => TensorData::Uint64(contents.uint64_contents),
        DataType::Int8 => TensorData::Int8(fit(contents.int_contents, datatype).map_err(narrow)?),
        DataType::Int16 => TensorData::Int16(fit(contents.int_contents, datatype).map_err(narrow)?),
        DataType::Int32 => TensorData::Int32(contents.int_contents),
        DataType::Int64 => TensorData::Int64(contents.int64_contents),
        DataType::Fp32 => TensorData::Fp32(contents.fp32_contents),
        DataType::Fp64 => TensorData::Fp64(contents.fp64_contents),
        DataType::Bytes => TensorData::Bytes(contents.bytes_contents),
    })
}

/// The field of `InferTensorContents` that holds elements of `datatype`.
fn contents_field(datatype: DataType) -> &'static str {
    match datatype {
        DataType::Bool => "bool_contents",
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => "uint_contents",
        DataType::Uint64 => "uint64_contents",
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "int_contents",
        DataType::Int64 => "int64_contents",
        DataType::Fp32 => "fp32_contents",
        DataType::Fp64 => "fp64_contents",
        DataType::Bytes => "bytes_contents",
    }
}

/// `values` narrowed to `T`, or which element does not fit.
fn fit<S: Copy + std::fmt::Display, T: TryFrom<S>>(
    values: Vec<S>,
    datatype: DataType,
) -> Result<Vec<T>, String> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            T::try_from(*v)
                .map_err(|_| format!("element {i} ({v}) is out of the range of {datatype}"))
        })
        .collect()
}

/// Request parameters as the REST documents hold them.
fn to_json(parameters: HashMap<String, InferParameter>) -> Map<String, Value> {
    parameters
        .into_iter()
        .map(|(k, p)| {
            let value = match p.parameter_choice {
                Some(ParameterChoice::BoolParam(b)) => Value::Bool(b),
                Some(ParameterChoice::Int64Param(n)) => Value::from(n),
                Some(ParameterChoice::Uint64Param(n)) => Value::from(n),
                Some(ParameterChoice::DoubleParam(x)) => {
                    Number::from_f64(x).map_or(Value::Null, Value::Number)
                }
                Some(ParameterChoice::StringParam(s)) => Value::String(s),
                None => Value::Null,
            };
            (k, value)
        })
        .collect()
}

/// Parameters back as gRPC holds them (the request's, echoed).
fn from_json(parameters: &Map<String, Value>) -> HashMap<String, InferParameter> {
    parameters
        .iter()
        .map(|(k, v)| {
            let choice = match v {
                Value::Bool(b) => Some(ParameterChoice::BoolParam(*b)),
                Value::Number(n) => n
                    .as_i64()
                    .map(ParameterChoice::Int64Param)
                    .or_else(|| n.as_u64().map(ParameterChoice::Uint64Param))
                    .or_else(|| n.as_f64().map(ParameterChoice::DoubleParam)),
                Value::String(s) => Some(ParameterChoice::StringParam(s.clone())),
                other => Some(ParameterChoice::StringParam(other.to_string())),
            };
            (
                k.clone(),
                InferParameter {
                    parameter_choice: choice,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
