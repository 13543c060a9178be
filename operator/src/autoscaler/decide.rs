//! The autoscaling decision, modelled on Knative's KPA, as a pure function
//! of the recent samples: a stable window for ordinary changes, a short
//! panic window for bursts (entered at `panicThreshold` times the current
//! capacity, never scaling down while it lasts), pods still starting counted
//! as supply, p99 over the latency objective counted as over target, rate
//! limits per decision, a scale-down delay, and the user's bounds.

use std::collections::VecDeque;

use aimass_crds::v1alpha1::{AutoscalingMetric, AutoscalingSpec, ReplicasSpec};

/// One reading of a ModelDeployment's servers over a scrape interval, summed
/// over the replicas that answered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// When the interval ended, in seconds.
    pub time: f64,
    /// Requests in flight, averaged over the interval.
    pub concurrency: f64,
    /// Requests answered per second.
    pub rps: f64,
    /// 99th-percentile latency in the interval, in milliseconds.
    pub p99_ms: Option<f64>,
}

/// What a decision looks at.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The autoscaling settings.
    pub spec: &'a AutoscalingSpec,
    /// The replica bounds.
    pub bounds: &'a ReplicasSpec,
    /// Replicas asked for now, ready or still starting: all of them count
    /// as supply.
    pub current: i32,
    /// Recent samples, oldest first.
    pub samples: &'a [Sample],
}

/// What a decision remembers for the next one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Memory {
    /// Panic mode lasts until this time.
    pub panic_until: Option<f64>,
    /// Recent recommendations (time, replicas), for the scale-down delay.
    pub recommendations: VecDeque<(f64, i32)>,
}

/// The outcome of one decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Replicas wanted.
    pub desired: i32,
    /// Whether panic mode drove it.
    pub panic: bool,
    /// The tracked metric over the stable window (total across replicas).
    pub stable_value: f64,
    /// The tracked metric over the panic window (total across replicas).
    pub panic_value: f64,
    /// Why, in a sentence.
    pub reason: String,
}

fn average(samples: &[&Sample], value: impl Fn(&Sample) -> f64) -> Option<f64> {
    (!samples.is_empty())
        .then(|| samples.iter().map(|s| value(s)).sum::<f64>() / samples.len() as f64)
}

/// Decides the replicas at `now` (seconds).
pub fn decide(inputs: Inputs<'_>, memory: &mut Memory, now: f64) -> Decision {
    let spec = inputs.spec;
    let current = inputs.current.max(1);
    let metric = |s: &Sample| match spec.metric {
        AutoscalingMetric::Concurrency => s.concurrency,
        AutoscalingMetric::RequestsPerSecond => s.rps,
    };
    let within = |window: i32| -> Vec<&Sample> {
        inputs
            .samples
            .iter()
            .filter(|s| s.time > now - f64::from(window) && s.time <= now)
            .collect()
    };
    let stable = within(spec.stable_window_seconds);
    let panic = within(spec.panic_window_seconds);
    let (Some(stable_value), Some(panic_value)) = (
        average(&stable, metric),
        average(&panic, metric).or(average(&stable, metric)),
    ) else {
        return Decision {
            desired: inputs.current.clamp(inputs.bounds.min, inputs.bounds.max),
            panic: false,
            stable_value: 0.0,
            panic_value: 0.0,
            reason: "no metrics in the stable window yet: replicas unchanged".into(),
        };
    };
    let mut reasons = Vec::new();
    let desired_stable = stable_recommendation(spec, &stable, stable_value, current, &mut reasons);
    let desired_panic = replicas_for(spec, panic_value);
    let panicking = panic_mode(spec, memory, panic_value, current, now, &mut reasons);
    let desired = if panicking {
        desired_panic.max(desired_stable).max(current)
    } else {
        desired_stable
    };
    let desired = hold_for_scale_down_delay(spec, memory, desired, current, now, &mut reasons);
    let desired = limit_rate(spec, desired, current, &mut reasons);
    let bounded = desired.clamp(inputs.bounds.min, inputs.bounds.max);
    if bounded != desired {
        reasons.push(format!(
            "bounded to [{}, {}]",
            inputs.bounds.min, inputs.bounds.max
        ));
    }
    Decision {
        desired: bounded,
        panic: panicking,
        stable_value,
        panic_value,
        reason: reasons.join("; "),
    }
}

/// Replicas that carry `value` at the target utilisation.
fn replicas_for(spec: &AutoscalingSpec, value: f64) -> i32 {
    let per_replica = (spec.target * spec.target_utilization).max(f64::EPSILON);
    (value / per_replica).ceil() as i32
}

/// Replicas for the stable window's value, one more than `current` when
/// its p99 is over the latency objective.
fn stable_recommendation(
    spec: &AutoscalingSpec,
    stable: &[&Sample],
    stable_value: f64,
    current: i32,
    reasons: &mut Vec<String>,
) -> i32 {
    let mut desired = replicas_for(spec, stable_value);
    reasons.push(format!(
        "{stable_value:.2} over {}s / ({} x {}) per replica = {desired}",
        spec.stable_window_seconds, spec.target, spec.target_utilization
    ));
    let measured: Vec<&Sample> = stable
        .iter()
        .filter(|s| s.p99_ms.is_some())
        .copied()
        .collect();
    if let Some(slo) = spec.latency_slo_millis
        && let Some(p99) = average(&measured, |s| s.p99_ms.unwrap_or(0.0))
        && p99 > slo as f64
    {
        desired = desired.max(current + 1);
        reasons.push(format!(
            "p99 {p99:.1} ms is over the {slo} ms objective: one more replica"
        ));
    }
    desired
}

/// Whether panic mode holds at `now`: entered when the panic window needs
/// `panicThreshold` times the `current` replicas, and kept for a stable
/// window after the last time it did.
fn panic_mode(
    spec: &AutoscalingSpec,
    memory: &mut Memory,
    panic_value: f64,
    current: i32,
    now: f64,
    reasons: &mut Vec<String>,
) -> bool {
    let desired_panic = replicas_for(spec, panic_value);
    let mut announced = false;
    if f64::from(desired_panic) >= spec.panic_threshold * f64::from(current)
        && desired_panic > current
    {
        if memory.panic_until.is_none_or(|until| until <= now) {
            reasons.push(format!(
                "panic: {panic_value:.2} over {}s needs {desired_panic} replicas, {}x the {current} running",
                spec.panic_window_seconds, spec.panic_threshold
            ));
            announced = true;
        }
        memory.panic_until = Some(now + f64::from(spec.stable_window_seconds));
    }
    let panicking = memory.panic_until.is_some_and(|until| until > now);
    if !panicking {
        memory.panic_until = None;
    } else if !announced {
        reasons.push(format!(
            "panic mode: {panic_value:.2} over {}s needs {desired_panic}; no scale-down until it ends",
            spec.panic_window_seconds
        ));
    }
    panicking
}

/// The scale-down delay: `desired`, or the highest recommendation of the
/// last delay when that is higher and would still scale down.
fn hold_for_scale_down_delay(
    spec: &AutoscalingSpec,
    memory: &mut Memory,
    desired: i32,
    current: i32,
    now: f64,
    reasons: &mut Vec<String>,
) -> i32 {
    memory.recommendations.push_back((now, desired));
    let delay = f64::from(spec.scale_down_delay_seconds);
    while memory
        .recommendations
        .front()
        .is_some_and(|(t, _)| *t < now - delay)
    {
        memory.recommendations.pop_front();
    }
    let held = memory
        .recommendations
        .iter()
        .map(|(_, r)| *r)
        .max()
        .unwrap_or(desired);
    if held > desired && desired < current {
        reasons.push(format!(
            "held at {} by the {delay}s scale-down delay",
            held.min(current)
        ));
        return held.min(current);
    }
    desired
}

/// `desired` within the rates of change per decision.
fn limit_rate(
    spec: &AutoscalingSpec,
    desired: i32,
    current: i32,
    reasons: &mut Vec<String>,
) -> i32 {
    let up_limit = (f64::from(current) * spec.max_scale_up_rate).ceil() as i32;
    // At most divided by the rate, rounded up: 3 replicas at rate 2 keep 2.
    let down_limit = (f64::from(current) / spec.max_scale_down_rate).ceil() as i32;
    if desired > up_limit {
        reasons.push(format!(
            "limited to {up_limit} ({}x up per decision)",
            spec.max_scale_up_rate
        ));
    }
    if desired < down_limit {
        reasons.push(format!(
            "limited to {down_limit} ({}x down per decision)",
            spec.max_scale_down_rate
        ));
    }
    desired.clamp(down_limit.max(1), up_limit.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 5 in flight per replica.
    fn spec() -> AutoscalingSpec {
        AutoscalingSpec {
            target: 10.0,
            target_utilization: 0.5,
            ..AutoscalingSpec::default()
        }
    }

    fn bounds(min: i32, max: i32) -> ReplicasSpec {
        ReplicasSpec {
            min,
            max,
            count: None,
        }
    }

    /// Samples every 2 s up to `now` with a constant value.
    fn flat(until: f64, value: f64) -> Vec<Sample> {
        (0..=(until / 2.0) as i32)
            .map(|i| Sample {
                time: f64::from(i) * 2.0,
                concurrency: value,
                rps: value * 10.0,
                p99_ms: Some(5.0),
            })
            .collect()
    }

    fn run(
        spec: &AutoscalingSpec,
        bounds: &ReplicasSpec,
        current: i32,
        samples: &[Sample],
        now: f64,
        memory: &mut Memory,
    ) -> Decision {
        decide(
            Inputs {
                spec,
                bounds,
                current,
                samples,
            },
            memory,
            now,
        )
    }

    #[test]
    fn table() {
        let s = spec();
        let b = bounds(1, 20);
        // (name, current, samples, expected replicas, expected panic)
        let cases: Vec<(&str, i32, Vec<Sample>, i32, bool)> = vec![
            ("no data keeps replicas", 3, vec![], 3, false),
            ("steady load at target", 2, flat(120.0, 10.0), 2, false),
            ("steady load over target", 3, flat(120.0, 20.0), 4, false),
            (
                "burst enters panic",
                2,
                [
                    flat(110.0, 5.0),
                    flat(120.0, 60.0)
                        .into_iter()
                        .filter(|x| x.time > 114.0)
                        .collect(),
                ]
                .concat(),
                12,
                true,
            ),
            ("at most 10x up", 1, flat(120.0, 500.0), 10, true),
            ("no load goes to min", 4, flat(120.0, 0.0), 2, false),
            ("at most halved, rounded up", 3, flat(120.0, 0.0), 2, false),
        ];
        for (name, current, samples, expected, panic) in cases {
            let mut memory = Memory::default();
            let d = run(&s, &b, current, &samples, 120.0, &mut memory);
            assert_eq!((d.desired, d.panic), (expected, panic), "{name}: {d:?}");
        }
    }

    #[test]
    fn bounds_hold() {
        let s = spec();
        let mut memory = Memory::default();
        assert_eq!(
            run(&s, &bounds(3, 5), 3, &flat(120.0, 0.0), 120.0, &mut memory).desired,
            3
        );
        assert_eq!(
            run(
                &s,
                &bounds(1, 5),
                5,
                &flat(120.0, 100.0),
                120.0,
                &mut Memory::default()
            )
            .desired,
            5
        );
    }

    #[test]
    fn the_latency_objective_counts_as_over_target() {
        let mut s = spec();
        s.latency_slo_millis = Some(3);
        let d = run(
            &s,
            &bounds(1, 10),
            2,
            &flat(120.0, 10.0),
            120.0,
            &mut Memory::default(),
        );
        assert_eq!(d.desired, 3, "{d:?}");
        assert!(d.reason.contains("objective"), "{}", d.reason);
    }

    #[test]
    fn no_scale_down_while_panicking_nor_within_the_delay() {
        let mut s = spec();
        s.scale_down_delay_seconds = 30;
        let b = bounds(1, 20);
        let mut memory = Memory::default();
        let burst: Vec<Sample> = flat(60.0, 60.0);
        let d = run(&s, &b, 2, &burst, 60.0, &mut memory);
        assert!(d.panic && d.desired > 2, "{d:?}");
        let high = d.desired;
        // The load is gone, but panic (one stable window) holds the replicas.
        let quiet: Vec<Sample> = [
            burst,
            flat(70.0, 0.0)
                .into_iter()
                .filter(|x| x.time > 60.0)
                .collect(),
        ]
        .concat();
        let d = run(&s, &b, high, &quiet, 70.0, &mut memory);
        assert_eq!(d.desired, high, "{d:?}");
        // After panic ends, the delay still holds the last high recommendation.
        let later: Vec<Sample> = (0..=100)
            .map(|i| Sample {
                time: 70.0 + f64::from(i) * 2.0,
                concurrency: 0.0,
                rps: 0.0,
                p99_ms: None,
            })
            .collect();
        let d = run(&s, &b, high, &later, 140.0, &mut memory);
        assert!(d.desired >= high / 2, "at most 2x down per decision: {d:?}");
        let mut current = d.desired;
        for step in 0..30 {
            current = run(
                &s,
                &b,
                current,
                &later,
                142.0 + f64::from(step) * 2.0,
                &mut memory,
            )
            .desired;
        }
        assert_eq!(current, 1, "back to min eventually");
    }
}
