//! Table tests of the conditions.

use super::*;
use aimass_crds::v1alpha1::conditions::reasons;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn sick() -> UnhealthyReplica {
    UnhealthyReplica {
        pod: "scorer-1".into(),
        node: Some("node-2".into()),
        since: Time(jiff::Timestamp::UNIX_EPOCH),
        metric: "p99LatencyMs".into(),
        value: 300.0,
        threshold: 100.0,
    }
}

fn rollout(complete: bool, ready: i32) -> Rollout {
    Rollout {
        complete,
        ready,
        updated_ready: ready,
    }
}

#[test]
fn serving_conditions_follow_the_rollout_the_problem_and_the_replicas_health() {
    let missing = Problem {
        reason: reasons::REFERENCE_NOT_FOUND,
        message: "Secret \"store\" does not exist".into(),
    };
    let unhealthy = [sick()];
    struct Row<'a> {
        what: &'static str,
        facts: Serving<'a>,
        /// (Progressing, Ready, Degraded) as (status, reason).
        want: [(bool, &'static str); 3],
        /// A word each message must hold.
        says: [&'static str; 3],
    }
    let table = [
        Row {
            what: "serving on every replica",
            facts: Serving {
                was_serving: Some(2),
                serving: Some(2),
                deployed: Some(2),
                rollout: rollout(true, 2),
                desired: 2,
                ..Serving::default()
            },
            want: [
                (false, reasons::AS_EXPECTED),
                (true, reasons::AS_EXPECTED),
                (false, reasons::AS_EXPECTED),
            ],
            says: ["no rollout", "version 2 serves on 2/2", "can be served"],
        },
        Row {
            what: "rolling out 3 over 2",
            facts: Serving {
                was_serving: Some(2),
                serving: None,
                deployed: Some(3),
                rollout: rollout(false, 1),
                desired: 2,
                ..Serving::default()
            },
            want: [
                (true, reasons::ROLLING_OUT),
                (false, reasons::REPLICAS_UNAVAILABLE),
                (false, reasons::AS_EXPECTED),
            ],
            says: [
                "version 3 to replace 2",
                "1/2 replicas ready",
                "can be served",
            ],
        },
        Row {
            what: "nothing can run: the problem is the reason",
            facts: Serving {
                problem: Some(&missing),
                desired: 1,
                ..Serving::default()
            },
            want: [
                (false, reasons::AS_EXPECTED),
                (false, reasons::REFERENCE_NOT_FOUND),
                (true, reasons::REFERENCE_NOT_FOUND),
            ],
            says: ["no rollout", "store", "store"],
        },
        Row {
            what: "the old version serves while the new one cannot",
            facts: Serving {
                was_serving: Some(2),
                serving: Some(2),
                deployed: Some(2),
                rollout: rollout(true, 1),
                desired: 1,
                problem: Some(&missing),
                ..Serving::default()
            },
            want: [
                (false, reasons::AS_EXPECTED),
                (true, reasons::AS_EXPECTED),
                (true, reasons::REFERENCE_NOT_FOUND),
            ],
            says: ["no rollout", "version 2", "store"],
        },
        Row {
            what: "an unhealthy replica degrades a ready deployment",
            facts: Serving {
                was_serving: Some(2),
                serving: Some(2),
                deployed: Some(2),
                rollout: rollout(true, 3),
                desired: 3,
                unhealthy: &unhealthy,
                ..Serving::default()
            },
            want: [
                (false, reasons::AS_EXPECTED),
                (true, reasons::AS_EXPECTED),
                (true, reasons::REPLICA_UNHEALTHY),
            ],
            says: [
                "no rollout",
                "3/3",
                "scorer-1 on node-2 (p99LatencyMs 300.00 > 100.00)",
            ],
        },
        Row {
            what: "a canary keeps it progressing",
            facts: Serving {
                was_serving: Some(2),
                serving: Some(2),
                deployed: Some(2),
                rollout: rollout(true, 2),
                desired: 2,
                canary_running: true,
                ..Serving::default()
            },
            want: [
                (true, reasons::ROLLING_OUT),
                (true, reasons::AS_EXPECTED),
                (false, reasons::AS_EXPECTED),
            ],
            says: ["starting version 2", "2/2", "can be served"],
        },
    ];
    for row in table {
        let got = serving_conditions(&row.facts);
        for (i, condition) in got.iter().enumerate() {
            assert_eq!(
                (condition.status, condition.reason),
                row.want[i],
                "{}: {}",
                row.what,
                condition.type_
            );
            assert!(
                condition.message.contains(row.says[i]),
                "{}: {} says {:?}",
                row.what,
                condition.type_,
                condition.message
            );
        }
    }
}

fn md(mode: &str) -> ModelDeployment {
    crate::fixtures::scorer(&format!("  security: {{mode: {mode}, audience: scoring}}"))
}

fn checkpoint(broken: Option<&str>, write_failures: i64) -> AuditCheckpoint {
    AuditCheckpoint {
        pod: "scorer-1".into(),
        sequence: 7,
        mac: "00".into(),
        time: Time(jiff::Timestamp::UNIX_EPOCH),
        write_failures,
        sealed_at: None,
        signature: None,
        broken: broken.map(str::to_owned),
    }
}

#[test]
fn secured_says_what_checks_callers_and_what_breaks_the_record() {
    let table = [
        ("Insecure", vec![], None, false, reasons::INSECURE),
        (
            "Enforced",
            vec![checkpoint(None, 0)],
            None,
            true,
            reasons::ENFORCED,
        ),
        (
            "Enforced",
            vec![],
            Some("the audit key was made by another operator"),
            false,
            reasons::AUDIT_KEY_FOREIGN,
        ),
        (
            "Enforced",
            vec![checkpoint(Some("records 3..7 were removed"), 2)],
            None,
            false,
            reasons::AUDIT_TRAIL_BROKEN,
        ),
        (
            "Enforced",
            vec![checkpoint(None, 2)],
            None,
            false,
            reasons::AUDIT_WRITE_FAILING,
        ),
    ];
    for (mode, checkpoints, foreign, status, reason) in table {
        let got = secured(&md(mode), &checkpoints, foreign);
        assert_eq!(
            (got.status, got.reason),
            (status, reason),
            "{mode} {foreign:?}"
        );
    }
    assert!(
        secured(&md("Enforced"), &[], None)
            .message
            .contains("audience \"scoring\"")
    );
}

fn status(conditions: &[(&str, &str, &str)], serving: Option<i64>) -> ModelDeploymentStatus {
    ModelDeploymentStatus {
        serving_version: serving,
        conditions: conditions
            .iter()
            .map(|(type_, status, reason)| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                    type_: (*type_).into(),
                    status: (*status).into(),
                    reason: (*reason).into(),
                    message: format!("{type_} is {status} for {reason}"),
                    observed_generation: None,
                    last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
                }
            })
            .collect(),
        ..ModelDeploymentStatus::default()
    }
}

#[test]
fn announcements_mark_transitions_once() {
    let table = [
        (
            "newly degraded",
            status(&[], Some(1)),
            status(&[("Degraded", "True", "ReferenceNotFound")], Some(1)),
            vec!["ReferenceNotFound"],
        ),
        (
            "still degraded for the same reason: nothing",
            status(&[("Degraded", "True", "ReferenceNotFound")], Some(1)),
            status(&[("Degraded", "True", "ReferenceNotFound")], Some(1)),
            vec![],
        ),
        (
            "degraded for another reason",
            status(&[("Degraded", "True", "ReferenceNotFound")], Some(1)),
            status(&[("Degraded", "True", "ReplicaUnhealthy")], Some(1)),
            vec!["ReplicaUnhealthy"],
        ),
        (
            "recovering is no Event",
            status(&[("Degraded", "True", "ReferenceNotFound")], Some(1)),
            status(&[("Degraded", "False", "AsExpected")], Some(1)),
            vec![],
        ),
        (
            "insecure, then a rollout",
            status(&[], None),
            status(&[("Secured", "False", "Insecure")], Some(2)),
            vec!["InsecureServing", "RolledOut"],
        ),
        (
            "a foreign key",
            status(&[("Secured", "True", "Enforced")], Some(2)),
            status(&[("Secured", "False", "AuditKeyForeign")], Some(2)),
            vec!["AuditKeyForeign"],
        ),
    ];
    for (what, old, new, want) in table {
        let reasons: Vec<String> = announcements(&old, &new, 2)
            .into_iter()
            .map(|n| n.reason)
            .collect();
        assert_eq!(reasons, want, "{what}");
    }
}

#[test]
fn the_drift_condition_names_the_level_reached() {
    let mut watched = md("Enforced");
    let drift = |detected: bool, level: DriftLevel| DriftStatus {
        version: Some(4),
        level,
        detected,
        detected_since: detected.then(|| Time("2026-12-06T08:00:00Z".parse().unwrap())),
        message:
            "PSI 0.4100 (p) over 2000 rows in the last 60 s; top features by CSI: amount 1.2000"
                .into(),
        ..DriftStatus::default()
    };
    assert_eq!(drift_condition(&watched, None), None, "not evaluated yet");
    let detected = drift_condition(&watched, Some(&drift(true, DriftLevel::Action))).unwrap();
    assert_eq!(
        (detected.type_, detected.status, detected.reason),
        ("Drift", true, reasons::DRIFT_DETECTED)
    );
    assert!(
        detected.message.starts_with(
            "version 4 drifts from its training baseline since 2026-12-06T08:00:00Z: PSI 0.4100"
        ),
        "{}",
        detected.message
    );
    assert!(detected.message.contains("top features by CSI: amount"));
    for (level, reason) in [
        (DriftLevel::Stable, reasons::NO_DRIFT),
        (DriftLevel::Warning, reasons::NO_DRIFT),
        (DriftLevel::InsufficientData, reasons::INSUFFICIENT_DATA),
        (DriftLevel::NoBaseline, reasons::NO_BASELINE),
    ] {
        let wanted = drift_condition(&watched, Some(&drift(false, level))).unwrap();
        assert_eq!((wanted.status, wanted.reason), (false, reason), "{level:?}");
    }
    watched.spec.drift.enabled = false;
    assert_eq!(
        drift_condition(&watched, Some(&drift(true, DriftLevel::Action))),
        None
    );
}
