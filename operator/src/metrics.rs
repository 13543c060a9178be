//! The operator's Prometheus registry: one per process, each subsystem
//! registering its own metrics into it.

use std::time::Instant;

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// The process-wide registry and the operator's own metrics.
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Reconcile counts, failures and durations, by controller.
    pub reconcile: ReconcileMetrics,
    /// Replica health, for alert rules.
    pub health: HealthMetrics,
    /// Events published, by kind of the object, type and reason.
    pub events: IntCounterVec,
    /// Models' figures on their latest evaluation.
    pub evaluation: EvaluationMetrics,
    /// Served versions' drift.
    pub drift: DriftMetrics,
}

/// The series a subsystem set per object (namespace, name), to remove them
/// when the object's figures change.
#[derive(Default)]
struct Owned(std::sync::Mutex<std::collections::HashMap<(String, String), Vec<LabelValues>>>);

impl Owned {
    /// Takes the series set for `key`.
    fn take(&self, key: &(String, String)) -> Vec<LabelValues> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key)
            .unwrap_or_default()
    }

    /// Records the series set for `key`.
    fn keep(&self, key: (String, String), series: Vec<LabelValues>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, series);
    }
}

/// Each served version's drift from its latest evaluation, as dashboards and
/// alert rules read it.
pub struct DriftMetrics {
    psi: GaugeVec,
    csi: GaugeVec,
    detected: IntGaugeVec,
    set: Owned,
}

impl DriftMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let psi = GaugeVec::new(
            Opts::new(
                "aimass_model_psi",
                "Population stability index of a served version's score over the drift window, against its training baseline.",
            ),
            &["namespace", "model_deployment", "model", "version"],
        )?;
        let csi = GaugeVec::new(
            Opts::new(
                "aimass_feature_csi",
                "Characteristic stability index of a served version's input feature over the drift window (the ten highest per deployment).",
            ),
            &[
                "namespace",
                "model_deployment",
                "model",
                "version",
                "feature",
            ],
        )?;
        let detected = IntGaugeVec::new(
            Opts::new(
                "aimass_model_drift_detected",
                "1 while a ModelDeployment's Drift condition is True, 0 otherwise.",
            ),
            &["namespace", "model_deployment", "model", "version"],
        )?;
        for collector in [&psi, &csi] {
            registry.register(Box::new(collector.clone()))?;
        }
        registry.register(Box::new(detected.clone()))?;
        Ok(Self {
            psi,
            csi,
            detected,
            set: Owned::default(),
        })
    }

    /// Sets one ModelDeployment's series from its latest evaluation (none:
    /// removes them).
    pub fn report(
        &self,
        md: &aimass_crds::v1alpha1::ModelDeployment,
        drift: Option<&aimass_crds::v1alpha1::DriftStatus>,
    ) {
        use kube::ResourceExt;
        let key = (md.namespace().unwrap_or_default(), md.name_any());
        for labels in self.set.take(&key) {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            let _ = match labels.len() {
                5 => self.csi.remove_label_values(&labels),
                _ => self
                    .psi
                    .remove_label_values(&labels)
                    .and(self.detected.remove_label_values(&labels)),
            };
        }
        let Some((drift, version)) = drift.and_then(|d| Some((d, d.version?))) else {
            return;
        };
        let base = vec![
            key.0.clone(),
            key.1.clone(),
            md.served_name(),
            version.to_string(),
        ];
        let refs: Vec<&str> = base.iter().map(String::as_str).collect();
        self.detected
            .with_label_values(&refs)
            .set(i64::from(drift.detected));
        if let Some(psi) = drift.psi {
            self.psi.with_label_values(&refs).set(psi);
        }
        let mut series = vec![base.clone()];
        for feature in &drift.features {
            let mut labels = base.clone();
            labels.push(feature.name.clone());
            let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
            self.csi.with_label_values(&refs).set(feature.index);
            series.push(labels);
        }
        self.set.keep(key, series);
    }
}

/// Each Model's figures on its latest scheduled evaluation, and which of its
/// gates it no longer meets, as alert rules read them.
pub struct EvaluationMetrics {
    metric: GaugeVec,
    below_gate: IntGaugeVec,
    /// The series set per Model.
    set: Owned,
}

/// One series' label values.
type LabelValues = Vec<String>;

impl EvaluationMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metric = GaugeVec::new(
            Opts::new(
                "aimass_model_evaluation_metric",
                "A Model champion's figure (auc, ks, gini, badRate) on its latest scheduled evaluation.",
            ),
            &["namespace", "model", "version", "metric"],
        )?;
        let below_gate = IntGaugeVec::new(
            Opts::new(
                "aimass_model_evaluation_below_gate",
                "1 while a Model's champion misses the promotion gate on this metric on its latest evaluation, 0 while it meets it.",
            ),
            &["namespace", "model", "metric"],
        )?;
        registry.register(Box::new(metric.clone()))?;
        registry.register(Box::new(below_gate.clone()))?;
        Ok(Self {
            metric,
            below_gate,
            set: Owned::default(),
        })
    }

    /// Sets one Model's series from its latest evaluation (none: removes
    /// them).
    pub fn report(
        &self,
        namespace: &str,
        model: &str,
        latest: Option<&aimass_crds::v1alpha1::Evaluation>,
        gates: &[aimass_crds::v1alpha1::PromotionGate],
    ) {
        let key = (namespace.to_owned(), model.to_owned());
        for labels in self.set.take(&key) {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            let _ = match labels.len() {
                4 => self.metric.remove_label_values(&labels),
                _ => self.below_gate.remove_label_values(&labels),
            };
        }
        let Some(latest) = latest else { return };
        let version = latest.version.to_string();
        let mut series = Vec::new();
        for (name, value) in &latest.metrics {
            self.metric
                .with_label_values(&[namespace, model, &version, name])
                .set(*value);
            series.push(vec![
                namespace.into(),
                model.into(),
                version.clone(),
                name.clone(),
            ]);
            if gates
                .iter()
                .any(|g| &g.metric == name && (g.minimum.is_some() || g.maximum.is_some()))
            {
                let below = !crate::model::evaluation::below_gates(
                    &std::collections::BTreeMap::from([(name.clone(), *value)]),
                    gates,
                )
                .is_empty();
                self.below_gate
                    .with_label_values(&[namespace, model, name])
                    .set(i64::from(below));
                series.push(vec![namespace.into(), model.into(), name.clone()]);
            }
        }
        self.set.keep(key, series);
    }
}

/// Which replicas are judged unhealthy, as alert rules read it.
pub struct HealthMetrics {
    unhealthy: IntGaugeVec,
}

impl HealthMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let unhealthy = IntGaugeVec::new(
            Opts::new(
                "aimass_replica_unhealthy",
                "1 while a replica of a ModelDeployment is judged unhealthy, with the metric that crossed its threshold.",
            ),
            &["namespace", "model_deployment", "pod", "node", "metric"],
        )?;
        registry.register(Box::new(unhealthy.clone()))?;
        Ok(Self { unhealthy })
    }

    /// Sets the series of one ModelDeployment's replicas from their tracks.
    pub fn report(
        &self,
        namespace: &str,
        deployment: &str,
        replicas: &[crate::health::evaluate::ReplicaFigures],
        tracks: &crate::health::evaluate::Tracks,
    ) {
        for replica in replicas {
            let node = replica.node.as_deref().unwrap_or("");
            for metric in [
                "p99LatencyMillis",
                "errorRate",
                "cpuCores",
                "memoryMebibytes",
                "p99LatencyOutlier",
            ] {
                let _ = self.unhealthy.remove_label_values(&[
                    namespace,
                    deployment,
                    &replica.pod,
                    node,
                    metric,
                ]);
            }
            if let Some(track) = tracks.get(&replica.pod).filter(|t| t.unhealthy)
                && let Some(breach) = &track.breach
            {
                self.unhealthy
                    .with_label_values(&[namespace, deployment, &replica.pod, node, breach.metric])
                    .set(1);
            }
        }
    }
}

/// How the controllers' reconciles go.
pub struct ReconcileMetrics {
    runs: IntCounterVec,
    failures: IntCounterVec,
    duration: HistogramVec,
}

impl ReconcileMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let runs = IntCounterVec::new(
            Opts::new(
                "aimass_operator_reconciliations_total",
                "Reconciles run, by controller.",
            ),
            &["controller"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "aimass_operator_reconcile_errors_total",
                "Reconciles that failed, by controller and error category.",
            ),
            &["controller", "category"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "aimass_operator_reconcile_duration_seconds",
                "Time a reconcile took, by controller.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["controller"],
        )?;
        // Every controller's series exist from the start at zero, so that
        // dashboards and alert rules see them before the first failure and
        // `rate()` counts that failure.
        for controller in crate::controllers::NAMES {
            runs.with_label_values(&[controller]);
            for category in crate::Error::RECONCILE_CATEGORIES {
                failures.with_label_values(&[controller, category]);
            }
        }
        registry.register(Box::new(runs.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self {
            runs,
            failures,
            duration,
        })
    }

    /// Starts timing one reconcile of `controller`.
    pub fn start(&self, controller: &'static str) -> ReconcileTimer<'_> {
        self.runs.with_label_values(&[controller]).inc();
        ReconcileTimer {
            metrics: self,
            controller,
            started: Instant::now(),
        }
    }

    /// Counts a failed reconcile of `controller`.
    pub fn failed(&self, controller: &str, category: &str) {
        self.failures
            .with_label_values(&[controller, category])
            .inc();
    }
}

/// Observes a reconcile's duration when dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a ReconcileMetrics,
    controller: &'static str,
    started: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .with_label_values(&[self.controller])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Metrics {
    /// Creates the registry with build information and process metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new(
                "aimass_operator_build_info",
                "Version of the running operator; always 1.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let reconcile = ReconcileMetrics::register(&registry)?;
        let health = HealthMetrics::register(&registry)?;
        let evaluation = EvaluationMetrics::register(&registry)?;
        let drift = DriftMetrics::register(&registry)?;
        let events = IntCounterVec::new(
            Opts::new(
                "aimass_operator_events_total",
                "Kubernetes Events the operator published, by kind of the object they are about, type (Normal, Warning) and reason.",
            ),
            &["kind", "type", "reason"],
        )?;
        registry.register(Box::new(events.clone()))?;
        Ok(Self {
            registry,
            reconcile,
            health,
            evaluation,
            drift,
            events,
        })
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
    fn renders_build_info_and_process_metrics() {
        let metrics = Metrics::new().expect("registry");
        drop(metrics.reconcile.start("model"));
        metrics.reconcile.failed("model", "StorageUnavailable");
        let text = metrics.render().expect("renders");
        assert!(
            text.contains("aimass_operator_reconciliations_total{controller=\"model\"} 1"),
            "{text}"
        );
        assert!(text.contains("aimass_operator_reconcile_errors_total{category=\"StorageUnavailable\",controller=\"model\"} 1"), "{text}");
        assert!(
            text.contains(
                "aimass_operator_reconcile_duration_seconds_count{controller=\"model\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "aimass_operator_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }
}
