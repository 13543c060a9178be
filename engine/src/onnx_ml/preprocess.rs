//! The ONNX-ML operators exporters put around linear models and trees:
//! `Scaler`, `Imputer`, `Binarizer`, `OneHotEncoder`, and `LinearClassifier`
//! (tract's fails on string class labels). One operator type serves them all,
//! each kind with its own shape rules and evaluation.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::attributes::Attributes;
use super::forest::PostTransform;
use super::shared::{Labels, Shared, wire_as};

mod linear;
use linear::LinearModel;

/// Categories of a one-hot encoder.
#[derive(Debug)]
enum Categories {
    Int(Vec<i64>),
    Str(Vec<String>),
}

/// One side of a LabelEncoder's table, or its default value.
#[derive(Debug)]
enum Column {
    Str(Vec<String>),
    Int(Vec<i64>),
    Float(Vec<f32>),
}

impl Column {
    /// Reads `<prefix>_strings`, `<prefix>_int64s` or `<prefix>_floats`.
    fn parse(a: &Attributes, prefix: &str) -> TractResult<Option<Self>> {
        let strings = a.strings(&format!("{prefix}_strings"))?;
        let ints = a.ints(&format!("{prefix}_int64s"))?;
        let floats = reals32(a, &format!("{prefix}_floats"))?;
        Ok(
            match (strings.is_empty(), ints.is_empty(), floats.is_empty()) {
                (false, true, true) => Some(Column::Str(strings)),
                (true, false, true) => Some(Column::Int(ints)),
                (true, true, false) => Some(Column::Float(floats)),
                (true, true, true) => None,
                _ => bail!("give one of {prefix}_strings, {prefix}_int64s and {prefix}_floats"),
            },
        )
    }

    fn len(&self) -> usize {
        match self {
            Column::Str(v) => v.len(),
            Column::Int(v) => v.len(),
            Column::Float(v) => v.len(),
        }
    }

    fn datum_type(&self) -> DatumType {
        match self {
            Column::Str(_) => String::datum_type(),
            Column::Int(_) => i64::datum_type(),
            Column::Float(_) => f32::datum_type(),
        }
    }

    /// The entries at `rows` (`None`: the default), as a tensor of `shape`.
    fn gather(
        &self,
        default: &Column,
        rows: &[Option<usize>],
        shape: &[usize],
    ) -> TractResult<Tensor> {
        Ok(match (self, default) {
            (Column::Str(v), Column::Str(d)) => tract_ndarray::ArrayD::from_shape_vec(
                shape,
                rows.iter()
                    .map(|r| r.map_or_else(|| d[0].clone(), |i| v[i].clone()))
                    .collect(),
            )?
            .into_tensor(),
            (Column::Int(v), Column::Int(d)) => pick(v, d[0], rows, shape)?,
            (Column::Float(v), Column::Float(d)) => pick(v, d[0], rows, shape)?,
            _ => bail!("the default value's type differs from the values'"),
        })
    }
}

/// `values[i]` for each row's index, `default` where there is none.
fn pick<T: Datum + Copy>(
    values: &[T],
    default: T,
    rows: &[Option<usize>],
    shape: &[usize],
) -> TractResult<Tensor> {
    let picked: Vec<T> = rows
        .iter()
        .map(|r| r.map_or(default, |i| values[i]))
        .collect();
    Tensor::from_shape(shape, &picked)
}

/// Which operator, with its parameters.
#[derive(Debug)]
enum Kind {
    /// `(x - offset) * scale`, per feature or for all.
    Scaler { offset: Vec<f32>, scale: Vec<f32> },
    /// `x` equal to `replaced` (NaN: NaN) becomes the feature's value.
    Imputer { values: Vec<f32>, replaced: f32 },
    /// `1` where `x > threshold`, else `0`.
    Binarizer { threshold: f32 },
    /// One column per category; unknown values are zeros (or an error).
    OneHot { categories: Categories, zeros: bool },
    /// Each element looked up in `keys`, replaced by the matching entry of
    /// `values`, or by `default`.
    LabelEncoder {
        keys: Column,
        values: Column,
        default: Column,
    },
    /// `x · coefficientsᵀ + intercepts`, then a post transform and a label.
    Linear {
        coefficients: Vec<f32>,
        intercepts: Vec<f32>,
        rows: usize,
        labels: Labels,
        post: PostTransform,
    },
}

fn reals32(a: &Attributes, name: &str) -> TractResult<Vec<f32>> {
    Ok(a.reals(name)?.into_iter().map(|v| v as f32).collect())
}

fn build(kind: Kind) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(MlExpansion(Shared::new(kind))), vec![]))
}

/// Builder of `Scaler`.
pub fn scaler(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let a = Attributes(node);
    build(Kind::Scaler {
        offset: reals32(&a, "offset")?,
        scale: reals32(&a, "scale")?,
    })
}

/// Builder of `Imputer` (float values; the int64 form is refused).
pub fn imputer(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let a = Attributes(node);
    if !a.ints("imputed_value_int64s")?.is_empty() {
        bail!("Imputer with imputed_value_int64s is not supported; impute float features");
    }
    let replaced = node
        .attribute
        .iter()
        .find(|x| x.name == "replaced_value_float")
        .map_or(0.0, |x| x.f);
    build(Kind::Imputer {
        values: reals32(&a, "imputed_value_floats")?,
        replaced,
    })
}

/// Builder of `Binarizer`.
pub fn binarizer(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let threshold = node
        .attribute
        .iter()
        .find(|x| x.name == "threshold")
        .map_or(0.0, |x| x.f);
    build(Kind::Binarizer { threshold })
}

/// Builder of `OneHotEncoder`.
pub fn one_hot(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let a = Attributes(node);
    let ints = a.ints("cats_int64s")?;
    let strings = a.strings("cats_strings")?;
    let categories = match (ints.is_empty(), strings.is_empty()) {
        (false, true) => Categories::Int(ints),
        (true, false) => Categories::Str(strings),
        _ => bail!("exactly one of cats_int64s and cats_strings must be given"),
    };
    build(Kind::OneHot {
        categories,
        zeros: a.int("zeros")?.unwrap_or(1) != 0,
    })
}

/// Builder of `LabelEncoder` (ai.onnx.ml 2 and later).
pub fn label_encoder(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let a = Attributes(node);
    let keys = Column::parse(&a, "keys")?.ok_or_else(|| anyhow!("LabelEncoder needs keys_*"))?;
    let values =
        Column::parse(&a, "values")?.ok_or_else(|| anyhow!("LabelEncoder needs values_*"))?;
    if keys.len() != values.len() {
        bail!(
            "LabelEncoder has {} keys and {} values",
            keys.len(),
            values.len()
        );
    }
    let default = match &values {
        Column::Str(_) => Column::Str(vec![
            a.string("default_string")?
                .unwrap_or_else(|| "_Unused".into()),
        ]),
        Column::Int(_) => Column::Int(vec![a.int("default_int64")?.unwrap_or(-1)]),
        Column::Float(_) => Column::Float(vec![
            node.attribute
                .iter()
                .find(|x| x.name == "default_float")
                .map_or(-0.0, |x| x.f),
        ]),
    };
    build(Kind::LabelEncoder {
        keys,
        values,
        default,
    })
}

/// Builder of `LinearClassifier`.
pub fn linear_classifier(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let a = Attributes(node);
    let labels = Labels::parse(&a, "classlabels_ints", "classlabels_strings")?;
    let coefficients = reals32(&a, "coefficients")?;
    let mut intercepts = reals32(&a, "intercepts")?;
    let rows = if intercepts.is_empty() {
        labels.len().min(coefficients.len()).max(1)
    } else {
        intercepts.len()
    };
    if intercepts.is_empty() {
        intercepts = vec![0.0; rows];
    }
    if coefficients.is_empty() || coefficients.len() % rows != 0 {
        bail!(
            "{} coefficients do not divide into {rows} classes",
            coefficients.len()
        );
    }
    let post = PostTransform::parse(&a.string("post_transform")?.unwrap_or_else(|| "NONE".into()))
        .map_err(|e| anyhow!(e))?;
    build(Kind::Linear {
        coefficients,
        intercepts,
        rows,
        labels,
        post,
    })
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Scaler { .. } => "AimassScaler",
            Kind::Imputer { .. } => "AimassImputer",
            Kind::Binarizer { .. } => "AimassBinarizer",
            Kind::OneHot { .. } => "AimassOneHotEncoder",
            Kind::LabelEncoder { .. } => "AimassLabelEncoder",
            Kind::Linear { .. } => "AimassLinearClassifier",
        }
    }

    /// Columns of the linear classifier's scores (2 for a binary model with
    /// one coefficient row, as onnxruntime writes them).
    fn linear_columns(rows: usize, labels: &Labels) -> usize {
        if rows == 1 && labels.len() == 2 {
            2
        } else {
            rows
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MlExpansion(Shared<Kind>);

impl Expansion for MlExpansion {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(if matches!(*self.0, Kind::Linear { .. }) {
            2
        } else {
            1
        })
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, self.nboutputs()?)?;
        match &*self.0 {
            Kind::Scaler { .. } | Kind::Imputer { .. } | Kind::Binarizer { .. } => {
                s.equals(&outputs[0].datum_type, f32::datum_type())?;
                s.equals(&outputs[0].shape, &inputs[0].shape)?;
            }
            Kind::LabelEncoder { values, .. } => {
                s.equals(&outputs[0].datum_type, values.datum_type())?;
                s.equals(&outputs[0].shape, &inputs[0].shape)?;
            }
            Kind::OneHot { categories, .. } => {
                let n = match categories {
                    Categories::Int(v) => v.len(),
                    Categories::Str(v) => v.len(),
                };
                s.equals(&outputs[0].datum_type, f32::datum_type())?;
                s.equals(&outputs[0].rank, inputs[0].rank.bex() + 1)?;
                s.given(&inputs[0].rank, move |s, rank| {
                    let rank = rank as usize;
                    for axis in 0..rank {
                        s.equals(&inputs[0].shape[axis], &outputs[0].shape[axis])?;
                    }
                    s.equals(&outputs[0].shape[rank], n.to_dim())
                })?;
            }
            Kind::Linear { rows, labels, .. } => {
                s.equals(&inputs[0].rank, 2)?;
                s.equals(&outputs[0].datum_type, labels.datum_type())?;
                s.equals(&outputs[0].rank, 1)?;
                s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
                s.equals(&outputs[1].datum_type, f32::datum_type())?;
                s.equals(&outputs[1].rank, 2)?;
                s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
                s.equals(
                    &outputs[1].shape[1],
                    Kind::linear_columns(*rows, labels).to_dim(),
                )?;
            }
        }
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let wanted = match &*self.0 {
            Kind::OneHot {
                categories: Categories::Str(_),
                ..
            } => String::datum_type(),
            Kind::OneHot { .. } => i64::datum_type(),
            Kind::LabelEncoder { keys, .. } => keys.datum_type(),
            _ => f32::datum_type(),
        };
        wire_as(prefix, model, inputs[0], wanted, MlOp(self.0.clone()))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MlOp(Shared<Kind>);

impl Op for MlOp {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    op_as_typed_op!();
}

/// A per-feature parameter: one value for all features, or one per feature.
fn per_feature(values: &[f32], feature: usize, default: f32) -> f32 {
    match values.len() {
        0 => default,
        1 => values[0],
        _ => values.get(feature).copied().unwrap_or(default),
    }
}

impl EvalOp for MlOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape().to_vec();
        let width = shape.last().copied().unwrap_or(1).max(1);
        let view = input.try_as_plain_ram()?;
        let feature_wise = |f: &dyn Fn(usize, f32) -> f32| -> TractResult<TVec<TValue>> {
            let x: &[f32] = view.as_slice()?;
            let y: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(i, v)| f(i % width, *v))
                .collect();
            Ok(tvec!(Tensor::from_shape(&shape, &y)?.into_tvalue()))
        };
        match &*self.0 {
            Kind::Scaler { offset, scale } => {
                feature_wise(&|k, v| (v - per_feature(offset, k, 0.0)) * per_feature(scale, k, 1.0))
            }
            Kind::Imputer { values, replaced } => feature_wise(&|k, v| {
                let missing = if replaced.is_nan() {
                    v.is_nan()
                } else {
                    v == *replaced
                };
                if missing {
                    per_feature(values, k, v)
                } else {
                    v
                }
            }),
            Kind::Binarizer { threshold } => {
                feature_wise(&|_, v| if v > *threshold { 1.0 } else { 0.0 })
            }
            Kind::LabelEncoder {
                keys,
                values,
                default,
            } => {
                let rows = keys.positions(&view)?;
                Ok(tvec!(values.gather(default, &rows, &shape)?.into_tvalue()))
            }
            Kind::OneHot { categories, zeros } => encode_one_hot(categories, *zeros, &view, &shape),
            Kind::Linear {
                coefficients,
                intercepts,
                rows,
                labels,
                post,
            } => {
                let model = LinearModel {
                    coefficients,
                    intercepts,
                    rows: *rows,
                    labels,
                    post: *post,
                };
                model.eval(view.as_slice()?, &shape)
            }
        }
    }
}

impl Column {
    /// Where each element of `x` is among the keys.
    fn positions(&self, x: &PlainView<'_>) -> TractResult<Vec<Option<usize>>> {
        Ok(match self {
            Column::Str(k) => {
                let index: std::collections::HashMap<&str, usize> = k
                    .iter()
                    .enumerate()
                    .map(|(i, key)| (key.as_str(), i))
                    .collect();
                x.as_slice::<String>()?
                    .iter()
                    .map(|x| index.get(x.as_str()).copied())
                    .collect()
            }
            Column::Int(k) => {
                let index: std::collections::HashMap<i64, usize> =
                    k.iter().enumerate().map(|(i, key)| (*key, i)).collect();
                x.as_slice::<i64>()?
                    .iter()
                    .map(|x| index.get(x).copied())
                    .collect()
            }
            Column::Float(k) => {
                let index: std::collections::HashMap<u32, usize> = k
                    .iter()
                    .enumerate()
                    .map(|(i, key)| (key.to_bits(), i))
                    .collect();
                x.as_slice::<f32>()?
                    .iter()
                    .map(|x| index.get(&x.to_bits()).copied())
                    .collect()
            }
        })
    }
}

/// OneHotEncoder: a trailing axis with a 1 at each value's category.
fn encode_one_hot(
    categories: &Categories,
    zeros: bool,
    x: &PlainView<'_>,
    shape: &[usize],
) -> TractResult<TVec<TValue>> {
    let (n, positions): (usize, Vec<Option<usize>>) = match categories {
        Categories::Int(cats) => {
            let x: &[i64] = x.as_slice()?;
            (
                cats.len(),
                x.iter().map(|v| cats.iter().position(|c| c == v)).collect(),
            )
        }
        Categories::Str(cats) => {
            let x: &[String] = x.as_slice()?;
            (
                cats.len(),
                x.iter().map(|v| cats.iter().position(|c| c == v)).collect(),
            )
        }
    };
    if !zeros && positions.iter().any(Option::is_none) {
        bail!(
            "a value is not among the OneHotEncoder's categories and zeros=0 forbids unknown values"
        );
    }
    let mut y = vec![0.0f32; positions.len() * n];
    for (i, p) in positions.iter().enumerate() {
        if let Some(p) = p {
            y[i * n + p] = 1.0;
        }
    }
    let mut out_shape = shape.to_vec();
    out_shape.push(n);
    Ok(tvec!(Tensor::from_shape(&out_shape, &y)?.into_tvalue()))
}

impl TypedOp for MlOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = inputs[0].shape.to_tvec();
        Ok(match &*self.0 {
            Kind::Scaler { .. } | Kind::Imputer { .. } | Kind::Binarizer { .. } => {
                tvec!(f32::fact(&shape))
            }
            Kind::LabelEncoder { values, .. } => {
                tvec!(TypedFact::dt_shape(values.datum_type(), &shape))
            }
            Kind::OneHot { categories, .. } => {
                let n = match categories {
                    Categories::Int(v) => v.len(),
                    Categories::Str(v) => v.len(),
                };
                let mut out = shape;
                out.push(n.to_dim());
                tvec!(f32::fact(&out))
            }
            Kind::Linear { rows, labels, .. } => {
                let n = shape[0].clone();
                let label = TypedFact::dt_shape(labels.datum_type(), std::slice::from_ref(&n));
                tvec!(
                    label,
                    f32::fact(&[n, Kind::linear_columns(*rows, labels).to_dim()])
                )
            }
        })
    }

    as_op!();
}
