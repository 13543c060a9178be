//! The server's Prometheus metrics. Their names and labels are a contract:
//! the operator's autoscaler and health checks read them (see the README's
//! metrics section).

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
}

impl Metrics {
    /// Registers every metric, labelled with the model and version served.
    pub fn new(model: &str, version: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(
            None,
            Some(
                [
                    ("model".to_owned(), model.to_owned()),
                    ("version".to_owned(), version.to_owned()),
                ]
                .into(),
            ),
        )?;
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        };
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "aimass_inference_requests_total",
                    "Inference requests answered, by HTTP status code.",
                ),
                &["code"],
            )?,
            request_seconds: histogram(
                "aimass_inference_request_duration_seconds",
                "Time from receiving an inference request to answering it.",
                LATENCY_BUCKETS,
            )?,
            queue_seconds: histogram(
                "aimass_inference_queue_duration_seconds",
                "Time a request waited in the queue for a model run.",
                LATENCY_BUCKETS,
            )?,
            compute_seconds: histogram(
                "aimass_inference_compute_duration_seconds",
                "Duration of one model run (one batch).",
                LATENCY_BUCKETS,
            )?,
            batch_rows: histogram(
                "aimass_inference_batch_size",
                "Rows per model run.",
                BATCH_BUCKETS,
            )?,
            in_flight: IntGauge::new(
                "aimass_inference_in_flight_requests",
                "Inference requests accepted and not yet answered.",
            )?,
            queue_depth: IntGauge::new(
                "aimass_inference_queue_depth",
                "Requests waiting for a model run.",
            )?,
            load_seconds: Gauge::new(
                "aimass_inference_model_load_duration_seconds",
                "Time to fetch, optimise and warm up the model.",
            )?,
            connections_refused: IntCounter::new(
                "aimass_connections_refused_total",
                "Connections closed as soon as accepted because the API port had --max-connections open.",
            )?,
            panics: IntCounterVec::new(
                Opts::new(
                    "aimass_panics_total",
                    "Requests (where=request) and model runs (where=worker) that panicked; each was answered 500.",
                ),
                &["where"],
            )?,
            audit_records: IntCounter::new(
                "aimass_audit_records_total",
                "Calls recorded in the audit trail.",
            )?,
            audit_failures: IntCounter::new(
                "aimass_audit_write_failures_total",
                "Calls the audit trail could not record (refused under FailClosed, answered under FailOpen).",
            )?,
            audit_archived: IntCounter::new(
                "aimass_audit_archived_records_total",
                "Audit records shipped to the archive.",
            )?,
            audit_archive_failures: IntCounter::new(
                "aimass_audit_archive_failures_total",
                "Shipments of the audit trail to its archive that failed (retried at the next interval).",
            )?,
            registry,
        };
        let r = &metrics.registry;
        r.register(Box::new(metrics.audit_archived.clone()))?;
        r.register(Box::new(metrics.audit_archive_failures.clone()))?;
        r.register(Box::new(metrics.audit_records.clone()))?;
        r.register(Box::new(metrics.connections_refused.clone()))?;
        r.register(Box::new(metrics.panics.clone()))?;
        r.register(Box::new(metrics.audit_failures.clone()))?;
        r.register(Box::new(metrics.requests.clone()))?;
        r.register(Box::new(metrics.request_seconds.clone()))?;
        r.register(Box::new(metrics.queue_seconds.clone()))?;
        r.register(Box::new(metrics.compute_seconds.clone()))?;
        r.register(Box::new(metrics.batch_rows.clone()))?;
        r.register(Box::new(metrics.in_flight.clone()))?;
        r.register(Box::new(metrics.queue_depth.clone()))?;
        r.register(Box::new(metrics.load_seconds.clone()))?;
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(metrics)
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        prometheus::TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}
