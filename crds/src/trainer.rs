//! The lines a trainer prints, as the trainer contract defines them: JSON
//! lines with a `metrics` object (and an optional `step`), plain
//! `name=value` lines as a fallback, and an `error` line a trainer prints
//! before it exits to say why it failed. The operator follows them into a
//! TrainingJob's status; the console draws a run's whole curve from them.
//! A trainer's output is tenant data: every line is bounded, and ordinary
//! log text is never taken for metrics.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The name of the trainer's container in the Job the operator runs.
pub const CONTAINER: &str = "trainer";
/// The most distinct metrics a run keeps (in a sample and in the latest
/// values): a trainer's output is tenant data.
pub const METRICS_LIMIT: usize = 64;
/// The longest line of trainer output that is read; the rest of a longer
/// line is skipped.
pub const LINE_LIMIT: usize = 64 * 1024;
/// The longest error message kept from a trainer's error line.
pub const MESSAGE_LIMIT: usize = 1024;
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
}
