//! Table tests of a canary's state: where it stands, and what a verdict
//! does to it.

use super::*;

fn spec() -> CanarySpec {
    serde_json::from_value(serde_json::json!({"steps": [25, 50]})).expect("a valid canary spec")
}

fn at(seconds: i64) -> Time {
    Time(jiff::Timestamp::from_second(seconds).expect("a valid time"))
}

fn canary(version: i64, phase: CanaryPhase, step: i32, percent: i32) -> CanaryStatus {
    CanaryStatus {
        version,
        phase,
        percent,
        step,
        step_start_time: at(0),
        message: Some("judged".into()),
    }
}

#[test]
fn enter_starts_a_new_version_and_remembers_a_finished_one() {
    let table = [
        (
            "none yet: starts at the first step",
            None,
            "Started",
            Some((0, 25)),
        ),
        (
            "another version's canary: starts over",
            Some(canary(2, CanaryPhase::RolledBack, 1, 50)),
            "Started",
            Some((0, 25)),
        ),
        (
            "this version, under way: measure",
            Some(canary(3, CanaryPhase::Analysing, 1, 50)),
            "Measure",
            Some((1, 50)),
        ),
        (
            "this version, rolled back: hold",
            Some(canary(3, CanaryPhase::RolledBack, 1, 50)),
            "Hold",
            Some((1, 50)),
        ),
        (
            "this version, promoted: promote",
            Some(canary(3, CanaryPhase::Promoted, 1, 50)),
            "Promote",
            Some((1, 50)),
        ),
    ];
    for (what, before, want, after) in table {
        let mut state = before;
        let entry = enter(&mut state, 3, &spec(), &at(100));
        let kind = match &entry {
            Entry::Done(CanaryAction::Hold(why)) => {
                assert!(why.contains("judged"), "{what}: {why}");
                "Hold"
            }
            Entry::Done(CanaryAction::Promote) => "Promote",
            Entry::Done(CanaryAction::Run { .. }) => "Run",
            Entry::Started(_) => "Started",
            Entry::Measure => "Measure",
        };
        assert_eq!(kind, want, "{what}");
        assert_eq!(state.map(|c| (c.step, c.percent)), after, "{what}");
    }
}

#[test]
fn a_verdict_moves_the_canary_and_says_so() {
    let table = [
        (
            "wait: the step goes on",
            canary(3, CanaryPhase::Analysing, 0, 25),
            Verdict::Wait("waiting for traffic".into()),
            CanaryAction::Run {
                stable: 3,
                canary: 1,
            },
            CanaryPhase::Analysing,
            None,
        ),
        (
            "pass: the next step, more replicas",
            canary(3, CanaryPhase::Analysing, 0, 25),
            Verdict::Pass("fine".into()),
            CanaryAction::Run {
                stable: 2,
                canary: 2,
            },
            CanaryPhase::Analysing,
            Some("CanaryStepPassed"),
        ),
        (
            "pass at the last step: promoted",
            canary(3, CanaryPhase::Analysing, 1, 50),
            Verdict::Pass("fine".into()),
            CanaryAction::Promote,
            CanaryPhase::Promoted,
            Some("CanaryPromoted"),
        ),
        (
            "fail: rolled back",
            canary(3, CanaryPhase::Analysing, 1, 50),
            Verdict::Fail("error rate 10%".into()),
            CanaryAction::Hold("version 3 was rolled back at step 2 (50%): error rate 10%".into()),
            CanaryPhase::RolledBack,
            Some("CanaryRolledBack"),
        ),
    ];
    for (what, mut state, verdict, want, phase, event) in table {
        let (action, notice) = advance(&mut state, verdict, 4, &spec(), &at(100));
        assert_eq!(action, want, "{what}");
        assert_eq!(state.phase, phase, "{what}");
        assert_eq!(notice.map(|n| n.reason).as_deref(), event, "{what}");
    }
}

#[test]
fn only_a_move_to_a_newer_version_needs_a_canary() {
    // (deployed, next, rollback)
    for (deployed, next, rollback) in [(2, 1, true), (5, 3, true), (1, 2, false), (3, 7, false)] {
        assert_eq!(
            is_rollback(deployed, next),
            rollback,
            "{deployed} -> {next}"
        );
    }
}
