//! A shadow: a second version scored beside the served one on a share of
//! real requests, on a thread of its own at low priority, after the served
//! answer is made. Its answers are compared with the served ones, row by
//! row, and never returned: how often the labels agree, and how far the
//! scores are apart (`aimass_shadow_*`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use aimass_engine::tensor::DataType;
use aimass_engine::tensor::Tensor;
use aimass_engine::{Backend, Signature};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Requests waiting for the shadow at most; beyond, a sampled request is
/// dropped (counted), so a slow shadow never holds memory or the answer.
const QUEUE: usize = 64;

/// Score differences, from 0.001 to 1.
pub const DIFFERENCE_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];

/// The shadow's counters, in the server's registry.
#[derive(Clone)]
struct Counters {
    requests: IntCounter,
    rows: IntCounter,
    /// Only when labels are compared: no labels, no agreement to report.
    agreements: Option<IntCounter>,
    differences: Histogram,
    dropped: IntCounterVec,
}

impl Counters {
    fn new(registry: &Registry, version: &str, labels: bool) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let differences = Histogram::with_opts(
            HistogramOpts::new(
                "aimass_shadow_score_difference",
                "Per row, how far the shadow's score is from the served one (absolute difference).",
            )
            .buckets(DIFFERENCE_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(differences.clone()))?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "aimass_shadow_dropped_total",
                "Requests chosen for the shadow it did not score: it was busy (why=busy) or failed (why=failed).",
            ),
            &["why"],
        )?;
        registry.register(Box::new(dropped.clone()))?;
        let shadowed = IntGauge::new("aimass_shadow_version", "The version the shadow runs.")?;
        registry.register(Box::new(shadowed.clone()))?;
        shadowed.set(version.parse().unwrap_or(0));
        Ok(Self {
            requests: counter(
                "aimass_shadow_requests_total",
                "Requests the shadow scored after the served answer.",
            )?,
            rows: counter(
                "aimass_shadow_rows_total",
                "Rows the shadow scored and compared.",
            )?,
            agreements: labels
                .then(|| {
                    counter(
                        "aimass_shadow_label_agreements_total",
                        "Rows on which the shadow's label equals the served one.",
                    )
                })
                .transpose()?,
            differences,
            dropped,
        })
    }
}

/// Which outputs are compared: by their index in the served answer and in
/// the shadow's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Compared {
    label: Option<(usize, usize)>,
    score: Option<(usize, usize)>,
}

impl Compared {
    /// The first integer output (labels) and the first floating-point
    /// output (scores) both return under the same name and type.
    fn of(served: &Signature, shadow: &Signature) -> Result<Self, String> {
        let both = |wanted: fn(DataType) -> bool| {
            served.outputs.iter().enumerate().find_map(|(i, o)| {
                let theirs = shadow
                    .outputs
                    .iter()
                    .position(|s| s.name == o.name && s.datatype == o.datatype)?;
                wanted(o.datatype).then_some((i, theirs))
            })
        };
        let compared = Self {
            label: both(|t| matches!(t, DataType::Int64 | DataType::Int32)),
            score: both(|t| matches!(t, DataType::Fp32 | DataType::Fp64)),
        };
        if compared.label.is_none() && compared.score.is_none() {
            return Err(
                "the shadow returns none of the served labels or scores under their names".into(),
            );
        }
        Ok(compared)
    }
}

/// A request chosen for the shadow: its inputs, and the served answer's
/// outputs it is compared with.
struct Job {
    inputs: Vec<Tensor>,
    label: Option<Tensor>,
    score: Option<Tensor>,
}

/// The shadow of one server.
pub struct Shadow {
    sender: SyncSender<Job>,
    percent: u64,
    seen: AtomicU64,
    compared: Compared,
    counters: Counters,
}

impl Shadow {
    /// Starts the shadow `backend` (version `version`) beside a model of
    /// signature `served`, for `percent` of the requests. It must take the
    /// same inputs and return a label or a score under the served one's
    /// name.
    pub fn start(
        backend: Arc<dyn Backend>,
        served: &Signature,
        percent: u8,
        version: &str,
        registry: &Registry,
    ) -> Result<Self, String> {
        if backend.signature().inputs != served.inputs {
            return Err(format!(
                "the shadow takes other inputs ({}) than the served model ({})",
                describe(&backend.signature().inputs),
                describe(&served.inputs)
            ));
        }
        let compared = Compared::of(served, backend.signature())?;
        let counters = Counters::new(registry, version, compared.label.is_some())
            .map_err(|e| e.to_string())?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE);
        let worker = counters.clone();
        std::thread::Builder::new()
            .name("aimass-shadow".into())
            .spawn(move || serve(backend.as_ref(), &receiver, compared, &worker))
            .map_err(|e| format!("cannot start the shadow's thread: {e}"))?;
        Ok(Self {
            sender,
            percent: u64::from(percent.min(100)),
            seen: AtomicU64::new(0),
            compared,
            counters,
        })
    }

    /// Whether the next request goes to the shadow too: exactly `percent`
    /// of every hundred, spread evenly.
    pub fn chosen(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        (n + 1) * self.percent / 100 > n * self.percent / 100
    }

    /// Hands a chosen request's `inputs` and the served `outputs` to the
    /// shadow; dropped (and counted) when it is busy.
    pub fn offer(&self, inputs: Vec<Tensor>, outputs: &[Tensor]) {
        let pick = |which: Option<(usize, usize)>| {
            which.and_then(|(served, _)| outputs.get(served).cloned())
        };
        let job = Job {
            inputs,
            label: pick(self.compared.label),
            score: pick(self.compared.score),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.sender.try_send(job)
        {
            self.counters.dropped.with_label_values(&["busy"]).inc();
        }
    }
}

/// The shadow's thread: at low priority, scores each job and counts how
/// it compares, until the server stops.
fn serve(backend: &dyn Backend, jobs: &Receiver<Job>, compared: Compared, counters: &Counters) {
    lower_priority();
    while let Ok(job) = jobs.recv() {
        let Ok(outputs) = backend.run(job.inputs) else {
            counters.dropped.with_label_values(&["failed"]).inc();
            continue;
        };
        let theirs = |which: Option<(usize, usize)>| which.and_then(|(_, i)| outputs.get(i));
        let rows = compare(
            job.label.as_ref().zip(theirs(compared.label)),
            job.score.as_ref().zip(theirs(compared.score)),
        );
        counters.requests.inc();
        counters.rows.inc_by(rows.rows);
        if let Some(agreements) = &counters.agreements {
            agreements.inc_by(rows.agreements);
        }
        for d in rows.differences {
            counters.differences.observe(d);
        }
    }
}

/// Puts the calling thread below the serving threads (nice 10): on a busy
/// machine the shadow waits, the callers do not. Per thread on Linux; a
/// failure leaves it as it was.
#[allow(unsafe_code)]
fn lower_priority() {
    // SAFETY: gettid has no preconditions; setpriority on this thread's
    // own id changes nothing but its scheduling priority.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// How one request compared.
#[derive(Debug, Default, PartialEq)]
struct Comparison {
    rows: u64,
    agreements: u64,
    differences: Vec<f64>,
}

/// Compares labels row by row, and scores by each row's last element (the
/// positive class of `[rows, 2]` probabilities, the score of `[rows]` or
/// `[rows, 1]`). Tensors that do not match in size compare nothing.
fn compare(labels: Option<(&Tensor, &Tensor)>, scores: Option<(&Tensor, &Tensor)>) -> Comparison {
    let rows_of = |t: &Tensor| t.shape.first().copied().unwrap_or(1);
    let mut out = Comparison::default();
    if let Some((served, shadow)) = labels {
        let (a, b) = (served.integers(), shadow.integers());
        if a.len() == b.len() {
            out.rows = a.len() as u64;
            out.agreements = a.iter().zip(&b).filter(|(x, y)| x == y).count() as u64;
        }
    }
    if let Some((served, shadow)) = scores {
        let (a, b) = (served.floats(), shadow.floats());
        let rows = rows_of(served);
        if a.len() == b.len() && rows > 0 && a.len() % rows == 0 {
            let width = a.len() / rows;
            out.differences = a
                .chunks(width)
                .zip(b.chunks(width))
                .filter_map(|(x, y)| Some((x.last()? - y.last()?).abs()))
                .collect();
            out.rows = out.rows.max(rows as u64);
        }
    }
    out
}

fn describe(specs: &[aimass_engine::TensorSpec]) -> String {
    specs
        .iter()
        .map(|s| format!("{} {} {:?}", s.name, s.datatype, s.shape))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
