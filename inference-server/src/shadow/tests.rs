//! Tests of the shadow: which requests it takes, how rows compare, what it
//! counts, and that a busy or broken shadow costs the served answer
//! nothing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aimass_engine::tensor::TensorData;
use aimass_engine::{EngineError, TensorSpec};

use super::*;

fn spec(name: &str, datatype: DataType, shape: &[i64]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        datatype,
        shape: shape.to_vec(),
    }
}

/// A classifier signature: `x` in, `label` and `probabilities` out.
fn classifier() -> Signature {
    Signature {
        inputs: vec![spec("x", DataType::Fp32, &[-1, 2])],
        outputs: vec![
            spec("label", DataType::Int64, &[-1]),
            spec("probabilities", DataType::Fp32, &[-1, 2]),
        ],
        on_request: 0,
    }
}

fn labels(v: &[i64]) -> Tensor {
    Tensor {
        shape: vec![v.len()],
        data: TensorData::Int64(v.to_vec()),
    }
}

/// `[rows, 2]` probabilities whose positive class is `p`.
fn probabilities(p: &[f32]) -> Tensor {
    Tensor {
        shape: vec![p.len(), 2],
        data: TensorData::Fp32(p.iter().flat_map(|p| [1.0 - p, *p]).collect()),
    }
}

/// A shadow model that answers `answer` (or fails when `None`), after
/// waiting for `gate` to open when there is one.
struct Fake {
    signature: Signature,
    answer: Option<Vec<Tensor>>,
    gate: Option<Arc<Mutex<()>>>,
}

impl Backend for Fake {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn run(&self, _inputs: Vec<Tensor>) -> Result<Vec<Tensor>, EngineError> {
        if let Some(gate) = &self.gate {
            drop(gate.lock());
        }
        self.answer
            .clone()
            .ok_or_else(|| EngineError::Run("broken".into()))
    }

    fn batch_dependent(&self) -> bool {
        false
    }
}

fn input() -> Vec<Tensor> {
    vec![Tensor {
        shape: vec![4, 2],
        data: TensorData::Fp32(vec![0.0; 8]),
    }]
}

/// A metric's value in `registry` (0 when absent), by name and label.
fn value(registry: &Registry, name: &str, label: Option<&str>) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| {
            let kind = f.get_field_type();
            f.get_metric()
                .iter()
                .map(move |m| (kind, m.clone()))
                .collect::<Vec<_>>()
        })
        .filter(|(_, m)| label.is_none_or(|l| m.get_label().iter().any(|p| p.value() == l)))
        .map(|(kind, m)| match kind {
            prometheus::proto::MetricType::COUNTER => m.get_counter().get_value(),
            prometheus::proto::MetricType::GAUGE => m.get_gauge().get_value(),
            _ => m.get_histogram().get_sample_sum(),
        })
        .sum()
}

/// Waits (2 s at most) until the shadow has scored `requests`.
fn scored(registry: &Registry, requests: f64) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while value(registry, "aimass_shadow_requests_total", None) < requests
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn exactly_the_share_asked_for_is_chosen() {
    for (percent, of, expected) in [(50, 1000, 500), (10, 100, 10), (100, 7, 7), (1, 250, 2)] {
        let registry = Registry::new();
        let fake = Fake {
            signature: classifier(),
            answer: None,
            gate: None,
        };
        let shadow =
            Shadow::start(Arc::new(fake), &classifier(), percent, "3", &registry).expect("starts");
        let chosen = (0..of).filter(|_| shadow.chosen()).count();
        assert_eq!(chosen, expected, "{percent} % of {of}");
        assert_eq!(value(&registry, "aimass_shadow_version", None), 3.0);
    }
}

#[test]
fn rows_compare_by_label_and_by_the_last_score_of_each_row() {
    let served = (labels(&[1, 0, 1, 1]), probabilities(&[0.9, 0.2, 0.6, 0.7]));
    let shadow = (labels(&[1, 1, 1, 0]), probabilities(&[0.8, 0.6, 0.6, 0.3]));
    let compared = compare(Some((&served.0, &shadow.0)), Some((&served.1, &shadow.1)));
    assert_eq!((compared.rows, compared.agreements), (4, 2));
    let expected = [0.1, 0.4, 0.0, 0.4];
    for (got, want) in compared.differences.iter().zip(expected) {
        assert!((got - want).abs() < 1e-6, "{:?}", compared.differences);
    }
    // A shadow answering other sizes (a lying model) compares nothing.
    let short = compare(Some((&served.0, &labels(&[1]))), None);
    assert_eq!(short, Comparison::default());
    let scores = Tensor {
        shape: vec![4],
        data: TensorData::Fp32(vec![0.5; 4]),
    };
    let flat = compare(None, Some((&scores, &scores)));
    assert_eq!((flat.rows, flat.differences), (4, vec![0.0; 4]));
}

#[test]
fn the_shadow_counts_what_it_compared_and_never_answers() {
    let registry = Registry::new();
    let answer = vec![labels(&[1, 1, 1, 0]), probabilities(&[0.8, 0.6, 0.6, 0.3])];
    let fake = Fake {
        signature: classifier(),
        answer: Some(answer),
        gate: None,
    };
    let shadow = Shadow::start(Arc::new(fake), &classifier(), 100, "2", &registry).expect("starts");
    let served = vec![labels(&[1, 0, 1, 1]), probabilities(&[0.9, 0.2, 0.6, 0.7])];
    for _ in 0..3 {
        assert!(shadow.chosen());
        shadow.offer(input(), &served);
    }
    scored(&registry, 3.0);
    assert_eq!(value(&registry, "aimass_shadow_requests_total", None), 3.0);
    assert_eq!(value(&registry, "aimass_shadow_rows_total", None), 12.0);
    assert_eq!(
        value(&registry, "aimass_shadow_label_agreements_total", None),
        6.0
    );
    let sum = value(&registry, "aimass_shadow_score_difference", None);
    assert!((sum - 3.0 * 0.9).abs() < 1e-5, "{sum}");
}

#[test]
fn a_busy_or_broken_shadow_drops_requests_and_counts_them() {
    let registry = Registry::new();
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().expect("the gate");
    let fake = Fake {
        signature: classifier(),
        answer: None,
        gate: Some(gate.clone()),
    };
    let shadow = Shadow::start(Arc::new(fake), &classifier(), 100, "2", &registry).expect("starts");
    let served = vec![labels(&[1]), probabilities(&[0.9])];
    // The shadow is stuck on its first request: the queue fills, the rest
    // are dropped at once.
    let started = Instant::now();
    for _ in 0..(QUEUE + 11) {
        shadow.offer(input(), &served);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "offering never waits"
    );
    let busy = value(&registry, "aimass_shadow_dropped_total", Some("busy"));
    assert!((10.0..=11.0).contains(&busy), "{busy}");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(2);
    while value(&registry, "aimass_shadow_dropped_total", Some("failed")) + busy
        < (QUEUE + 11) as f64
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        value(&registry, "aimass_shadow_dropped_total", Some("failed")) + busy,
        (QUEUE + 11) as f64,
        "a failing shadow counts its failures"
    );
    assert_eq!(value(&registry, "aimass_shadow_requests_total", None), 0.0);
}

#[test]
fn a_shadow_that_cannot_be_compared_does_not_start() {
    let regressor = Signature {
        inputs: classifier().inputs,
        outputs: vec![spec("variable", DataType::Fp32, &[-1, 1])],
        on_request: 0,
    };
    let fake = |signature| {
        Arc::new(Fake {
            signature,
            answer: None,
            gate: None,
        })
    };
    let error = |signature| {
        Shadow::start(fake(signature), &classifier(), 10, "2", &Registry::new())
            .err()
            .unwrap_or_default()
    };
    assert_eq!(
        error(regressor),
        "the shadow returns none of the served labels or scores under their names"
    );
    let mut wider = classifier();
    wider.inputs[0].shape = vec![-1, 3];
    assert!(
        error(wider).starts_with("the shadow takes other inputs (x FP32 [-1, 3])"),
        "inputs must match"
    );
}
