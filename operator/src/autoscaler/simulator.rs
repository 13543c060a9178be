//! A traffic simulator for `decide`: synthetic traces (step, ramp, spike,
//! diurnal, flat) drive a fleet of replicas that take a few seconds to start,
//! sampled every 2 s as the collector does. Each trace prints replicas over
//! time, time to scale and over-provisioning, and asserts the behaviour a
//! risk team expects.

use aimass_crds::v1alpha1::{AutoscalingSpec, ReplicasSpec};

use super::decide::{Inputs, Memory, Sample, decide};

/// Seconds a new replica takes to become ready.
const STARTUP: f64 = 4.0;
/// Seconds one request takes at the server.
const SERVICE_TIME: f64 = 0.05;
/// Requests one replica can hold in flight before queueing.
const CAPACITY: f64 = 8.0;

struct Outcome {
    replicas: Vec<(f64, i32)>,
    time_to_scale: Option<f64>,
    over_provisioning: f64,
    changes: usize,
}

/// Runs `trace` (rps at a time) for `duration` seconds from `start` replicas.
fn simulate(
    name: &str,
    spec: &AutoscalingSpec,
    bounds: &ReplicasSpec,
    start: i32,
    duration: f64,
    trace: impl Fn(f64) -> f64,
) -> Outcome {
    let per_replica = spec.target * spec.target_utilization;
    let mut memory = Memory::default();
    let mut samples: Vec<Sample> = Vec::new();
    let mut desired = start;
    let mut ready_at: Vec<f64> = vec![0.0; usize::try_from(start).unwrap_or(1)];
    let mut replicas = Vec::new();
    let (mut needed_sum, mut provided_sum, mut time_to_scale, mut changes) = (0.0, 0.0, None, 0);
    let mut t = 0.0;
    while t < duration {
        t += 2.0;
        let rps = trace(t);
        let ready = ready_at.iter().filter(|r| **r <= t).count().max(1) as f64;
        let offered = rps * SERVICE_TIME;
        // Under capacity, Little's law; over it, requests queue.
        let concurrency = if offered <= ready * CAPACITY {
            offered
        } else {
            offered * (offered / (ready * CAPACITY))
        };
        samples.push(Sample {
            time: t,
            concurrency,
            rps,
            p99_ms: Some(SERVICE_TIME * 1000.0),
        });
        let decision = decide(
            Inputs {
                spec,
                bounds,
                current: desired,
                samples: &samples,
            },
            &mut memory,
            t,
        );
        if decision.desired != desired {
            changes += 1;
        }
        ready_at.truncate(usize::try_from(decision.desired).unwrap_or(1));
        while ready_at.len() < usize::try_from(decision.desired).unwrap_or(1) {
            ready_at.push(t + STARTUP);
        }
        desired = decision.desired;
        let needed = ((offered / per_replica).ceil() as i32).clamp(bounds.min, bounds.max);
        if time_to_scale.is_none() && needed > start && desired >= needed {
            time_to_scale = Some(t);
        }
        needed_sum += f64::from(needed);
        provided_sum += f64::from(desired);
        replicas.push((t, desired));
    }
    let outcome = Outcome {
        replicas,
        time_to_scale,
        over_provisioning: provided_sum / needed_sum.max(1.0),
        changes,
    };
    let line: Vec<String> = outcome
        .replicas
        .iter()
        .step_by(5)
        .map(|(_, r)| r.to_string())
        .collect();
    println!(
        "{name:8} replicas every 10 s: {} | time to scale: {} | over-provisioning: {:.2}x | changes: {}",
        line.join(" "),
        outcome
            .time_to_scale
            .map_or_else(|| "-".into(), |t| format!("{t:.0}s")),
        outcome.over_provisioning,
        outcome.changes
    );
    outcome
}

fn setup() -> (AutoscalingSpec, ReplicasSpec) {
    let spec = AutoscalingSpec {
        target: 4.0,
        target_utilization: 0.7,
        ..AutoscalingSpec::default()
    };
    (
        spec,
        ReplicasSpec {
            min: 1,
            max: 20,
            count: None,
        },
    )
}

#[test]
fn step_scales_up_within_seconds_and_settles() {
    let (spec, bounds) = setup();
    // 20 rps, then 400 rps from t=30 s (1 -> 8 replicas' worth).
    let out = simulate("step", &spec, &bounds, 1, 240.0, |t| {
        if t < 30.0 { 20.0 } else { 400.0 }
    });
    let reached = out.time_to_scale.expect("scaled");
    assert!(
        reached - 30.0 <= 10.0,
        "panic mode reacts within 10 s, took {}",
        reached - 30.0
    );
    let tail: Vec<i32> = out
        .replicas
        .iter()
        .filter(|(t, _)| *t > 180.0)
        .map(|(_, r)| *r)
        .collect();
    assert!(tail.windows(2).all(|w| w[0] == w[1]), "settles: {tail:?}");
    assert!(out.over_provisioning < 1.6, "{}", out.over_provisioning);
}

#[test]
fn ramp_follows_without_lagging_far_behind() {
    let (spec, bounds) = setup();
    let out = simulate("ramp", &spec, &bounds, 1, 300.0, |t| 5.0 + t * 1.5);
    assert!(
        out.over_provisioning > 0.85 && out.over_provisioning < 1.6,
        "{}",
        out.over_provisioning
    );
}

#[test]
fn a_spike_is_absorbed_and_released_after_the_delay() {
    let (spec, bounds) = setup();
    let out = simulate("spike", &spec, &bounds, 1, 300.0, |t| {
        if (60.0..80.0).contains(&t) {
            600.0
        } else {
            10.0
        }
    });
    let peak = out.replicas.iter().map(|(_, r)| *r).max().unwrap_or(0);
    assert!(peak >= 8, "the spike scaled up to {peak}");
    let end = out.replicas.last().map_or(0, |(_, r)| *r);
    assert_eq!(end, 1, "back to the minimum after the spike");
    let held = out
        .replicas
        .iter()
        .filter(|(t, r)| (80.0..140.0).contains(t) && *r == peak)
        .count();
    assert!(held > 0, "no scale-down right after the spike");
}

#[test]
fn diurnal_traffic_is_followed() {
    let (spec, bounds) = setup();
    let out = simulate("diurnal", &spec, &bounds, 1, 600.0, |t| {
        150.0 + 140.0 * (t / 600.0 * std::f64::consts::TAU).sin()
    });
    assert!(out.over_provisioning < 1.7, "{}", out.over_provisioning);
}

#[test]
fn flat_traffic_does_not_flap() {
    let (spec, bounds) = setup();
    let out = simulate("flat", &spec, &bounds, 3, 600.0, |_| 150.0);
    assert!(out.changes <= 2, "{} changes", out.changes);
}
