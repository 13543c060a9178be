//! What the fuzz targets share: the model signatures they decode against.

use aimass_engine::{Signature, TensorSpec};
use aimass_engine::tensor::DataType;

/// A tabular model: FP32 features and an INT64 category, batch first.
pub fn tabular() -> Signature {
    Signature {
        inputs: vec![
            TensorSpec {
                name: "features".into(),
                datatype: DataType::Fp32,
                shape: vec![-1, 3],
            },
            TensorSpec {
                name: "mcc".into(),
                datatype: DataType::Int64,
                shape: vec![-1, 1],
            },
        ],
        outputs: vec![TensorSpec {
            name: "probabilities".into(),
            datatype: DataType::Fp32,
            shape: vec![-1, 2],
        }],
        on_request: 0,
    }
}

/// A text model: one BYTES input.
pub fn text() -> Signature {
    Signature {
        inputs: vec![TensorSpec {
            name: "text".into(),
            datatype: DataType::Bytes,
            shape: vec![-1],
        }],
        outputs: vec![TensorSpec {
            name: "label".into(),
            datatype: DataType::Int64,
            shape: vec![-1],
        }],
        on_request: 0,
    }
}
