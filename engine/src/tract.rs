//! The tract-onnx engine: parses the ONNX file once, fixes dynamic dimensions
//! to symbols, optimises the graph and runs it.

use std::sync::Arc;

use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::pb::{self, tensor_shape_proto::dimension::Value as DimValue};
use tract_onnx::prelude::*;

use crate::tensor::{DataType, Tensor as ServerTensor, TensorData};
use crate::{Backend, EngineError, Signature, TensorSpec};

/// Operators whose outputs for one row depend on the rest of the batch.
const BATCH_DEPENDENT_OPS: &[&str] = &["DynamicQuantizeLinear"];

/// A model loaded into tract.
pub struct TractBackend {
    plan: Arc<TypedRunnableModel>,
    signature: Signature,
    batch_dependent: bool,
    /// The quickest of the warm-up runs (one row each).
    row_cost: Option<std::time::Duration>,
}

impl std::fmt::Debug for TractBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractBackend")
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

fn invalid(e: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("{e:#}"))
}

impl TractBackend {
    /// Parses, checks and optimises an ONNX model.
    pub fn load(bytes: &[u8]) -> Result<Self, EngineError> {
        let mut onnx = tract_onnx::onnx();
        super::onnx_ml::register(&mut onnx);
        let proto = onnx.proto_model_for_read(&mut &*bytes).map_err(invalid)?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| invalid("the file holds no graph"))?;
        check_supported(graph)?;
        let batch_dependent = graph
            .node
            .iter()
            .any(|n| BATCH_DEPENDENT_OPS.contains(&n.op_type.as_str()));

        let mut model = onnx.model_for_proto_model(&proto).map_err(invalid)?;
        let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let declared: Vec<&pb::ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !initializers.contains(&i.name.as_str()))
            .collect();
        let mut inputs = Vec::with_capacity(declared.len());
        for (ix, info) in declared.iter().enumerate() {
            let (dt, dims) = declared_type(info)?;
            let tract_dims: TVec<TDim> = dims
                .iter()
                .enumerate()
                .map(|(axis, d)| match d {
                    Dim::Fixed(n) => TDim::from(*n),
                    Dim::Named(name) => model.symbols.sym(name).into(),
                    Dim::Unknown if axis == 0 => model.symbols.sym("batch").into(),
                    Dim::Unknown => model.symbols.new_with_prefix("d").into(),
                })
                .collect();
            let fact = InferenceFact::dt_shape(tract_type(dt)?, tract_dims);
            model.set_input_fact(ix, fact).map_err(invalid)?;
            inputs.push(TensorSpec {
                name: info.name.clone(),
                datatype: dt,
                shape: dims.iter().map(Dim::as_protocol).collect(),
            });
        }
        let typed = model
            .into_typed()
            .map_err(invalid)?
            .into_decluttered()
            .map_err(invalid)?;
        let outputs = typed
            .output_outlets()
            .map_err(invalid)?
            .iter()
            .map(|outlet| {
                let fact = typed.outlet_fact(*outlet).map_err(invalid)?;
                Ok(TensorSpec {
                    name: typed.node(outlet.node).name.clone(),
                    datatype: server_type(fact.datum_type)?,
                    shape: fact
                        .shape
                        .iter()
                        .map(|d| d.to_i64().unwrap_or(-1))
                        .collect(),
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        let outputs = rename_outputs(outputs, graph);
        let plan = typed
            .into_optimized()
            .map_err(invalid)?
            .into_runnable()
            .map_err(invalid)?;
        let mut backend = Self {
            plan,
            signature: Signature {
                inputs,
                outputs,
                on_request: 0,
            },
            batch_dependent,
            row_cost: None,
        };
        backend.row_cost = Some(backend.warm_up()?);
        Ok(backend)
    }

    /// Runs on a row of zeros (empty strings), so the first request does
    /// not pay for lazy initialisation and a model that cannot run fails at
    /// load; the quickest run's time.
    fn warm_up(&self) -> Result<std::time::Duration, EngineError> {
        let inputs = self
            .signature
            .inputs
            .iter()
            .map(|spec| {
                let shape: Vec<usize> = spec
                    .shape
                    .iter()
                    .map(|d| usize::try_from(*d).unwrap_or(1))
                    .collect();
                let n: usize = shape.iter().product();
                let data = zeros(spec.datatype, n);
                ServerTensor::new(shape, data).ok_or_else(|| invalid("warm-up input"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut quickest = std::time::Duration::MAX;
        for _ in 0..WARM_UP_RUNS {
            let started = std::time::Instant::now();
            self.run(inputs.clone())
                .map_err(|e| EngineError::Invalid(format!("the model does not run: {e}")))?;
            quickest = quickest.min(started.elapsed());
            // A slow model is measured once: more runs would delay start-up.
            if quickest > SLOW_RUN {
                break;
            }
        }
        Ok(quickest)
    }
}

/// Warm-up runs; the quickest is the model's cost per row.
const WARM_UP_RUNS: usize = 5;
/// A run this slow is not repeated at warm-up.
const SLOW_RUN: std::time::Duration = std::time::Duration::from_millis(20);

impl Backend for TractBackend {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn row_cost(&self) -> Option<std::time::Duration> {
        self.row_cost
    }

    fn run(&self, inputs: Vec<ServerTensor>) -> Result<Vec<ServerTensor>, EngineError> {
        let values: TVec<TValue> = inputs
            .into_iter()
            .map(|t| to_tract(t).map(TValue::from))
            .collect::<Result<_, _>>()?;
        let outputs = self
            .plan
            .run(values)
            .map_err(|e| EngineError::Run(format!("{e:#}")))?;
        outputs.into_iter().map(|v| from_tract(&v)).collect()
    }

    fn batch_dependent(&self) -> bool {
        self.batch_dependent
    }
}

/// Refuses, at load and with a fix, what cannot be served.
fn check_supported(graph: &pb::GraphProto) -> Result<(), EngineError> {
    if graph.node.iter().any(|n| n.op_type == "ZipMap") {
        return Err(EngineError::Unsupported(
            "the model returns classifier probabilities as a ZipMap (a sequence of maps), which the Open \
             Inference Protocol cannot carry; re-export it with zipmap=False (skl2onnx: \
             options={id(model): {'zipmap': False}}; onnxmltools: zipmap=False)"
                .into(),
        ));
    }
    Ok(())
}

/// A declared dimension.
enum Dim {
    Fixed(usize),
    Named(String),
    Unknown,
}

impl Dim {
    fn as_protocol(&self) -> i64 {
        match self {
            Dim::Fixed(n) => i64::try_from(*n).unwrap_or(-1),
            _ => -1,
        }
    }
}

fn declared_type(info: &pb::ValueInfoProto) -> Result<(DataType, Vec<Dim>), EngineError> {
    let Some(TypeValue::TensorType(t)) = info.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(EngineError::Unsupported(format!(
            "input {:?} is not a tensor",
            info.name
        )));
    };
    let dt = onnx_type(t.elem_type).ok_or_else(|| {
        EngineError::Unsupported(format!(
            "input {:?} has an unsupported element type {}",
            info.name, t.elem_type
        ))
    })?;
    let dims = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(DimValue::DimValue(n)) if *n > 0 => {
                        Dim::Fixed(usize::try_from(*n).unwrap_or(0))
                    }
                    Some(DimValue::DimParam(p)) if !p.is_empty() => Dim::Named(p.clone()),
                    _ => Dim::Unknown,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((dt, dims))
}

/// The ONNX `TensorProto.DataType` codes the server handles.
fn onnx_type(code: i32) -> Option<DataType> {
    Some(match code {
        1 => DataType::Fp32,
        2 => DataType::Uint8,
        3 => DataType::Int8,
        4 => DataType::Uint16,
        5 => DataType::Int16,
        6 => DataType::Int32,
        7 => DataType::Int64,
        8 => DataType::Bytes,
        9 => DataType::Bool,
        11 => DataType::Fp64,
        12 => DataType::Uint32,
        13 => DataType::Uint64,
        _ => return None,
    })
}

fn tract_type(dt: DataType) -> Result<DatumType, EngineError> {
    Ok(match dt {
        DataType::Bool => DatumType::Bool,
        DataType::Uint8 => DatumType::U8,
        DataType::Uint16 => DatumType::U16,
        DataType::Uint32 => DatumType::U32,
        DataType::Uint64 => DatumType::U64,
        DataType::Int8 => DatumType::I8,
        DataType::Int16 => DatumType::I16,
        DataType::Int32 => DatumType::I32,
        DataType::Int64 => DatumType::I64,
        DataType::Fp32 => DatumType::F32,
        DataType::Fp64 => DatumType::F64,
        DataType::Bytes => DatumType::String,
    })
}

fn server_type(dt: DatumType) -> Result<DataType, EngineError> {
    Ok(match dt {
        DatumType::Bool => DataType::Bool,
        DatumType::U8 => DataType::Uint8,
        DatumType::U16 => DataType::Uint16,
        DatumType::U32 => DataType::Uint32,
        DatumType::U64 => DataType::Uint64,
        DatumType::I8 => DataType::Int8,
        DatumType::I16 => DataType::Int16,
        DatumType::I32 => DataType::Int32,
        DatumType::I64 => DataType::Int64,
        DatumType::F32 => DataType::Fp32,
        DatumType::F64 => DataType::Fp64,
        DatumType::String => DataType::Bytes,
        // Shape arithmetic (e.g. an ArgMax label) can surface as dimension
        // values; they are integers to the caller.
        DatumType::TDim => DataType::Int64,
        other => {
            return Err(EngineError::Unsupported(format!(
                "outputs of type {other:?} are not supported"
            )));
        }
    })
}

/// Decluttering may rename output nodes; the protocol uses the names the ONNX
/// graph declares, in its order.
fn rename_outputs(mut outputs: Vec<TensorSpec>, graph: &pb::GraphProto) -> Vec<TensorSpec> {
    if outputs.len() == graph.output.len() {
        for (spec, declared) in outputs.iter_mut().zip(&graph.output) {
            spec.name.clone_from(&declared.name);
        }
    }
    outputs
}

fn zeros(dt: DataType, n: usize) -> TensorData {
    match dt {
        DataType::Bool => TensorData::Bool(vec![false; n]),
        DataType::Uint8 => TensorData::Uint8(vec![0; n]),
        DataType::Uint16 => TensorData::Uint16(vec![0; n]),
        DataType::Uint32 => TensorData::Uint32(vec![0; n]),
        DataType::Uint64 => TensorData::Uint64(vec![0; n]),
        DataType::Int8 => TensorData::Int8(vec![0; n]),
        DataType::Int16 => TensorData::Int16(vec![0; n]),
        DataType::Int32 => TensorData::Int32(vec![0; n]),
        DataType::Int64 => TensorData::Int64(vec![0; n]),
        DataType::Fp32 => TensorData::Fp32(vec![0.0; n]),
        DataType::Fp64 => TensorData::Fp64(vec![0.0; n]),
        DataType::Bytes => TensorData::Bytes(vec![Vec::new(); n]),
    }
}

fn to_tract(t: ServerTensor) -> Result<Tensor, EngineError> {
    let shape = t.shape;
    let bad = |e: TractError| EngineError::Run(format!("{e:#}"));
    match t.data {
        TensorData::Bytes(v) => {
            let strings: Vec<String> = v
                .into_iter()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .collect();
            tract_ndarray::ArrayD::from_shape_vec(shape, strings)
                .map(IntoTensor::into_tensor)
                .map_err(|e| EngineError::Run(e.to_string()))
        }
        TensorData::Bool(v) => Tensor::from_shape(&shape, &v).map_err(bad),
        TensorData::Uint8(v) => Tensor::from_shape(&shape, &v).map_err(bad),
        TensorData::Uint16(v) => Tensor::from_shape(&shape, &v).map_err(bad),
        TensorData::Uint32(v) => Tensor::from_shape(&shape, &v).map_err(bad),
        TensorData::Uint64(v) => Tensor::from_shape(&shape, &v).map_err(bad),
        TensorData::Int8(v) => Tensor::from_shape(&shape, &v).map_err(bad),
        TensorData::Int16(v) => Tensor::from_shape(&shape, &v).map_err(bad),
        TensorData::Int32(v) => Tensor::from_shape(&shape, &v).map_err(bad),
        TensorData::Int64(v) => Tensor::from_shape(&shape, &v).map_err(bad),
        TensorData::Fp32(v) => Tensor::from_shape(&shape, &v).map_err(bad),
        TensorData::Fp64(v) => Tensor::from_shape(&shape, &v).map_err(bad),
    }
}

fn from_tract(t: &Tensor) -> Result<ServerTensor, EngineError> {
    let shape = t.shape().to_vec();
    let bad = |e: TractError| EngineError::Run(format!("{e:#}"));
    if t.datum_type() == DatumType::TDim {
        let ints = t.cast_to::<i64>().map_err(bad)?;
        return from_tract(&ints);
    }
    let view = t.try_as_plain_ram().map_err(bad)?;
    let data = match t.datum_type() {
        DatumType::Bool => TensorData::Bool(view.as_slice().map_err(bad)?.to_vec()),
        DatumType::U8 => TensorData::Uint8(view.as_slice().map_err(bad)?.to_vec()),
        DatumType::U16 => TensorData::Uint16(view.as_slice().map_err(bad)?.to_vec()),
        DatumType::U32 => TensorData::Uint32(view.as_slice().map_err(bad)?.to_vec()),
        DatumType::U64 => TensorData::Uint64(view.as_slice().map_err(bad)?.to_vec()),
        DatumType::I8 => TensorData::Int8(view.as_slice().map_err(bad)?.to_vec()),
        DatumType::I16 => TensorData::Int16(view.as_slice().map_err(bad)?.to_vec()),
        DatumType::I32 => TensorData::Int32(view.as_slice().map_err(bad)?.to_vec()),
        DatumType::I64 => TensorData::Int64(view.as_slice().map_err(bad)?.to_vec()),
        DatumType::F32 => TensorData::Fp32(view.as_slice().map_err(bad)?.to_vec()),
        DatumType::F64 => TensorData::Fp64(view.as_slice().map_err(bad)?.to_vec()),
        DatumType::String => TensorData::Bytes(
            view.as_slice::<String>()
                .map_err(bad)?
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        ),
        other => {
            return Err(EngineError::Unsupported(format!(
                "outputs of type {other:?} are not supported"
            )));
        }
    };
    ServerTensor::new(shape, data)
        .ok_or_else(|| EngineError::Run("output shape and data disagree".into()))
}
