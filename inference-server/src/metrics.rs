//! The server's Prometheus metrics. Their names and labels are a contract:
//! the operator's autoscaler and health checks read them (see the README's
//! metrics section).

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Latency buckets, from 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Rows per model run.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Callers are counted under at most this many names; the others as
/// [`OTHER_CALLERS`].
pub const CALLER_NAMES: usize = 64;
/// The name callers beyond the first [`CALLER_NAMES`] are counted under.
pub const OTHER_CALLERS: &str = "(other)";
/// A caller's name is cut to this many characters in the label.
const CALLER_NAME_CHARS: usize = 128;

/// Every metric of the server, in one registry.
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// `aimass_inference_requests_total{code}`: answered requests by status code.
    pub requests: IntCounterVec,
    /// `aimass_inference_request_duration_seconds`: from request to response.
    pub request_seconds: Histogram,
    /// `aimass_inference_queue_duration_seconds`: waiting for a model run.
    pub queue_seconds: Histogram,
    /// `aimass_inference_compute_duration_seconds`: one model run.
    pub compute_seconds: Histogram,
    /// `aimass_inference_batch_size`: rows per model run.
    pub batch_rows: Histogram,
    /// `aimass_inference_in_flight_requests`: accepted, not yet answered.
    pub in_flight: IntGauge,
    /// `aimass_inference_queue_depth`: waiting for a model run.
    pub queue_depth: IntGauge,
    /// `aimass_inference_model_load_duration_seconds`: fetch, optimise and warm up.
    pub load_seconds: Gauge,
    /// `aimass_audit_records_total`: calls recorded in the audit trail.
    pub audit_records: IntCounter,
    /// `aimass_connections_refused_total`: connections closed at once
    /// because the API port's cap was reached.
    pub connections_refused: IntCounter,
    /// `aimass_panics_total{where}`: requests and model runs that panicked
    /// (answered 500; the worker lives on).
    pub panics: IntCounterVec,
    /// `aimass_audit_write_failures_total`: calls the trail could not record.
    pub audit_failures: IntCounter,
    /// `aimass_audit_archived_records_total`: records shipped to the archive.
    pub audit_archived: IntCounter,
    /// `aimass_audit_archive_failures_total`: shipments that failed.
    pub audit_archive_failures: IntCounter,
    /// `aimass_input_out_of_contract_total{input,action}`: feature values
    /// outside what training saw, by feature and rule (`Reject`, `Flag`).
    pub out_of_contract: IntCounterVec,
    /// `aimass_inference_caller_requests_total{principal}`: calls by the
    /// user name they authenticated as (see [`Metrics::called_by`]).
    pub callers: IntCounterVec,
    /// The names `callers` counts under so far.
    caller_names: Mutex<HashSet<String>>,
}

/// A metric's name and help text.
type Definition = (&'static str, &'static str);

const REQUESTS: Definition = (
    "aimass_inference_requests_total",
    "Inference requests answered, by HTTP status code.",
);
const REQUEST_SECONDS: Definition = (
    "aimass_inference_request_duration_seconds",
    "Time from receiving an inference request to answering it.",
);
const QUEUE_SECONDS: Definition = (
    "aimass_inference_queue_duration_seconds",
    "Time a request waited in the queue for a model run.",
);
const COMPUTE_SECONDS: Definition = (
    "aimass_inference_compute_duration_seconds",
    "Duration of one model run (one batch).",
);
const BATCH_ROWS: Definition = ("aimass_inference_batch_size", "Rows per model run.");
const IN_FLIGHT: Definition = (
    "aimass_inference_in_flight_requests",
    "Inference requests accepted and not yet answered.",
);
const QUEUE_DEPTH: Definition = (
    "aimass_inference_queue_depth",
    "Requests waiting for a model run.",
);
const LOAD_SECONDS: Definition = (
    "aimass_inference_model_load_duration_seconds",
    "Time to fetch, optimise and warm up the model.",
);
const CONNECTIONS_REFUSED: Definition = (
    "aimass_connections_refused_total",
    "Connections closed as soon as accepted because the API port had --max-connections open.",
);
const PANICS: Definition = (
    "aimass_panics_total",
    "Requests (where=request) and model runs (where=worker) that panicked; each was answered 500.",
);
const AUDIT_RECORDS: Definition = (
    "aimass_audit_records_total",
    "Calls recorded in the audit trail.",
);
const AUDIT_FAILURES: Definition = (
    "aimass_audit_write_failures_total",
    "Calls the audit trail could not record (refused under FailClosed, answered under FailOpen).",
);
const AUDIT_ARCHIVED: Definition = (
    "aimass_audit_archived_records_total",
    "Audit records shipped to the archive.",
);
const AUDIT_ARCHIVE_FAILURES: Definition = (
    "aimass_audit_archive_failures_total",
    "Shipments of the audit trail to its archive that failed (retried at the next interval).",
);

const OUT_OF_CONTRACT: Definition = (
    "aimass_input_out_of_contract_total",
    "Feature values outside what the model was trained on, by feature (input) and rule (action: Reject answered 400, Flag scored).",
);
const CALLERS: Definition = (
    "aimass_inference_caller_requests_total",
    "Inference calls by the user name they authenticated as (at most 64 names per server, then principal=\"(other)\").",
);

/// Makes and registers the metrics of one [`Registry`].
struct Maker<'a>(&'a Registry);

impl Maker<'_> {
    fn register<C>(&self, collector: C) -> Result<C, prometheus::Error>
    where
        C: prometheus::core::Collector + Clone + 'static,
    {
        self.0.register(Box::new(collector.clone()))?;
        Ok(collector)
    }

    fn counter(&self, (name, help): Definition) -> Result<IntCounter, prometheus::Error> {
        self.register(IntCounter::new(name, help)?)
    }

    fn counters(
        &self,
        (name, help): Definition,
        labels: &[&str],
    ) -> Result<IntCounterVec, prometheus::Error> {
        self.register(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    fn gauge(&self, (name, help): Definition) -> Result<IntGauge, prometheus::Error> {
        self.register(IntGauge::new(name, help)?)
    }

    fn histogram(
        &self,
        (name, help): Definition,
        buckets: &[f64],
    ) -> Result<Histogram, prometheus::Error> {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.register(Histogram::with_opts(opts)?)
    }
}

impl Metrics {
    /// Registers every metric, labelled with the model and version served.
    pub fn new(model: &str, version: &str) -> Result<Self, prometheus::Error> {
        let labels = [
            ("model".to_owned(), model.to_owned()),
            ("version".to_owned(), version.to_owned()),
        ];
        let registry = Registry::new_custom(None, Some(labels.into()))?;
        let m = Maker(&registry);
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let (name, help) = LOAD_SECONDS;
        Ok(Self {
            requests: m.counters(REQUESTS, &["code"])?,
            request_seconds: m.histogram(REQUEST_SECONDS, LATENCY_BUCKETS)?,
            queue_seconds: m.histogram(QUEUE_SECONDS, LATENCY_BUCKETS)?,
            compute_seconds: m.histogram(COMPUTE_SECONDS, LATENCY_BUCKETS)?,
            batch_rows: m.histogram(BATCH_ROWS, BATCH_BUCKETS)?,
            in_flight: m.gauge(IN_FLIGHT)?,
            queue_depth: m.gauge(QUEUE_DEPTH)?,
            load_seconds: m.register(Gauge::new(name, help)?)?,
            connections_refused: m.counter(CONNECTIONS_REFUSED)?,
            panics: m.counters(PANICS, &["where"])?,
            audit_records: m.counter(AUDIT_RECORDS)?,
            audit_failures: m.counter(AUDIT_FAILURES)?,
            audit_archived: m.counter(AUDIT_ARCHIVED)?,
            audit_archive_failures: m.counter(AUDIT_ARCHIVE_FAILURES)?,
            out_of_contract: m.counters(OUT_OF_CONTRACT, &["input", "action"])?,
            callers: m.counters(CALLERS, &["principal"])?,
            caller_names: Mutex::new(HashSet::new()),
            registry,
        })
    }

    /// Counts an answered inference request (REST, or gRPC by the status
    /// the same outcome has on REST) and how long it took.
    pub fn answered(&self, status: hyper::StatusCode, took: std::time::Duration) {
        self.requests.with_label_values(&[status.as_str()]).inc();
        self.request_seconds.observe(took.as_secs_f64());
    }

    /// Counts a call by `user`, once authenticated. The name is cut to 128
    /// printable characters (quotes and backslashes replaced), and callers
    /// beyond the first [`CALLER_NAMES`] count as [`OTHER_CALLERS`]: a
    /// flood of identities cannot grow the metrics.
    pub fn called_by(&self, user: &str) {
        let safe = |c: char| c.is_ascii_graphic() && c != '"' && c != '\\';
        // Most names are safe already: cleaned only when they are not, so
        // such a call allocates nothing.
        let name: std::borrow::Cow<'_, str> =
            if user.len() <= CALLER_NAME_CHARS && user.chars().all(safe) {
                user.into()
            } else {
                user.chars()
                    .take(CALLER_NAME_CHARS)
                    .map(|c| if safe(c) { c } else { '_' })
                    .collect::<String>()
                    .into()
            };
        let counted = {
            let mut names = self
                .caller_names
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            names.contains(name.as_ref())
                || (names.len() < CALLER_NAMES && names.insert(name.clone().into_owned()))
        };
        let label = if counted {
            name.as_ref()
        } else {
            OTHER_CALLERS
        };
        self.callers.with_label_values(&[label]).inc();
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        prometheus::TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_are_counted_under_at_most_64_safe_names() -> Result<(), prometheus::Error> {
        let metrics = Metrics::new("fraud", "1")?;
        for i in 0..70 {
            metrics.called_by(&format!("partner:{i}"));
        }
        metrics.called_by("partner:0");
        metrics.called_by("evil\"} 1\naimass_inference_requests_total{code=\"200\\");
        metrics.called_by(&"x".repeat(10_000));
        let text = metrics.render()?;
        assert_eq!(
            text.matches("aimass_inference_caller_requests_total{")
                .count(),
            CALLER_NAMES + 1,
            "{text}"
        );
        assert!(!text.contains("partner:64"));
        let count = |label: &str| metrics.callers.with_label_values(&[label]).get();
        assert_eq!(count("partner:0"), 2);
        assert_eq!(count("partner:63"), 1);
        // Six names over the cap, the hostile one and the long one.
        assert_eq!(count(OTHER_CALLERS), 8);
        // Under the cap, a name is cut and cleaned, never able to forge a line.
        let fresh = Metrics::new("fraud", "1")?;
        fresh.called_by("evil\"} 1\naimass_inference_requests_total{code=\"200\\");
        fresh.called_by(&"x".repeat(10_000));
        let text = fresh.render()?;
        assert!(
            text.contains(r#"principal="evil_}_1_aimass_inference_requests_total{code=_200_""#),
            "{text}"
        );
        assert!(text.contains(&format!(r#"principal="{}""#, "x".repeat(128))));
        assert!(!text.contains("aimass_inference_requests_total{code=\"200\"}"));
        Ok(())
    }
}
