//! Reading a trainer's progress from its output, as the trainer contract
//! defines it: JSON lines with a `metrics` object (and an optional `step`),
//! plain `name=value` lines as a fallback, and an `error` line a trainer
//! prints before it exits to say why it failed.

use std::collections::BTreeMap;

use aimass_crds::v1alpha1::MetricsSample;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Deserialize;

/// How many samples `status.metricsHistory` keeps.
pub const HISTORY_LIMIT: usize = 50;
/// The most distinct metrics a run keeps (in a sample and in the latest
/// values): a trainer's output is tenant data.
pub const METRICS_LIMIT: usize = 64;
/// The longest line of trainer output that is read; the rest of a longer
/// line is skipped.
pub const LINE_LIMIT: usize = 64 * 1024;
/// The longest error message kept from a trainer's error line.
const MESSAGE_LIMIT: usize = 1024;
/// Longest `status.metricsSummary`, for a readable `kubectl get` column.
const SUMMARY_LIMIT: usize = 60;
/// Keys of a plain line that name the step rather than a metric.
const STEP_KEYS: [&str; 4] = ["step", "epoch", "iteration", "round"];

/// What one line of trainer output says.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    /// Metric values, at a step when the trainer gave one.
    Metrics {
        /// The step, if reported.
        step: Option<i64>,
        /// Metric name to value.
        metrics: BTreeMap<String, f64>,
    },
    /// The trainer's own account of why it fails.
    Error {
        /// A CamelCase word, e.g. `DatasetUnavailable`.
        reason: String,
        /// A sentence for humans.
        message: String,
    },
}

#[derive(Deserialize)]
struct JsonLine {
    #[serde(default)]
    step: Option<f64>,
    #[serde(default)]
    metrics: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Reads one line of output; `None` for ordinary log text.
pub fn parse(line: &str) -> Option<Line> {
    let line = line.trim();
    if line.starts_with('{') {
        return parse_json(line);
    }
    parse_plain(line)
}

fn parse_json(line: &str) -> Option<Line> {
    let parsed: JsonLine = serde_json::from_str(line).ok()?;
    if let Some(reason) = parsed.error.filter(|r| is_reason(r)) {
        let message = parsed.message.unwrap_or_else(|| reason.clone());
        return Some(Line::Error {
            message: message.chars().take(MESSAGE_LIMIT).collect(),
            reason,
        });
    }
    let metrics: BTreeMap<String, f64> = parsed
        .metrics?
        .into_iter()
        .filter(|(name, _)| is_metric_name(name))
        .filter_map(|(name, value)| Some((name, value.as_f64().filter(|v| v.is_finite())?)))
        .take(METRICS_LIMIT)
        .collect();
    (!metrics.is_empty()).then(|| Line::Metrics {
        step: parsed.step.map(|s| s as i64),
        metrics,
    })
}

/// `loss=0.21 auc=0.93` or `epoch=3, loss=0.21`: every token must be a
/// `name=number` pair, so ordinary log text is never mistaken for metrics.
fn parse_plain(line: &str) -> Option<Line> {
    let mut step = None;
    let mut metrics = BTreeMap::new();
    for token in line.split([' ', ',', '\t']).filter(|t| !t.is_empty()) {
        let (name, value) = token.split_once('=')?;
        if !is_metric_name(name) {
            return None;
        }
        let value: f64 = value.parse().ok().filter(|v: &f64| v.is_finite())?;
        if STEP_KEYS.contains(&name) && step.is_none() {
            step = Some(value as i64);
        } else if metrics.len() < METRICS_LIMIT {
            metrics.insert(name.to_owned(), value);
        }
    }
    (!metrics.is_empty()).then_some(Line::Metrics { step, metrics })
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | '@'))
        && name.len() <= 128
}

fn is_reason(reason: &str) -> bool {
    reason
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase())
        && reason.chars().all(|c| c.is_ascii_alphanumeric())
        && reason.len() <= 64
}

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

    fn metrics(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn reads_json_metric_lines_with_and_without_step() {
        assert_eq!(
            parse(r#"{"step": 3, "metrics": {"loss": 0.21, "auc": 0.93}}"#),
            Some(Line::Metrics {
                step: Some(3),
                metrics: metrics(&[("loss", 0.21), ("auc", 0.93)])
            })
        );
        assert_eq!(
            parse(r#"{"metrics": {"ks": 0.5, "note": "text", "bad": null}}"#),
            Some(Line::Metrics {
                step: None,
                metrics: metrics(&[("ks", 0.5)])
            })
        );
    }

    #[test]
    fn reads_plain_name_value_lines() {
        assert_eq!(
            parse("epoch=2 loss=0.5, recall@0.5=0.8"),
            Some(Line::Metrics {
                step: Some(2),
                metrics: metrics(&[("loss", 0.5), ("recall@0.5", 0.8)])
            })
        );
    }

    #[test]
    fn ordinary_log_text_is_not_a_metric() {
        for line in [
            "",
            "loading data from s3://bucket/x.csv",
            "rows=100 loaded",
            "a=b",
            "{\"level\": \"info\", \"msg\": \"hello\"}",
            "{not json",
            "step=3",
            "loss=NaN",
        ] {
            assert_eq!(parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn reads_the_trainers_error_line() {
        assert_eq!(
            parse(r#"{"error": "DatasetUnavailable", "message": "no such file: /data/x.csv"}"#),
            Some(Line::Error {
                reason: "DatasetUnavailable".into(),
                message: "no such file: /data/x.csv".into()
            })
        );
        // Not a reason word: ignored rather than shown as a reason.
        assert_eq!(parse(r#"{"error": "boom happened"}"#), None);
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
