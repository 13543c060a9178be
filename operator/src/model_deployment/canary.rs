//! Canary analysis as a pure decision: after a step has run its interval,
//! compare the canary's error rate and p99 latency with the stable track's
//! over the same window, and pass, fail, or wait for enough traffic.

use aimass_crds::v1alpha1::CanarySpec;

use crate::scrape::Window;

/// Requests the canary must have answered in a step before it is judged.
pub const MIN_REQUESTS: f64 = 20.0;

/// The outcome of one analysis.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Not enough traffic yet; the step goes on.
    Wait(String),
    /// The step passed.
    Pass(String),
    /// The canary is worse than allowed; roll back.
    Fail(String),
}

/// Judges one step from the two tracks' windows.
pub fn judge(stable: &Window, canary: &Window, spec: &CanarySpec) -> Verdict {
    if canary.requests < MIN_REQUESTS {
        return Verdict::Wait(format!(
            "waiting for traffic: the canary answered {} of the {MIN_REQUESTS} requests a judgement needs",
            canary.requests
        ));
    }
    let (canary_rate, stable_rate) = (canary.error_rate(), stable.error_rate());
    let errors = format!(
        "error rate {:.2}% vs {:.2}% stable over {} requests",
        canary_rate * 100.0,
        stable_rate * 100.0,
        canary.requests
    );
    if canary_rate - stable_rate > spec.max_error_rate_increase {
        return Verdict::Fail(format!(
            "{errors}: more than {:.2} points above stable",
            spec.max_error_rate_increase * 100.0
        ));
    }
    let latency = match (canary.p99_seconds, stable.p99_seconds) {
        (Some(c), Some(s)) if s > 0.0 => {
            let ratio = c / s;
            if ratio > spec.max_latency_ratio {
                return Verdict::Fail(format!(
                    "p99 {:.1} ms vs {:.1} ms stable: {ratio:.2}x, more than the {}x allowed ({errors})",
                    c * 1000.0,
                    s * 1000.0,
                    spec.max_latency_ratio
                ));
            }
            format!("p99 {:.1} ms vs {:.1} ms stable", c * 1000.0, s * 1000.0)
        }
        _ => "no stable latency to compare".to_owned(),
    };
    Verdict::Pass(format!("{errors}; {latency}"))
}

/// Replicas of (stable, canary) out of `total` for a canary at `percent`:
/// at least one of each.
pub fn split(total: i32, percent: i32) -> (i32, i32) {
    let canary =
        ((f64::from(total) * f64::from(percent) / 100.0).round() as i32).clamp(1, total.max(2) - 1);
    ((total - canary).max(1), canary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CanarySpec {
        serde_json::from_value(serde_json::json!({"steps": [25, 50], "maxErrorRateIncrease": 0.01, "maxLatencyRatio": 1.5})).unwrap()
    }

    fn window(requests: f64, errors: f64, p99_ms: Option<f64>) -> Window {
        Window {
            busy_seconds: 0.0,
            requests,
            errors,
            p99_seconds: p99_ms.map(|m| m / 1000.0),
            ..Window::default()
        }
    }

    #[test]
    fn judgement_table() {
        let stable = window(1000.0, 1.0, Some(2.0));
        let cases = [
            (window(5.0, 0.0, Some(2.0)), "Wait"),
            (window(100.0, 0.0, Some(2.5)), "Pass"),
            (window(100.0, 1.0, Some(2.0)), "Pass"),
            (window(100.0, 10.0, Some(2.0)), "Fail"),
            (window(100.0, 0.0, Some(4.0)), "Fail"),
            (window(100.0, 0.0, None), "Pass"),
        ];
        for (canary, expected) in cases {
            let verdict = judge(&stable, &canary, &spec());
            let kind = match &verdict {
                Verdict::Wait(_) => "Wait",
                Verdict::Pass(_) => "Pass",
                Verdict::Fail(_) => "Fail",
            };
            assert_eq!(kind, expected, "{canary:?}: {verdict:?}");
        }
        let Verdict::Fail(why) = judge(&stable, &window(100.0, 10.0, None), &spec()) else {
            panic!()
        };
        assert!(
            why.starts_with("error rate 10.00% vs 0.10% stable"),
            "{why}"
        );
    }

    #[test]
    fn replicas_split_by_ratio_with_one_of_each_at_least() {
        assert_eq!(split(4, 25), (3, 1));
        assert_eq!(split(4, 50), (2, 2));
        assert_eq!(split(2, 10), (1, 1));
        assert_eq!(split(1, 50), (1, 1));
        assert_eq!(split(10, 90), (1, 9));
    }
}
