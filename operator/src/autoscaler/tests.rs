//! Table tests of what a round records.

use super::*;

/// A ModelDeployment with 1..5 replicas (5 in flight per replica), and
/// `status.replicas` as the controller last reported it.
fn md(enabled: bool, reported: i32) -> ModelDeployment {
    crate::fixtures::scorer(&format!(
        "  replicas: {{min: 1, max: 5}}
  autoscaling: {{enabled: {enabled}, target: 10, targetUtilization: 0.5}}
status: {{replicas: {reported}}}"
    ))
}

/// The time the tables start at: 1,000,000 s after the epoch.
fn at(seconds: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_000_000 + seconds).expect("a valid time")
}

/// Samples every 2 s over the last minute before `now`, `in_flight` each.
fn load(now: i64, in_flight: f64) -> Vec<Sample> {
    (0..30)
        .map(|i| Sample {
            time: (1_000_000 + now - 60 + i * 2) as f64,
            concurrency: in_flight,
            rps: in_flight * 10.0,
            p99_ms: Some(5.0),
        })
        .collect()
}

fn decision(at_second: i64, from: i32, to: i32) -> ScaleDecision {
    ScaleDecision {
        time: Time(at(at_second)),
        from,
        to,
        panic: false,
        stable_value: 0.0,
        panic_value: 0.0,
        reason: "earlier".into(),
    }
}

#[test]
fn current_is_the_last_decision_else_the_reported_figure_else_the_minimum() {
    let table = [
        // (reported, last decision's `to`, its age in seconds, current)
        (0, None, 0, 1),
        (3, None, 0, 3),
        (3, Some(4), 10, 4),
        (3, Some(9), 10, 5),
        (9, None, 0, 5),
        // Made before the autoscaler was turned off and on again: the
        // replicas set meanwhile count, not the old decision.
        (3, Some(1), 600, 3),
        (0, Some(2), 600, 1),
    ];
    for (reported, to, age, want) in table {
        let last = to.map(|to| decision(1000 - age, 1, to));
        assert_eq!(
            current(&md(true, reported), last.as_ref(), at(1000)),
            want,
            "reported {reported}, last {to:?} {age} s old"
        );
    }
}

#[test]
fn plan_records_changes_and_stale_decisions_and_nothing_when_disabled() {
    struct Row {
        what: &'static str,
        enabled: bool,
        last: Option<ScaleDecision>,
        in_flight: f64,
        now: i64,
        /// `to` of the recorded decision; None: nothing recorded.
        recorded: Option<i32>,
        /// Whether the last decision stays as it was.
        kept: bool,
        scaled: bool,
    }
    let table = [
        Row {
            what: "disabled: no decision, and an old one is cleared",
            enabled: false,
            last: Some(decision(0, 1, 3)),
            in_flight: 20.0,
            now: 100,
            recorded: None,
            kept: false,
            scaled: false,
        },
        Row {
            what: "first round, idle: the minimum is recorded, nothing scales",
            enabled: true,
            last: None,
            in_flight: 0.0,
            now: 100,
            recorded: Some(1),
            kept: false,
            scaled: false,
        },
        Row {
            what: "load for 4 replicas: recorded with an Event",
            enabled: true,
            last: Some(decision(90, 1, 1)),
            in_flight: 20.0,
            now: 100,
            recorded: Some(4),
            kept: false,
            scaled: true,
        },
        Row {
            what: "same figure within 30 s: the last decision stays",
            enabled: true,
            last: Some(decision(90, 1, 4)),
            in_flight: 20.0,
            now: 100,
            recorded: Some(4),
            kept: true,
            scaled: false,
        },
        Row {
            what: "same figure after 30 s: recorded again, no Event",
            enabled: true,
            last: Some(decision(60, 1, 4)),
            in_flight: 20.0,
            now: 100,
            recorded: Some(4),
            kept: false,
            scaled: false,
        },
    ];
    for row in table {
        let md = md(row.enabled, 1);
        let samples = load(row.now, row.in_flight);
        let plan = plan(
            &md,
            row.last.as_ref(),
            &samples,
            &mut Memory::default(),
            at(row.now),
        );
        assert_eq!(
            plan.decision.as_ref().map(|d| d.to),
            row.recorded,
            "{}",
            row.what
        );
        assert_eq!(
            plan.decision.as_ref() == row.last.as_ref(),
            row.kept,
            "{}",
            row.what
        );
        assert_eq!(
            plan.scaled.is_some(),
            row.scaled,
            "{}: {:?}",
            row.what,
            plan.scaled
        );
    }
}
