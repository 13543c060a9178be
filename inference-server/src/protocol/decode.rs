//! Request decoding: JSON or binary tensor data into tensors, checked against
//! the model's signature so that a bad request gets a precise 400, never a
//! wrong score.

use serde_json::{Map, Value};

use super::elements::{Element, Elements, Number};
use super::{InferRequest, ProtocolError, RequestInput, RequestOutput};
use aimass_engine::tensor::{DataType, Tensor, TensorData};
use aimass_engine::{Signature, TensorSpec};

/// An output the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputRequest {
    /// Index in the model's outputs.
    pub index: usize,
    /// Send it with the binary tensor data extension.
    pub binary: bool,
}

/// A request, ready for the model.
#[derive(Debug)]
pub struct Decoded {
    /// The request id, echoed back.
    pub id: Option<String>,
    /// The request parameters, passed through.
    pub parameters: Option<Map<String, Value>>,
    /// Inputs, in the model's order.
    pub inputs: Vec<Tensor>,
    /// Outputs to return, in the order asked.
    pub outputs: Vec<OutputRequest>,
    /// Rows in the request (its batch size).
    pub rows: usize,
}

fn flag(parameters: Option<&Map<String, Value>>, name: &str) -> bool {
    parameters
        .and_then(|p| p.get(name))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Decodes `request` (whose binary tensor data, if any, is `binary`) for a
/// model with `signature`.
pub fn decode(
    request: InferRequest,
    binary: &[u8],
    signature: &Signature,
) -> Result<Decoded, ProtocolError> {
    let mut slots: Vec<Option<Tensor>> = vec![None; signature.inputs.len()];
    let mut binary_left = Binary {
        bytes: binary,
        cursor: 0,
    };
    for input in request.inputs {
        let index = signature
            .inputs
            .iter()
            .position(|s| s.name == input.name)
            .ok_or_else(|| ProtocolError::UnknownInput {
                name: input.name.clone(),
                expected: names(&signature.inputs),
            })?;
        if slots[index].is_some() {
            return Err(ProtocolError::DuplicateInput(input.name));
        }
        slots[index] = Some(decode_input(
            input,
            &signature.inputs[index],
            &mut binary_left,
        )?);
    }
    if binary_left.cursor != binary.len() {
        return Err(ProtocolError::Malformed(format!(
            "{} bytes of binary data follow the JSON header, but inputs claim {}",
            binary.len(),
            binary_left.cursor
        )));
    }
    let mut inputs = Vec::with_capacity(slots.len());
    for (slot, spec) in slots.into_iter().zip(&signature.inputs) {
        inputs.push(slot.ok_or_else(|| ProtocolError::MissingInput {
            name: spec.name.clone(),
            expected: names(&signature.inputs),
        })?);
    }
    let rows = batch_rows(&inputs, signature)?;
    let default_binary = flag(request.parameters.as_ref(), "binary_data_output");
    let outputs = requested_outputs(request.outputs, signature, default_binary)?;
    Ok(Decoded {
        id: request.id,
        parameters: request.parameters,
        inputs,
        outputs,
        rows,
    })
}

fn names(specs: &[TensorSpec]) -> Vec<String> {
    specs.iter().map(|s| s.name.clone()).collect()
}

/// The binary tensor data after the JSON header, consumed input by input.
struct Binary<'a> {
    bytes: &'a [u8],
    cursor: usize,
}

impl<'a> Binary<'a> {
    /// The next `size` bytes, or `None` when fewer are left.
    fn take(&mut self, size: usize) -> Option<&'a [u8]> {
        let end = self
            .cursor
            .checked_add(size)
            .filter(|end| *end <= self.bytes.len())?;
        let taken = self.bytes.get(self.cursor..end)?;
        self.cursor = end;
        Some(taken)
    }
}

/// One input, checked against its `spec`, as a tensor.
fn decode_input(
    input: RequestInput,
    spec: &TensorSpec,
    binary: &mut Binary<'_>,
) -> Result<Tensor, ProtocolError> {
    let datatype = check_signature(&input, spec)?;
    let bad = |reason: String| ProtocolError::BadData {
        name: input.name.clone(),
        reason,
    };
    let shape: Vec<usize> = input
        .shape
        .iter()
        .map(|d| usize::try_from(*d).unwrap_or(0))
        .collect();
    let count = shape
        .iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(*d))
        .ok_or_else(|| bad("the shape has too many elements".into()))?;
    let binary_size = input
        .parameters
        .as_ref()
        .and_then(|p| p.get("binary_data_size"))
        .map(|v| {
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| bad("binary_data_size must be a non-negative integer".into()))
        })
        .transpose()?;
    let data = match (binary_size, input.data) {
        (Some(size), None) => {
            let bytes = binary.take(size).ok_or_else(|| {
                bad(format!(
                    "binary_data_size {size} runs past the {} bytes of binary data",
                    binary.bytes.len()
                ))
            })?;
            from_binary(datatype, bytes, count).map_err(bad)?
        }
        (None, Some(elements)) => {
            if elements.len() != count {
                return Err(bad(format!(
                    "shape {:?} holds {count} elements, but {} were sent",
                    input.shape,
                    elements.len()
                )));
            }
            from_json(datatype, elements).map_err(bad)?
        }
        (Some(_), Some(_)) => {
            return Err(bad("give either data or binary_data_size, not both".into()));
        }
        (None, None) => {
            return Err(bad(
                "no data: give data, or binary_data_size with binary tensor data".into(),
            ));
        }
    };
    Tensor::new(shape, data).ok_or_else(|| bad("element count does not match the shape".into()))
}

/// The input's datatype, when it and the shape fit the model's `spec`.
fn check_signature(input: &RequestInput, spec: &TensorSpec) -> Result<DataType, ProtocolError> {
    let wrong_datatype = || ProtocolError::WrongDatatype {
        name: input.name.clone(),
        got: input.datatype.clone(),
        expected: spec.datatype.to_string(),
    };
    let datatype = DataType::parse(&input.datatype).ok_or_else(wrong_datatype)?;
    if datatype != spec.datatype {
        return Err(wrong_datatype());
    }
    let fits = input.shape.len() == spec.shape.len()
        && input
            .shape
            .iter()
            .zip(&spec.shape)
            .all(|(got, want)| *got >= 0 && (*want < 0 || got == want));
    if !fits {
        return Err(ProtocolError::WrongShape {
            name: input.name.clone(),
            got: input.shape.clone(),
            expected: spec.shape.clone(),
        });
    }
    Ok(datatype)
}

/// The outputs to return: those `wanted`, or all but those returned only
/// on request.
fn requested_outputs(
    wanted: Option<Vec<RequestOutput>>,
    signature: &Signature,
    default_binary: bool,
) -> Result<Vec<OutputRequest>, ProtocolError> {
    let Some(wanted) = wanted else {
        let shown = signature.outputs.len().saturating_sub(signature.on_request);
        return Ok((0..shown)
            .map(|index| OutputRequest {
                index,
                binary: default_binary,
            })
            .collect());
    };
    wanted
        .into_iter()
        .map(|o| {
            let index = signature
                .outputs
                .iter()
                .position(|s| s.name == o.name)
                .ok_or_else(|| ProtocolError::UnknownOutput {
                    name: o.name.clone(),
                    expected: names(&signature.outputs),
                })?;
            let binary = o
                .parameters
                .as_ref()
                .and_then(|p| p.get("binary_data"))
                .and_then(Value::as_bool)
                .unwrap_or(default_binary);
            Ok(OutputRequest { index, binary })
        })
        .collect()
}

/// The batch size: the first dimension, which inputs with a dynamic first
/// dimension must agree on.
fn batch_rows(inputs: &[Tensor], signature: &Signature) -> Result<usize, ProtocolError> {
    let batched: Vec<usize> = inputs
        .iter()
        .zip(&signature.inputs)
        .filter(|(_, spec)| spec.shape.first() == Some(&-1))
        .map(|(t, _)| t.rows())
        .collect();
    match batched.first() {
        Some(first) if batched.iter().any(|r| r != first) => {
            Err(ProtocolError::BatchMismatch(batched))
        }
        Some(first) => Ok(*first),
        None => Ok(1),
    }
}

/// A value for an error message: its first 40 characters (never a cut
/// through a character).
fn describe(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", text.get(..end).unwrap_or_default()),
        None => text,
    }
}

/// Why `elements`, which are not all of the kind `fits` accepts, do not
/// make `want`: the first element that is not.
fn wrong_kind(elements: Elements, fits: fn(&Element) -> bool, want: &str) -> String {
    let all = elements.into_elements();
    match all.iter().enumerate().find(|(_, e)| !fits(e)) {
        Some((i, e)) => format!("element {i} is {}, not {want}", describe(&e.value())),
        None => format!("the elements are not {want}"),
    }
}

/// The numbers of `elements`, which must all be numbers or nulls.
fn numbers(elements: Elements, want: &str) -> Result<Vec<Number>, String> {
    match elements {
        Elements::Empty => Ok(Vec::new()),
        Elements::Numbers(numbers) => Ok(numbers),
        other => Err(wrong_kind(other, |e| matches!(e, Element::Number(_)), want)),
    }
}

fn ints<T: TryFrom<i64> + TryFrom<u64>>(
    elements: Elements,
    dt: DataType,
) -> Result<Vec<T>, String> {
    let want = format!("an integer in the range of {dt}");
    numbers(elements, &want)?
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let parsed = match n {
                Number::Int(x) => T::try_from(x).ok(),
                Number::Uint(x) => T::try_from(x).ok(),
                Number::Float(_) | Number::Null => None,
            };
            parsed.ok_or_else(|| format!("element {i} is {}, not {want}", describe(&n.value())))
        })
        .collect()
}

fn floats<T>(elements: Elements, dt: DataType, narrow: fn(f64) -> T) -> Result<Vec<T>, String> {
    let want = format!("a number ({dt}; null for a missing value)");
    Ok(numbers(elements, &want)?
        .into_iter()
        .map(|n| {
            narrow(match n {
                Number::Int(x) => x as f64,
                Number::Uint(x) => x as f64,
                Number::Float(x) => x,
                // JSON has no NaN: null stands for a missing value.
                Number::Null => f64::NAN,
            })
        })
        .collect())
}

fn from_json(dt: DataType, elements: Elements) -> Result<TensorData, String> {
    Ok(match dt {
        DataType::Bool => TensorData::Bool(match elements {
            Elements::Empty => Vec::new(),
            Elements::Bools(bools) => bools,
            other => {
                return Err(wrong_kind(
                    other,
                    |e| matches!(e, Element::Bool(_)),
                    "true or false",
                ));
            }
        }),
        DataType::Uint8 => TensorData::Uint8(ints(elements, dt)?),
        DataType::Uint16 => TensorData::Uint16(ints(elements, dt)?),
        DataType::Uint32 => TensorData::Uint32(ints(elements, dt)?),
        DataType::Uint64 => TensorData::Uint64(ints(elements, dt)?),
        DataType::Int8 => TensorData::Int8(ints(elements, dt)?),
        DataType::Int16 => TensorData::Int16(ints(elements, dt)?),
        DataType::Int32 => TensorData::Int32(ints(elements, dt)?),
        DataType::Int64 => TensorData::Int64(ints(elements, dt)?),
        DataType::Fp32 => TensorData::Fp32(floats(elements, dt, |x| x as f32)?),
        DataType::Fp64 => TensorData::Fp64(floats(elements, dt, |x| x)?),
        DataType::Bytes => TensorData::Bytes(match elements {
            Elements::Empty => Vec::new(),
            Elements::Texts(texts) => texts.into_iter().map(String::into_bytes).collect(),
            other => {
                return Err(wrong_kind(
                    other,
                    |e| matches!(e, Element::Text(_)),
                    "a string",
                ));
            }
        }),
    })
}

/// Fixed-size little-endian elements.
fn le<const N: usize, T>(bytes: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            from(a)
        })
        .collect()
}

fn from_binary(dt: DataType, bytes: &[u8], count: usize) -> Result<TensorData, String> {
    if let Some(size) = dt.element_size() {
        let expected = count.saturating_mul(size);
        if bytes.len() != expected {
            return Err(format!(
                "{count} {dt} elements take {expected} bytes, but binary_data_size is {}",
                bytes.len()
            ));
        }
    }
    Ok(match dt {
        DataType::Bool => TensorData::Bool(bytes.iter().map(|b| *b != 0).collect()),
        DataType::Uint8 => TensorData::Uint8(bytes.to_vec()),
        DataType::Uint16 => TensorData::Uint16(le(bytes, u16::from_le_bytes)),
        DataType::Uint32 => TensorData::Uint32(le(bytes, u32::from_le_bytes)),
        DataType::Uint64 => TensorData::Uint64(le(bytes, u64::from_le_bytes)),
        DataType::Int8 => TensorData::Int8(le(bytes, i8::from_le_bytes)),
        DataType::Int16 => TensorData::Int16(le(bytes, i16::from_le_bytes)),
        DataType::Int32 => TensorData::Int32(le(bytes, i32::from_le_bytes)),
        DataType::Int64 => TensorData::Int64(le(bytes, i64::from_le_bytes)),
        DataType::Fp32 => TensorData::Fp32(le(bytes, f32::from_le_bytes)),
        DataType::Fp64 => TensorData::Fp64(le(bytes, f64::from_le_bytes)),
        DataType::Bytes => {
            // Each element: a 4-byte little-endian length, then the bytes.
            let mut items = Vec::with_capacity(count.min(bytes.len() / 4));
            let mut rest = bytes;
            while !rest.is_empty() {
                let (len, tail) = rest
                    .split_at_checked(4)
                    .ok_or("a BYTES element is cut short")?;
                let len = usize::try_from(u32::from_le_bytes([len[0], len[1], len[2], len[3]]))
                    .unwrap_or(usize::MAX);
                let (item, tail) = tail
                    .split_at_checked(len)
                    .ok_or("a BYTES element is cut short")?;
                items.push(item.to_vec());
                rest = tail;
            }
            if items.len() != count {
                return Err(format!(
                    "the shape holds {count} elements, but {} were sent",
                    items.len()
                ));
            }
            TensorData::Bytes(items)
        }
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
