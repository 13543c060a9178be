//! Tensors as the server handles them: an Open Inference Protocol datatype, a
//! shape and the elements, independent of the engine. Batching concatenates
//! and splits them along the first axis.

use std::fmt;

/// Element types of the Open Inference Protocol this server supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `BOOL`
    Bool,
    /// `UINT8`
    Uint8,
    /// `UINT16`
    Uint16,
    /// `UINT32`
    Uint32,
    /// `UINT64`
    Uint64,
    /// `INT8`
    Int8,
    /// `INT16`
    Int16,
    /// `INT32`
    Int32,
    /// `INT64`
    Int64,
    /// `FP32`
    Fp32,
    /// `FP64`
    Fp64,
    /// `BYTES`: strings or raw byte sequences.
    Bytes,
}

impl DataType {
    /// Every supported type.
    pub const ALL: [DataType; 12] = [
        Self::Bool,
        Self::Uint8,
        Self::Uint16,
        Self::Uint32,
        Self::Uint64,
        Self::Int8,
        Self::Int16,
        Self::Int32,
        Self::Int64,
        Self::Fp32,
        Self::Fp64,
        Self::Bytes,
    ];

    /// The protocol's name, e.g. `FP32`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bool => "BOOL",
            Self::Uint8 => "UINT8",
            Self::Uint16 => "UINT16",
            Self::Uint32 => "UINT32",
            Self::Uint64 => "UINT64",
            Self::Int8 => "INT8",
            Self::Int16 => "INT16",
            Self::Int32 => "INT32",
            Self::Int64 => "INT64",
            Self::Fp32 => "FP32",
            Self::Fp64 => "FP64",
            Self::Bytes => "BYTES",
        }
    }

    /// Parses a protocol name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// Bytes per element in the binary tensor format; `None` for `BYTES`.
    pub fn element_size(self) -> Option<usize> {
        Some(match self {
            Self::Bool | Self::Uint8 | Self::Int8 => 1,
            Self::Uint16 | Self::Int16 => 2,
            Self::Uint32 | Self::Int32 | Self::Fp32 => 4,
            Self::Uint64 | Self::Int64 | Self::Fp64 => 8,
            Self::Bytes => return None,
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The elements of a tensor, in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// `BOOL`
    Bool(Vec<bool>),
    /// `UINT8`
    Uint8(Vec<u8>),
    /// `UINT16`
    Uint16(Vec<u16>),
    /// `UINT32`
    Uint32(Vec<u32>),
    /// `UINT64`
    Uint64(Vec<u64>),
    /// `INT8`
    Int8(Vec<i8>),
    /// `INT16`
    Int16(Vec<i16>),
    /// `INT32`
    Int32(Vec<i32>),
    /// `INT64`
    Int64(Vec<i64>),
    /// `FP32`
    Fp32(Vec<f32>),
    /// `FP64`
    Fp64(Vec<f64>),
    /// `BYTES`
    Bytes(Vec<Vec<u8>>),
}

/// Applies an expression to the vector inside any [`TensorData`] variant,
/// rebuilding the same variant when the expression yields a vector.
macro_rules! map_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => TensorData::Bool($body),
            TensorData::Uint8($v) => TensorData::Uint8($body),
            TensorData::Uint16($v) => TensorData::Uint16($body),
            TensorData::Uint32($v) => TensorData::Uint32($body),
            TensorData::Uint64($v) => TensorData::Uint64($body),
            TensorData::Int8($v) => TensorData::Int8($body),
            TensorData::Int16($v) => TensorData::Int16($body),
            TensorData::Int32($v) => TensorData::Int32($body),
            TensorData::Int64($v) => TensorData::Int64($body),
            TensorData::Fp32($v) => TensorData::Fp32($body),
            TensorData::Fp64($v) => TensorData::Fp64($body),
            TensorData::Bytes($v) => TensorData::Bytes($body),
        }
    };
}

/// Evaluates an expression on the vector inside any [`TensorData`] variant.
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Fp32($v) => $body,
            TensorData::Fp64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

impl TensorData {
    /// The datatype of the elements.
    pub fn datatype(&self) -> DataType {
        match self {
            Self::Bool(_) => DataType::Bool,
            Self::Uint8(_) => DataType::Uint8,
            Self::Uint16(_) => DataType::Uint16,
            Self::Uint32(_) => DataType::Uint32,
            Self::Uint64(_) => DataType::Uint64,
            Self::Int8(_) => DataType::Int8,
            Self::Int16(_) => DataType::Int16,
            Self::Int32(_) => DataType::Int32,
            Self::Int64(_) => DataType::Int64,
            Self::Fp32(_) => DataType::Fp32,
            Self::Fp64(_) => DataType::Fp64,
            Self::Bytes(_) => DataType::Bytes,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tensor: shape and row-major elements.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Elements; their count is the product of `shape`.
    pub data: TensorData,
}

/// Why tensors could not be joined or split.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TensorError {
    /// Shapes or types differ beyond the first axis.
    #[error("tensors of shapes {0:?} and {1:?} cannot be stacked")]
    Incompatible(Vec<usize>, Vec<usize>),
    /// The rows asked for do not add up to the first dimension.
    #[error("cannot split {total} rows into {requested}")]
    BadSplit {
        /// Rows present.
        total: usize,
        /// Rows asked for.
        requested: usize,
    },
}

impl Tensor {
    /// The elements as numbers, when they are floating point (else none).
    pub fn floats(&self) -> Vec<f64> {
        match &self.data {
            TensorData::Fp32(v) => v.iter().map(|x| f64::from(*x)).collect(),
            TensorData::Fp64(v) => v.clone(),
            _ => Vec::new(),
        }
    }

    /// The elements as integers, when they are 32- or 64-bit integers
    /// (else none).
    pub fn integers(&self) -> Vec<i64> {
        match &self.data {
            TensorData::Int64(v) => v.clone(),
            TensorData::Int32(v) => v.iter().map(|x| i64::from(*x)).collect(),
            _ => Vec::new(),
        }
    }

    /// A tensor, checking that the element count fits the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Option<Self> {
        (shape.iter().product::<usize>() == data.len()).then_some(Self { shape, data })
    }

    /// The element type.
    pub fn datatype(&self) -> DataType {
        self.data.datatype()
    }

    /// Rows: the first dimension (1 for scalars).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Whether `other` can be stacked under `self` along the first axis.
    pub fn stackable_with(&self, other: &Tensor) -> bool {
        self.datatype() == other.datatype()
            && self.shape.len() == other.shape.len()
            && !self.shape.is_empty()
            && self.shape[1..] == other.shape[1..]
    }

    /// Joins tensors along the first axis.
    pub fn concat(parts: &[&Tensor]) -> Result<Tensor, TensorError> {
        let Some(first) = parts.first() else {
            return Err(TensorError::Incompatible(Vec::new(), Vec::new()));
        };
        if let Some(bad) = parts.iter().find(|p| !first.stackable_with(p)) {
            return Err(TensorError::Incompatible(
                first.shape.clone(),
                bad.shape.clone(),
            ));
        }
        let mut shape = first.shape.clone();
        shape[0] = parts.iter().map(|p| p.shape[0]).sum();
        let mut data = map_data!(&first.data, v => Vec::with_capacity(v.len() * parts.len()));
        for part in parts {
            append(&mut data, &part.data);
        }
        Ok(Tensor { shape, data })
    }

    /// Splits along the first axis into pieces of `rows` rows each.
    pub fn split(self, rows: &[usize]) -> Result<Vec<Tensor>, TensorError> {
        let total = self.rows();
        let requested: usize = rows.iter().sum();
        if self.shape.is_empty() || requested != total {
            return Err(TensorError::BadSplit { total, requested });
        }
        let row_len: usize = self.shape[1..].iter().product();
        let mut pieces = Vec::with_capacity(rows.len());
        let mut start = 0;
        for &n in rows {
            let range = start * row_len..(start + n) * row_len;
            let data = map_data!(&self.data, v => v[range.clone()].to_vec());
            let mut shape = self.shape.clone();
            shape[0] = n;
            pieces.push(Tensor { shape, data });
            start += n;
        }
        Ok(pieces)
    }
}

fn append(into: &mut TensorData, from: &TensorData) {
    match (into, from) {
        (TensorData::Bool(a), TensorData::Bool(b)) => a.extend_from_slice(b),
        (TensorData::Uint8(a), TensorData::Uint8(b)) => a.extend_from_slice(b),
        (TensorData::Uint16(a), TensorData::Uint16(b)) => a.extend_from_slice(b),
        (TensorData::Uint32(a), TensorData::Uint32(b)) => a.extend_from_slice(b),
        (TensorData::Uint64(a), TensorData::Uint64(b)) => a.extend_from_slice(b),
        (TensorData::Int8(a), TensorData::Int8(b)) => a.extend_from_slice(b),
        (TensorData::Int16(a), TensorData::Int16(b)) => a.extend_from_slice(b),
        (TensorData::Int32(a), TensorData::Int32(b)) => a.extend_from_slice(b),
        (TensorData::Int64(a), TensorData::Int64(b)) => a.extend_from_slice(b),
        (TensorData::Fp32(a), TensorData::Fp32(b)) => a.extend_from_slice(b),
        (TensorData::Fp64(a), TensorData::Fp64(b)) => a.extend_from_slice(b),
        (TensorData::Bytes(a), TensorData::Bytes(b)) => a.extend_from_slice(b),
        // Callers check datatypes first (stackable_with).
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::new(shape.to_vec(), TensorData::Fp32(v.to_vec())).unwrap()
    }

    #[test]
    fn concat_and_split_round_trip() {
        let a = f32s(&[1, 2], &[1.0, 2.0]);
        let b = f32s(&[2, 2], &[3.0, 4.0, 5.0, 6.0]);
        let joined = Tensor::concat(&[&a, &b]).unwrap();
        assert_eq!(joined, f32s(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        assert_eq!(joined.split(&[1, 2]).unwrap(), vec![a, b]);
    }

    #[test]
    fn refuses_mismatched_shapes_types_and_splits() {
        let a = f32s(&[1, 2], &[1.0, 2.0]);
        let wide = f32s(&[1, 3], &[1.0, 2.0, 3.0]);
        assert!(Tensor::concat(&[&a, &wide]).is_err());
        let ints = Tensor::new(vec![1, 2], TensorData::Int64(vec![1, 2])).unwrap();
        assert!(!a.stackable_with(&ints));
        assert_eq!(
            a.clone().split(&[2]),
            Err(TensorError::BadSplit {
                total: 1,
                requested: 2
            })
        );
        assert!(Tensor::new(vec![2, 2], TensorData::Fp32(vec![1.0])).is_none());
    }

    #[test]
    fn datatypes_parse_by_protocol_name() {
        for d in DataType::ALL {
            assert_eq!(DataType::parse(d.as_str()), Some(d));
        }
        assert_eq!(DataType::parse("FP16"), None);
        assert_eq!(DataType::Fp64.element_size(), Some(8));
        assert_eq!(DataType::Bytes.element_size(), None);
    }
}
