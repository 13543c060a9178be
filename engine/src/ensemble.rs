//! Several models behind one signature: each member runs over the same
//! decoded request (side by side on the engine's thread pool), and their
//! answers are combined the way risk teams combine them: a weighted sum of
//! a named output (weights summing to 1 make a weighted average), the
//! element-wise maximum (highest risk wins), or a majority vote of labels.
//!
//! The ensemble's signature is derived and checked when it is built: the
//! inputs are the members' inputs, and members that share an input must
//! agree on its type and shape; the combined output is the named output,
//! which every member must return with the same type and shape. Each
//! member's own outputs follow, named `<member>.<output>`, returned to a
//! request that names them, so an investigator can see why the blend
//! decided what it did. Any mismatch is an error naming the member.

use std::sync::Arc;
use std::time::Duration;

use rayon::prelude::*;

use crate::tensor::{DataType, Tensor, TensorData};
use crate::{Backend, EngineError, Signature, TensorSpec};

/// Members expected to take less than this together (their one-row costs
/// measured at load, times the rows) run one after the other on the
/// calling thread: handing them to other threads would cost more.
const SIDE_BY_SIDE_ABOVE: Duration = Duration::from_micros(200);

/// How the members' answers become one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Σ weight × the output, element by element (FP32 or FP64).
    WeightedSum,
    /// The largest value, element by element (FP32 or FP64).
    Maximum,
    /// For each element, the label with the most votes (INT64 or INT32;
    /// each member's vote counts its weight); a tie goes to the label of
    /// the earliest member among those tied.
    Vote,
    /// A meta-model decides: it takes one input, each member's score (the
    /// last column of the output, FP32 or FP64) side by side,
    /// `[rows, members]`, and its outputs are the ensemble's.
    Stack,
}

/// One model of an ensemble.
pub struct Member {
    /// Its name in errors and in its outputs' names.
    pub name: String,
    /// The loaded model.
    pub backend: Arc<dyn Backend>,
    /// Its weight in a weighted sum or a vote.
    pub weight: f64,
}

/// Members combined by a rule, as one [`Backend`].
pub struct Ensemble {
    members: Vec<Member>,
    rule: Rule,
    /// For each member, the ensemble inputs it takes, in its own order.
    inputs_of: Vec<Vec<usize>>,
    /// For each member, the index of the combined output among its outputs.
    output_of: Vec<usize>,
    /// The meta-model of [`Rule::Stack`].
    meta: Option<Arc<dyn Backend>>,
    signature: Signature,
}

impl Ensemble {
    /// Combines `members` by `rule` over their output `output`; an error
    /// names the member whose signature does not fit.
    pub fn new(members: Vec<Member>, rule: Rule, output: &str) -> Result<Self, EngineError> {
        Self::build(members, rule, output, None)
    }

    /// Stacks `members` under `meta`, which takes their scores (the last
    /// column of `output`) as its one input, `[rows, members]`.
    pub fn stacked(
        members: Vec<Member>,
        output: &str,
        meta: Arc<dyn Backend>,
    ) -> Result<Self, EngineError> {
        Self::build(members, Rule::Stack, output, Some(meta))
    }

    fn build(
        members: Vec<Member>,
        rule: Rule,
        output: &str,
        meta: Option<Arc<dyn Backend>>,
    ) -> Result<Self, EngineError> {
        let Some(first) = members.first() else {
            return Err(EngineError::Invalid("an ensemble needs members".into()));
        };
        if let Some(m) = members.iter().find(|m| !m.weight.is_finite()) {
            return Err(EngineError::Invalid(format!(
                "member {}'s weight must be a finite number",
                m.name
            )));
        }
        let mut inputs: Vec<(TensorSpec, &str)> = Vec::new();
        let mut inputs_of = Vec::new();
        for m in &members {
            let mut taken = Vec::new();
            for spec in &m.backend.signature().inputs {
                let index = match inputs.iter().position(|(s, _)| s.name == spec.name) {
                    Some(index) => {
                        let (shared, owner) = &inputs[index];
                        if shared != spec {
                            return Err(EngineError::Invalid(format!(
                                "member {} takes input {} as {} {:?}, but member {owner} takes it as {} {:?}",
                                m.name,
                                spec.name,
                                spec.datatype,
                                spec.shape,
                                shared.datatype,
                                shared.shape
                            )));
                        }
                        index
                    }
                    None => {
                        inputs.push((spec.clone(), &m.name));
                        inputs.len() - 1
                    }
                };
                taken.push(index);
            }
            inputs_of.push(taken);
        }
        let combined = |m: &Member| {
            m.backend
                .signature()
                .outputs
                .iter()
                .position(|s| s.name == output)
                .ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "member {} has no output {output}: it returns {}",
                        m.name,
                        names(&m.backend.signature().outputs)
                    ))
                })
        };
        let output_of = members
            .iter()
            .map(combined)
            .collect::<Result<Vec<_>, _>>()?;
        let spec = first.backend.signature().outputs[output_of[0]].clone();
        let fits = match rule {
            Rule::WeightedSum | Rule::Maximum | Rule::Stack => {
                matches!(spec.datatype, DataType::Fp32 | DataType::Fp64)
            }
            Rule::Vote => matches!(spec.datatype, DataType::Int64 | DataType::Int32),
        };
        if !fits {
            return Err(EngineError::Invalid(format!(
                "{rule:?} cannot combine output {output} of type {} (member {})",
                spec.datatype, first.name
            )));
        }
        for (m, &index) in members.iter().zip(&output_of) {
            let theirs = &m.backend.signature().outputs[index];
            if theirs.datatype != spec.datatype || theirs.shape != spec.shape {
                return Err(EngineError::Invalid(format!(
                    "member {} returns {output} as {} {:?}, but member {} returns it as {} {:?}",
                    m.name, theirs.datatype, theirs.shape, first.name, spec.datatype, spec.shape
                )));
            }
        }
        let mut outputs = match (rule, &meta) {
            (Rule::Stack, Some(meta)) => stacking(meta.signature(), &spec, members.len())?,
            (Rule::Stack, None) => {
                return Err(EngineError::Invalid("stacking needs a meta-model".into()));
            }
            _ => vec![spec],
        };
        let meta_outputs = outputs.len();
        for m in &members {
            outputs.extend(m.backend.signature().outputs.iter().map(|s| TensorSpec {
                name: format!("{}.{}", m.name, s.name),
                ..s.clone()
            }));
        }
        let signature = Signature {
            inputs: inputs.into_iter().map(|(s, _)| s).collect(),
            on_request: outputs.len() - meta_outputs,
            outputs,
        };
        Ok(Self {
            members,
            rule,
            inputs_of,
            output_of,
            meta: meta.filter(|_| rule == Rule::Stack),
            signature,
        })
    }
}

impl Ensemble {
    /// Whether `rows` rows take the members less than
    /// [`SIDE_BY_SIDE_ABOVE`] together (never when a cost is unknown).
    fn quick(&self, rows: usize) -> bool {
        let costs: Option<Vec<Duration>> =
            self.members.iter().map(|m| m.backend.row_cost()).collect();
        costs.is_some_and(|c| {
            c.iter().sum::<Duration>() * u32::try_from(rows).unwrap_or(u32::MAX)
                < SIDE_BY_SIDE_ABOVE
        })
    }
}

impl Backend for Ensemble {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Runs every member over the inputs it takes (side by side unless
    /// they are quick together); returns the combined output, then each
    /// member's outputs.
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, EngineError> {
        let run = |(m, taken): (&Member, &Vec<usize>)| {
            let own = taken.iter().map(|&i| inputs[i].clone()).collect();
            m.backend.run(own).map_err(|e| match e {
                EngineError::Run(why) => EngineError::Run(format!("member {}: {why}", m.name)),
                other => other,
            })
        };
        let rows = inputs.first().map_or(1, Tensor::rows);
        let members = self.members.iter().zip(&self.inputs_of);
        let answers: Vec<Vec<Tensor>> = if self.quick(rows) {
            members.map(run).collect::<Result<_, _>>()?
        } else {
            members
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(run)
                .collect::<Result<_, _>>()?
        };
        let parts: Vec<(&Tensor, f64)> = answers
            .iter()
            .zip(&self.output_of)
            .zip(&self.members)
            .map(|((outputs, &index), m)| (&outputs[index], m.weight))
            .collect();
        let decided = match &self.meta {
            Some(meta) => meta.run(vec![scores(&parts, rows)?]).map_err(|e| match e {
                EngineError::Run(why) => EngineError::Run(format!("the meta-model: {why}")),
                other => other,
            })?,
            None => vec![combine(self.rule, &parts)?],
        };
        Ok(decided
            .into_iter()
            .chain(answers.into_iter().flatten())
            .collect())
    }

    fn batch_dependent(&self) -> bool {
        self.members.iter().any(|m| m.backend.batch_dependent())
            || self.meta.as_ref().is_some_and(|m| m.batch_dependent())
    }

    /// The members' together when a row runs them in turn, else the
    /// slowest one's (they run side by side); unknown if any is.
    fn row_cost(&self) -> Option<Duration> {
        let costs: Vec<Duration> = self
            .members
            .iter()
            .map(|m| m.backend.row_cost())
            .collect::<Option<_>>()?;
        let meta = match &self.meta {
            Some(meta) => meta.row_cost()?,
            None => Duration::ZERO,
        };
        let members = if self.quick(1) {
            costs.iter().sum()
        } else {
            costs.into_iter().max()?
        };
        Some(members + meta)
    }
}

/// The outputs of a stacked ensemble: the meta-model's, once it is shown
/// to take the members' scores (`spec`'s type, one column per member).
fn stacking(
    meta: &Signature,
    spec: &TensorSpec,
    members: usize,
) -> Result<Vec<TensorSpec>, EngineError> {
    let invalid = |why: String| Err(EngineError::Invalid(format!("the meta-model {why}")));
    let [input] = meta.inputs.as_slice() else {
        return invalid(format!(
            "takes {} inputs; stacking gives it one, the members' scores [rows, {members}]",
            meta.inputs.len()
        ));
    };
    if input.datatype != spec.datatype {
        return invalid(format!(
            "takes {} {}, but the members' scores are {}",
            input.name, input.datatype, spec.datatype
        ));
    }
    let width = usize::try_from(input.shape.get(1).copied().unwrap_or(-1)).ok();
    if input.shape.len() != 2 || width.is_some_and(|w| w != members) {
        return invalid(format!(
            "takes {} as {:?}, but stacking gives it [rows, {members}]: one score per member",
            input.name, input.shape
        ));
    }
    Ok(meta.outputs.clone())
}

/// Each member's score (the last column of its output), side by side:
/// `[rows, members]`, of the outputs' type.
fn scores(parts: &[(&Tensor, f64)], rows: usize) -> Result<Tensor, EngineError> {
    let columns: Vec<Vec<f64>> = parts.iter().map(|(t, _)| t.floats()).collect();
    let width = columns.first().map_or(0, Vec::len) / rows.max(1);
    if width == 0 || columns.iter().any(|c| c.len() != width * rows) {
        return Err(EngineError::Run(
            "the members' scores do not fit their rows".into(),
        ));
    }
    let values: Vec<f64> = (0..rows)
        .flat_map(|r| columns.iter().map(move |c| c[r * width + width - 1]))
        .collect();
    let data = match parts.first().map(|(t, _)| &t.data) {
        Some(TensorData::Fp64(_)) => TensorData::Fp64(values),
        _ => TensorData::Fp32(values.into_iter().map(|v| v as f32).collect()),
    };
    Tensor::new(vec![rows, parts.len()], data)
        .ok_or_else(|| EngineError::Run("the members' scores do not fit their shape".into()))
}

/// `parts` (each member's output and weight) combined by `rule`.
fn combine(rule: Rule, parts: &[(&Tensor, f64)]) -> Result<Tensor, EngineError> {
    let Some((first, _)) = parts.first() else {
        return Err(EngineError::Run("no member answered".into()));
    };
    if let Some((odd, _)) = parts
        .iter()
        .find(|(t, _)| t.shape != first.shape || t.datatype() != first.datatype())
    {
        return Err(EngineError::Run(format!(
            "members answered shapes {:?} and {:?}",
            first.shape, odd.shape
        )));
    }
    let len = first.data.len();
    let data = match (rule, &first.data) {
        (Rule::WeightedSum | Rule::Maximum, TensorData::Fp32(_) | TensorData::Fp64(_)) => {
            let mut out: Vec<f64> = match rule {
                Rule::Maximum => vec![f64::NEG_INFINITY; len],
                _ => vec![0.0; len],
            };
            for (tensor, weight) in parts {
                let values = tensor.floats();
                for (o, v) in out.iter_mut().zip(values) {
                    *o = match rule {
                        Rule::Maximum => o.max(v),
                        _ => *o + weight * v,
                    };
                }
            }
            match first.data {
                TensorData::Fp32(_) => {
                    TensorData::Fp32(out.into_iter().map(|v| v as f32).collect())
                }
                _ => TensorData::Fp64(out),
            }
        }
        (Rule::Vote, TensorData::Int64(_) | TensorData::Int32(_)) => {
            let labels: Vec<Vec<i64>> = parts.iter().map(|(t, _)| t.integers()).collect();
            let voted: Vec<i64> = (0..len)
                .map(|i| {
                    let mut tally: Vec<(i64, f64)> = Vec::new();
                    for (member, (_, weight)) in labels.iter().zip(parts) {
                        let label = member[i];
                        match tally.iter_mut().find(|(l, _)| *l == label) {
                            Some((_, votes)) => *votes += weight,
                            None => tally.push((label, *weight)),
                        }
                    }
                    // The first of the most voted: the earliest member's.
                    tally
                        .iter()
                        .fold(None::<(i64, f64)>, |best, &(label, votes)| match best {
                            Some((_, most)) if most >= votes => best,
                            _ => Some((label, votes)),
                        })
                        .map_or(0, |(label, _)| label)
                })
                .collect();
            match first.data {
                TensorData::Int32(_) => {
                    TensorData::Int32(voted.into_iter().map(|v| v as i32).collect())
                }
                _ => TensorData::Int64(voted),
            }
        }
        (rule, other) => {
            return Err(EngineError::Run(format!(
                "{rule:?} cannot combine {}",
                other.datatype()
            )));
        }
    };
    Tensor::new(first.shape.clone(), data)
        .ok_or_else(|| EngineError::Run("the combined output does not fit its shape".into()))
}

fn names(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::TractBackend;

    fn zoo(name: &str) -> Arc<dyn Backend> {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/zoo/models/{name}.onnx"));
        let bytes = std::fs::read(&path).expect("a zoo model");
        Arc::new(TractBackend::load(&bytes).expect("it loads"))
    }

    fn member(name: &str, model: &str, weight: f64) -> Member {
        Member {
            name: name.to_owned(),
            backend: zoo(model),
            weight,
        }
    }

    /// The zoo's 16 rows of 8 features.
    fn rows() -> Vec<Tensor> {
        let reference: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../tests/zoo/models/gbdt_classifier.json"),
            )
            .expect("the reference"),
        )
        .expect("JSON");
        let data: Vec<f32> = reference["inputs"][0]["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|v| v.as_f64().unwrap_or(f64::NAN) as f32)
            .collect();
        vec![Tensor::new(vec![16, 8], TensorData::Fp32(data)).expect("a tensor")]
    }

    fn output<'a>(ensemble: &Ensemble, outputs: &'a [Tensor], name: &str) -> &'a Tensor {
        let index = ensemble
            .signature()
            .outputs
            .iter()
            .position(|s| s.name == name)
            .unwrap_or_else(|| panic!("no output {name}"));
        &outputs[index]
    }

    #[test]
    fn a_weighted_sum_is_the_members_outputs_weighted() {
        let ensemble = Ensemble::new(
            vec![
                member("gbdt", "gbdt_classifier", 0.7),
                member("mlp", "mlp_classifier", 0.3),
            ],
            Rule::WeightedSum,
            "probabilities",
        )
        .expect("an ensemble");
        let names: Vec<&str> = ensemble
            .signature()
            .outputs
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "probabilities",
                "gbdt.label",
                "gbdt.probabilities",
                "mlp.label",
                "mlp.probabilities"
            ]
        );
        assert_eq!(ensemble.signature().inputs.len(), 1);
        // Only the blend is returned unasked.
        assert_eq!(ensemble.signature().on_request, 4);
        let outputs = ensemble.run(rows()).expect("it runs");
        let blend = outputs[0].floats();
        let gbdt = output(&ensemble, &outputs, "gbdt.probabilities").floats();
        let mlp = output(&ensemble, &outputs, "mlp.probabilities").floats();
        assert_eq!(blend.len(), 32);
        for i in 0..32 {
            let by_hand = 0.7 * gbdt[i] + 0.3 * mlp[i];
            assert!(
                (blend[i] - by_hand).abs() < 1e-6,
                "{i}: {} vs {by_hand}",
                blend[i]
            );
        }
        // The members answer as alone.
        let alone = zoo("gbdt_classifier").run(rows()).expect("it runs");
        assert_eq!(alone[1].floats(), gbdt);
    }

    #[test]
    fn the_maximum_and_the_vote_are_taken_element_by_element() {
        let members = || {
            vec![
                member("gbdt", "gbdt_classifier", 1.0),
                member("mlp", "mlp_classifier", 1.0),
                member("logreg", "logreg_scaler", 1.0),
            ]
        };
        let max = Ensemble::new(members(), Rule::Maximum, "probabilities").expect("max");
        let outputs = max.run(rows()).expect("it runs");
        let each: Vec<Vec<f64>> = ["gbdt", "mlp", "logreg"]
            .iter()
            .map(|m| output(&max, &outputs, &format!("{m}.probabilities")).floats())
            .collect();
        for (i, v) in outputs[0].floats().iter().enumerate() {
            let by_hand = each.iter().map(|e| e[i]).fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(*v, by_hand, "{i}");
        }
        let vote = Ensemble::new(members(), Rule::Vote, "label").expect("vote");
        let outputs = vote.run(rows()).expect("it runs");
        let labels: Vec<Vec<i64>> = ["gbdt", "mlp", "logreg"]
            .iter()
            .map(|m| output(&vote, &outputs, &format!("{m}.label")).integers())
            .collect();
        let voted = outputs[0].integers();
        let mut disagreements = 0;
        for i in 0..16 {
            let ones = labels.iter().filter(|l| l[i] == 1).count();
            disagreements += usize::from(ones == 1 || ones == 2);
            assert_eq!(voted[i], i64::from(ones >= 2), "row {i}: {labels:?}");
        }
        // The zoo's members disagree on some rows, so the vote is tested.
        assert!(disagreements > 0);
    }

    #[test]
    fn weights_count_as_votes_and_a_tie_goes_to_the_earliest_member() {
        let label = |v: i64| Tensor::new(vec![1], TensorData::Int64(vec![v])).expect("a label");
        let (a, b, c) = (label(1), label(2), label(3));
        let vote =
            |parts: &[(&Tensor, f64)]| combine(Rule::Vote, parts).expect("voted").integers()[0];
        assert_eq!(vote(&[(&a, 1.0), (&b, 1.0), (&b, 1.0)]), 2);
        assert_eq!(vote(&[(&a, 3.0), (&b, 1.0), (&b, 1.0)]), 1);
        assert_eq!(vote(&[(&b, 1.0), (&a, 1.0)]), 2);
        assert_eq!(vote(&[(&c, 1.0), (&a, 2.0), (&b, 2.0)]), 1);
    }

    /// A model of one input and one output that answers `value` for every
    /// element, and says a row costs `cost`.
    struct Fake(Signature, f32, Option<Duration>);

    impl Backend for Fake {
        fn signature(&self) -> &Signature {
            &self.0
        }
        fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, EngineError> {
            let shape = inputs[0].shape.clone();
            let len = shape.iter().product();
            Ok(vec![
                Tensor::new(shape, TensorData::Fp32(vec![self.1; len])).expect("fits"),
            ])
        }
        fn batch_dependent(&self) -> bool {
            false
        }
        fn row_cost(&self) -> Option<Duration> {
            self.2
        }
    }

    #[test]
    fn slow_members_run_side_by_side_and_quick_ones_in_turn() {
        let slow = |name: &str, value: f32, cost: Option<Duration>| {
            let mut m = fake(name, DataType::Fp32, "score", DataType::Fp32);
            m.backend = Arc::new(Fake(m.backend.signature().clone(), value, cost));
            m
        };
        let micros = |n| Some(Duration::from_micros(n));
        let ensemble = |a, b| {
            Ensemble::new(
                vec![slow("a", 0.25, a), slow("b", 0.5, b)],
                Rule::WeightedSum,
                "score",
            )
            .expect("an ensemble")
        };
        assert!(ensemble(micros(20), micros(30)).quick(1));
        assert!(!ensemble(micros(20), micros(30)).quick(4));
        assert!(!ensemble(None, micros(1)).quick(1));
        // A row's cost: both in turn, the slower side by side, or unknown.
        assert_eq!(ensemble(micros(20), micros(30)).row_cost(), micros(50));
        assert_eq!(ensemble(micros(150), micros(100)).row_cost(), micros(150));
        assert_eq!(ensemble(None, micros(1)).row_cost(), None);
        // Both ways answer the same.
        let rows = vec![Tensor::new(vec![2, 8], TensorData::Fp32(vec![0.0; 16])).expect("rows")];
        for e in [ensemble(micros(1), micros(1)), ensemble(None, None)] {
            let outputs = e.run(rows.clone()).expect("it runs");
            assert_eq!(outputs[0].floats(), vec![0.75; 16]);
            assert_eq!(outputs.len(), 3);
        }
    }

    fn fake(name: &str, input: DataType, output: &str, output_type: DataType) -> Member {
        let spec = |name: &str, datatype| TensorSpec {
            name: name.to_owned(),
            datatype,
            shape: vec![-1, 8],
        };
        Member {
            name: name.to_owned(),
            backend: Arc::new(Fake(
                Signature {
                    inputs: vec![spec("features", input)],
                    outputs: vec![spec(output, output_type)],
                    on_request: 0,
                },
                0.0,
                None,
            )),
            weight: 1.0,
        }
    }

    #[test]
    fn an_incompatible_member_is_named() {
        let error = |members, rule, output| match Ensemble::new(members, rule, output) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        };
        let message = error(
            vec![
                fake("gbdt", DataType::Fp32, "score", DataType::Fp32),
                fake("nn", DataType::Fp64, "score", DataType::Fp32),
            ],
            Rule::WeightedSum,
            "score",
        );
        assert!(
            message.contains("member nn takes input features as FP64"),
            "{message}"
        );
        assert!(
            message.contains("member gbdt takes it as FP32"),
            "{message}"
        );
        let message = error(
            vec![
                member("binary", "gbdt_classifier", 1.0),
                member("three", "gbdt_multiclass", 1.0),
            ],
            Rule::WeightedSum,
            "probabilities",
        );
        assert!(
            message.contains("member three returns probabilities as FP32"),
            "{message}"
        );
        let message = error(
            vec![
                fake("gbdt", DataType::Fp32, "score", DataType::Fp32),
                fake("nn", DataType::Fp32, "risk", DataType::Fp32),
            ],
            Rule::Maximum,
            "score",
        );
        assert!(
            message.contains("member nn has no output score: it returns risk"),
            "{message}"
        );
        let message = error(
            vec![fake("gbdt", DataType::Fp32, "label", DataType::Int64)],
            Rule::WeightedSum,
            "label",
        );
        assert!(
            message.contains("WeightedSum cannot combine output label of type INT64"),
            "{message}"
        );
        let mut nan = fake("gbdt", DataType::Fp32, "score", DataType::Fp32);
        nan.weight = f64::NAN;
        let message = error(vec![nan], Rule::WeightedSum, "score");
        assert!(
            message.contains("weight must be a finite number"),
            "{message}"
        );
        assert!(error(Vec::new(), Rule::Vote, "label").contains("needs members"));
    }

    /// A logistic meta-model computed by hand: over `[rows, k]` scores,
    /// p = σ(w·s + b), answering `label` (p > 0.5) and `[1 - p, p]`.
    struct Logistic(Signature, Vec<f64>, f64);

    impl Logistic {
        fn over(width: i64, datatype: DataType, weights: Vec<f64>, intercept: f64) -> Self {
            let spec = |name: &str, datatype, shape: Vec<i64>| TensorSpec {
                name: name.to_owned(),
                datatype,
                shape,
            };
            Self(
                Signature {
                    inputs: vec![spec("scores", datatype, vec![-1, width])],
                    outputs: vec![
                        spec("label", DataType::Int64, vec![-1]),
                        spec("probabilities", DataType::Fp32, vec![-1, 2]),
                    ],
                    on_request: 0,
                },
                weights,
                intercept,
            )
        }
    }

    impl Backend for Logistic {
        fn signature(&self) -> &Signature {
            &self.0
        }
        fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, EngineError> {
            let scores = inputs[0].floats();
            let p: Vec<f64> = scores
                .chunks(self.1.len())
                .map(|row| {
                    let z: f64 = row.iter().zip(&self.1).map(|(s, w)| s * w).sum::<f64>() + self.2;
                    1.0 / (1.0 + (-z).exp())
                })
                .collect();
            Ok(vec![
                Tensor::new(
                    vec![p.len()],
                    TensorData::Int64(p.iter().map(|p| i64::from(*p > 0.5)).collect()),
                )
                .expect("labels"),
                Tensor::new(
                    vec![p.len(), 2],
                    TensorData::Fp32(
                        p.iter()
                            .flat_map(|p| [(1.0 - p) as f32, *p as f32])
                            .collect(),
                    ),
                )
                .expect("probabilities"),
            ])
        }
        fn batch_dependent(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_meta_model_decides_from_each_members_score_in_order() {
        let meta = Logistic::over(2, DataType::Fp32, vec![3.0, -1.5], -0.4);
        let stacked = Ensemble::stacked(
            vec![
                member("gbdt", "gbdt_classifier", 1.0),
                member("mlp", "mlp_classifier", 1.0),
            ],
            "probabilities",
            Arc::new(meta),
        )
        .expect("a stack");
        let names: Vec<&str> = stacked
            .signature()
            .outputs
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names[..3], ["label", "probabilities", "gbdt.label"]);
        assert_eq!(
            stacked.signature().on_request,
            4,
            "the members' outputs on request"
        );
        let outputs = stacked.run(rows()).expect("runs");
        let gbdt = output(&stacked, &outputs, "gbdt.probabilities").floats();
        let mlp = output(&stacked, &outputs, "mlp.probabilities").floats();
        let decided = outputs[1].floats();
        for r in 0..16 {
            // By hand, from each member's positive class.
            let z = 3.0 * gbdt[2 * r + 1] - 1.5 * mlp[2 * r + 1] - 0.4;
            let p = 1.0 / (1.0 + (-z).exp());
            assert!(
                (decided[2 * r + 1] - p).abs() < 1e-6,
                "row {r}: {} vs {p}",
                decided[2 * r + 1]
            );
            assert_eq!(outputs[0].integers()[r], i64::from(p > 0.5));
        }
    }

    #[test]
    fn a_meta_model_that_cannot_take_the_scores_is_refused() {
        let members = || {
            vec![
                member("gbdt", "gbdt_classifier", 1.0),
                member("mlp", "mlp_classifier", 1.0),
            ]
        };
        let refused =
            |meta: Logistic| match Ensemble::stacked(members(), "probabilities", Arc::new(meta)) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("accepted"),
            };
        assert!(
            refused(Logistic::over(3, DataType::Fp32, vec![1.0; 3], 0.0))
                .contains("takes scores as [-1, 3], but stacking gives it [rows, 2]")
        );
        assert!(
            refused(Logistic::over(2, DataType::Fp64, vec![1.0; 2], 0.0))
                .contains("takes scores FP64, but the members' scores are FP32")
        );
        let mut two = Logistic::over(2, DataType::Fp32, vec![1.0; 2], 0.0);
        two.0.inputs.push(two.0.inputs[0].clone());
        assert!(refused(two).contains("takes 2 inputs"));
        let alone = Ensemble::new(members(), Rule::Stack, "probabilities");
        assert!(alone.is_err_and(|e| e.to_string().contains("stacking needs a meta-model")));
    }
}
