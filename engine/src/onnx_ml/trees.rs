//! `TreeEnsembleClassifier` and `TreeEnsembleRegressor` (ai.onnx.ml 1 and 3)
//! as tract operators backed by [`Forest`], replacing tract's own, with the
//! output conventions onnxruntime follows (binary classifiers with one score
//! column, base values, post transforms).

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

mod v5;

use super::attributes::Attributes;
use super::forest::{Aggregate, Forest, ForestSpec, PostTransform, logistic};
use super::shared::{Labels, Shared, wire_as};

/// Everything parsed from one tree-ensemble node.
#[derive(Debug)]
struct Ensemble {
    forest: Forest,
    aggregate: Aggregate,
    post: PostTransform,
    base: Vec<f64>,
    /// Classifiers only.
    labels: Option<Labels>,
    /// Scores have the input's type (ai.onnx.ml 5 `TreeEnsemble`) instead of
    /// always FP32.
    scores_like_input: bool,
}

fn forest_spec<'a>(
    a: &Attributes<'a>,
    prefix: &str,
    n_targets: usize,
) -> TractResult<ForestSpec<'a>> {
    Ok(ForestSpec {
        tree_ids: a.int_slice("nodes_treeids").into(),
        node_ids: a.int_slice("nodes_nodeids").into(),
        feature_ids: a.int_slice("nodes_featureids").into(),
        values: a.reals("nodes_values")?,
        modes: a.modes("nodes_modes")?,
        true_ids: a.int_slice("nodes_truenodeids").into(),
        false_ids: a.int_slice("nodes_falsenodeids").into(),
        missing_true: a.int_slice("nodes_missing_value_tracks_true").into(),
        weight_tree_ids: a.int_slice(&format!("{prefix}_treeids")).into(),
        weight_node_ids: a.int_slice(&format!("{prefix}_nodeids")).into(),
        weight_targets: a.int_slice(&format!("{prefix}_ids")).into(),
        weights: a.reals(&format!("{prefix}_weights"))?,
        n_targets,
        member_sets: Vec::new(),
    })
}

fn parse(node: &NodeProto, classifier: bool) -> TractResult<Ensemble> {
    let a = Attributes(node);
    let post = PostTransform::parse(&a.string("post_transform")?.unwrap_or_else(|| "NONE".into()))
        .map_err(|e| anyhow!(e))?;
    let base = a.reals("base_values")?;
    let (labels, n_targets, prefix, aggregate) = if classifier {
        let labels = Labels::parse(&a, "classlabels_int64s", "classlabels_strings")?;
        let n = labels.len();
        (Some(labels), n, "class", Aggregate::Sum)
    } else {
        let n = usize::try_from(a.int("n_targets")?.unwrap_or(1))
            .map_err(|_| anyhow!("n_targets must be positive"))?;
        let aggregate = Aggregate::parse(
            &a.string("aggregate_function")?
                .unwrap_or_else(|| "SUM".into()),
        )
        .map_err(|e| anyhow!(e))?;
        (None, n, "target", aggregate)
    };
    let forest = Forest::new(&forest_spec(&a, prefix, n_targets)?)
        .map_err(|e| anyhow!("{}: {e}", node.name))?;
    if !base.is_empty()
        && base.len() != n_targets
        && !(classifier && n_targets == 2 && base.len() == 1)
    {
        bail!(
            "base_values has {} entries for {n_targets} classes or targets",
            base.len()
        );
    }
    Ok(Ensemble {
        forest,
        aggregate,
        post,
        base,
        labels,
        scores_like_input: false,
    })
}

impl Ensemble {
    /// Columns of the score output: classes or targets.
    fn width(&self) -> usize {
        self.labels
            .as_ref()
            .map_or(self.forest.n_targets(), Labels::len)
    }
}

/// The ONNX builder of `TreeEnsembleClassifier`.
pub fn classifier(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((
        expand(TreeExpansion(Shared::new(parse(node, true)?))),
        vec![],
    ))
}

/// The ONNX builder of `TreeEnsembleRegressor`.
pub fn regressor(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((
        expand(TreeExpansion(Shared::new(parse(node, false)?))),
        vec![],
    ))
}

/// The ONNX builder of `TreeEnsemble` (ai.onnx.ml 5).
pub fn tree_ensemble(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(TreeExpansion(Shared::new(v5::parse(node)?))), vec![]))
}

/// The operator, before and after type inference.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TreeExpansion(Shared<Ensemble>);

impl TreeExpansion {
    fn is_classifier(&self) -> bool {
        self.0.labels.is_some()
    }
}

impl Expansion for TreeExpansion {
    fn name(&self) -> StaticName {
        if self.is_classifier() {
            "AimassTreeEnsembleClassifier".into()
        } else {
            "AimassTreeEnsembleRegressor".into()
        }
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(if self.is_classifier() { 2 } else { 1 })
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, self.nboutputs()?)?;
        s.equals(&inputs[0].rank, 2)?;
        let n_targets = self.0.width();
        if let Some(labels) = &self.0.labels {
            s.equals(&outputs[0].datum_type, labels.datum_type())?;
            s.equals(&outputs[0].rank, 1)?;
            s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
            s.equals(&outputs[1].datum_type, f32::datum_type())?;
            s.equals(&outputs[1].rank, 2)?;
            s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
            s.equals(&outputs[1].shape[1], n_targets.to_dim())?;
        } else {
            let ensemble = self.0.clone();
            s.given(&inputs[0].datum_type, move |s, dt| {
                s.equals(&outputs[0].datum_type, ensemble.score_type(dt))
            })?;
            s.equals(&outputs[0].rank, 2)?;
            s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
            s.equals(&outputs[0].shape[1], n_targets.to_dim())?;
        }
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let dt = eval_type(model.outlet_fact(inputs[0])?.datum_type);
        wire_as(prefix, model, inputs[0], dt, TreeOp(self.0.clone()))
    }
}

/// Double inputs are compared in double (with double thresholds), as
/// onnxruntime does; everything else in single precision.
fn eval_type(input: DatumType) -> DatumType {
    if input == f64::datum_type() {
        f64::datum_type()
    } else {
        f32::datum_type()
    }
}

impl Ensemble {
    /// The scores' type: FP32, as TreeEnsembleClassifier/Regressor define
    /// it, or the input's for the opset-5 TreeEnsemble.
    fn score_type(&self, input: DatumType) -> DatumType {
        if self.scores_like_input && input == f64::datum_type() {
            f64::datum_type()
        } else {
            f32::datum_type()
        }
    }
}

/// Scores as a tensor of `dt` (FP32 or FP64).
fn scores_tensor(dt: DatumType, shape: &[usize], values: &[f64]) -> TractResult<Tensor> {
    if dt == f64::datum_type() {
        Tensor::from_shape(shape, values)
    } else {
        Tensor::from_shape(shape, &values.iter().map(|v| *v as f32).collect::<Vec<_>>())
    }
}

/// The evaluating operator.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TreeOp(Shared<Ensemble>);

impl Op for TreeOp {
    fn name(&self) -> StaticName {
        "AimassTreeEnsemble".into()
    }

    op_as_typed_op!();
}

impl EvalOp for TreeOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        let (n_rows, n_features) = (shape[0], shape[1]);
        let view = input.try_as_plain_ram()?;
        let e = &self.0;
        if n_features < e.forest.min_features() && n_rows > 0 {
            bail!(
                "the model reads feature {} but rows have {n_features}",
                e.forest.min_features() - 1
            );
        }
        let dt = input.datum_type();
        let (scores, has) = if dt == f64::datum_type() {
            e.forest
                .eval(view.as_slice::<f64>()?, n_features, e.aggregate)
        } else {
            e.forest
                .eval(view.as_slice::<f32>()?, n_features, e.aggregate)
        };
        match &e.labels {
            None => {
                let t = e.width();
                let mut out = scores;
                for row in out.chunks_mut(t.max(1)) {
                    for (k, v) in row.iter_mut().enumerate() {
                        *v += e.base.get(k).copied().unwrap_or(0.0);
                    }
                    e.post.apply(row);
                }
                Ok(tvec!(
                    scores_tensor(e.score_type(dt), &[n_rows, t], &out)?.into_tvalue()
                ))
            }
            Some(labels) => {
                let (winners, probabilities) = classify(e, labels.len(), &scores, &has, n_rows);
                let label = labels.tensor(&winners)?;
                let probabilities =
                    scores_tensor(f32::datum_type(), &[n_rows, labels.len()], &probabilities)?;
                Ok(tvec!(label.into_tvalue(), probabilities.into_tvalue()))
            }
        }
    }
}

/// Labels (as indices) and class scores, with onnxruntime's conventions.
fn classify(
    e: &Ensemble,
    n_classes: usize,
    scores: &[f64],
    has: &[bool],
    n_rows: usize,
) -> (Vec<usize>, Vec<f64>) {
    let mut winners = Vec::with_capacity(n_rows);
    let mut out = Vec::with_capacity(n_rows * n_classes);
    let binary_one_column = n_classes == 2 && e.forest.weighted_targets() <= 1;
    let all_positive = e.forest.weights_all_positive();
    for r in 0..n_rows {
        let row = &scores[r * n_classes..(r + 1) * n_classes];
        let row_has = &has[r * n_classes..(r + 1) * n_classes];
        if binary_one_column {
            // One score column: the positive class's weight.
            let s = row[0] + e.base.first().copied().unwrap_or(0.0);
            let positive = if all_positive { s > 0.5 } else { s > 0.0 };
            winners.push(usize::from(positive));
            let pair = match (e.post, all_positive) {
                (PostTransform::Probit, _) => {
                    let mut p = [s];
                    PostTransform::Probit.apply(&mut p);
                    [p[0], 0.0]
                }
                (_, true) => [1.0 - s, s],
                (PostTransform::Logistic, false) => [logistic(-s), logistic(s)],
                (_, false) => [-s, s],
            };
            out.extend_from_slice(&pair);
        } else {
            // Scores with base values; a class has a score when a leaf or a
            // base value gave it one. Written in place in the output.
            let start = out.len();
            out.extend_from_slice(row);
            let scored = &mut out[start..];
            for (k, b) in e.base.iter().enumerate().take(n_classes) {
                scored[k] += b;
            }
            let has_score = |k: usize| row_has[k] || k < e.base.len();
            let winner = (0..n_classes)
                .filter(|k| has_score(*k))
                .fold(None, |best: Option<usize>, k| match best {
                    Some(b) if scored[b] >= scored[k] => Some(b),
                    _ => Some(k),
                })
                .unwrap_or(0);
            winners.push(winner);
            e.post.apply(scored);
        }
    }
    (winners, out)
}

impl TypedOp for TreeOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        let e = &self.0;
        Ok(match &e.labels {
            None => tvec!(TypedFact::dt_shape(
                e.score_type(inputs[0].datum_type),
                &[n, e.width().to_dim()]
            )),
            Some(labels) => {
                let label = TypedFact::dt_shape(labels.datum_type(), std::slice::from_ref(&n));
                tvec!(label, f32::fact(&[n, labels.len().to_dim()]))
            }
        })
    }

    as_op!();
}
