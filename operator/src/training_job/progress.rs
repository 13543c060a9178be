//! A run's progress as read from its trainer's output (the lines of
//! `aimass_crds::trainer`): a bounded history, the latest values and a
//! one-line summary for `kubectl get`.

use std::collections::BTreeMap;

use aimass_crds::trainer::{Line, METRICS_LIMIT, parse};
use aimass_crds::v1alpha1::MetricsSample;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// How many samples `status.metricsHistory` keeps.
pub const HISTORY_LIMIT: usize = 50;
/// Longest `status.metricsSummary`, for a readable `kubectl get` column.
const SUMMARY_LIMIT: usize = 60;

/// A run's progress as read so far: a bounded history and the latest value
/// of every metric.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    /// Samples, oldest first, at most [`HISTORY_LIMIT`].
    pub history: Vec<MetricsSample>,
    /// Latest value of every metric seen.
    pub latest: BTreeMap<String, f64>,
    /// The last error line the trainer printed.
    pub error: Option<(String, String)>,
}

impl Progress {
    /// Takes in one line read at `time`.
    pub fn read(&mut self, line: &str, time: &Time) {
        match parse(line) {
            Some(Line::Metrics { step, metrics }) => {
                for (name, value) in &metrics {
                    if self.latest.len() < METRICS_LIMIT || self.latest.contains_key(name) {
                        self.latest.insert(name.clone(), *value);
                    }
                }
                self.history.push(MetricsSample {
                    step,
                    time: time.clone(),
                    metrics,
                });
                if self.history.len() > HISTORY_LIMIT {
                    let excess = self.history.len() - HISTORY_LIMIT;
                    self.history.drain(..excess);
                }
            }
            Some(Line::Error { reason, message }) => self.error = Some((reason, message)),
            None => {}
        }
    }
}

/// The metrics in one short line for `kubectl get`, e.g. `auc=0.931 loss=0.21`.
pub fn summary(metrics: &BTreeMap<String, f64>) -> Option<String> {
    let mut line = String::new();
    for (name, value) in metrics {
        let item = format!("{name}={}", format_value(*value));
        if !line.is_empty() && line.len() + 1 + item.len() > SUMMARY_LIMIT {
            line.push_str(" …");
            break;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&item);
    }
    (!line.is_empty()).then_some(line)
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e9 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.4}");
        text.trim_end_matches('0').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use aimass_crds::trainer::MESSAGE_LIMIT;

    fn metrics(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn history_is_bounded_and_latest_values_merge() {
        let time = Time(jiff::Timestamp::UNIX_EPOCH);
        let mut progress = Progress::default();
        for step in 0..(HISTORY_LIMIT + 10) {
            progress.read(
                &format!("step={step} loss={}", 1.0 / (step as f64 + 1.0)),
                &time,
            );
        }
        progress.read("auc=0.9", &time);
        assert_eq!(progress.history.len(), HISTORY_LIMIT);
        assert_eq!(progress.history[0].step, Some(11));
        assert_eq!(progress.latest["auc"], 0.9);
        assert!(progress.latest.contains_key("loss"));
    }

    #[test]
    fn summary_is_short_and_readable() {
        assert_eq!(
            summary(&metrics(&[("auc", 0.93124), ("rows", 1000.0)])).unwrap(),
            "auc=0.9312 rows=1000"
        );
        let many: BTreeMap<String, f64> = (0..20).map(|i| (format!("metric_{i}"), 0.5)).collect();
        let line = summary(&many).unwrap();
        assert!(
            line.ends_with('…') && line.len() < SUMMARY_LIMIT + 10,
            "{line}"
        );
        assert_eq!(summary(&BTreeMap::new()), None);
    }

    #[test]
    fn a_hostile_trainer_cannot_grow_the_metrics_without_bound() {
        let now = Time(jiff::Timestamp::now());
        let mut progress = Progress::default();
        for i in 0..1000 {
            let line = serde_json::json!({"metrics": (0..200).map(|j| (format!("m{i}_{j}"), j)).collect::<BTreeMap<_, _>>()});
            progress.read(&line.to_string(), &now);
        }
        assert_eq!(progress.latest.len(), METRICS_LIMIT);
        assert!(
            progress
                .history
                .iter()
                .all(|s| s.metrics.len() <= METRICS_LIMIT)
        );
        let error = format!(
            r#"{{"error": "DatasetUnavailable", "message": "{}"}}"#,
            "é".repeat(10_000)
        );
        progress.read(&error, &now);
        let (_, message) = progress.error.clone().unwrap();
        assert_eq!(message.chars().count(), MESSAGE_LIMIT);
        // Names that are not metric names are skipped, in JSON too.
        assert!(parse(r#"{"metrics": {"<script>": 1}}"#).is_none());
    }
}
