use std::collections::BTreeMap;

use aimass_crds::v1alpha1::{ModelVersion, ScoringJobStatus};
use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

use super::*;

fn version(number: i64, phase: VersionPhase, sha256: Option<&str>) -> ModelVersion {
    serde_json::from_value(serde_json::json!({
        "version": number,
        "phase": phase,
        "uri": format!("s3://registry/fraud/{number}/model.onnx"),
        "sha256": sha256,
        "created": "2026-12-01T00:00:00Z",
    }))
    .unwrap()
}

fn model_status() -> ModelStatus {
    ModelStatus {
        versions: vec![
            version(1, VersionPhase::Ready, Some("aa")),
            version(2, VersionPhase::Ready, Some("bb")),
            version(3, VersionPhase::Rejected, None),
        ],
        aliases: BTreeMap::from([("champion".into(), 2), ("old".into(), 9)]),
        ..ModelStatus::default()
    }
}

fn alias(name: &str) -> VersionSelector {
    VersionSelector {
        alias: Some(name.into()),
        version: None,
    }
}

fn number(n: i64) -> VersionSelector {
    VersionSelector {
        alias: None,
        version: Some(n),
    }
}

#[test]
fn versions_resolve_by_alias_or_number_and_must_be_ready() {
    let status = model_status();
    let resolved = resolve("fraud", &[alias("champion"), number(1)], &status).unwrap();
    let got: Vec<(i64, Option<&str>, &str)> = resolved
        .iter()
        .map(|v| (v.version, v.alias.as_deref(), v.sha256.as_str()))
        .collect();
    assert_eq!(got, [(2, Some("champion"), "bb"), (1, None, "aa")]);
    assert_eq!(resolved[0].uri, "s3://registry/fraud/2/model.onnx");
    let cases = [
        (
            vec![alias("challenger")],
            "Model fraud has no alias \"challenger\"",
        ),
        (vec![number(7)], "Model fraud has no version 7 (version 7)"),
        (vec![alias("old")], "has no version 9 (alias \"old\")"),
        (
            vec![number(3)],
            "version 3 of Model fraud (version 3) is not Ready",
        ),
    ];
    for (selectors, expect) in cases {
        let e = resolve("fraud", &selectors, &status).unwrap_err();
        assert!(e.contains(expect), "{e}");
    }
}

fn job(conditions: &[(&str, &str)], succeeded: i32) -> Job {
    Job {
        status: Some(JobStatus {
            succeeded: Some(succeeded),
            conditions: Some(
                conditions
                    .iter()
                    .map(|(t, r)| JobCondition {
                        type_: (*t).into(),
                        status: "True".into(),
                        reason: Some((*r).into()),
                        message: Some(format!("{r} message")),
                        ..JobCondition::default()
                    })
                    .collect(),
            ),
            ..JobStatus::default()
        }),
        ..Job::default()
    }
}

#[test]
fn job_states_come_from_conditions() {
    assert_eq!(job_state(None), JobState::Missing);
    assert_eq!(
        job_state(Some(&job(&[], 2))),
        JobState::Running { succeeded: 2 }
    );
    assert_eq!(
        job_state(Some(&job(&[("Complete", "CompletionsReached")], 3))),
        JobState::Complete
    );
    assert_eq!(
        job_state(Some(&job(&[("Failed", "PodFailurePolicy")], 0))),
        JobState::Failed {
            reason: "PodFailurePolicy".into(),
            message: "PodFailurePolicy message".into()
        }
    );
}

#[test]
fn steps_follow_the_run() {
    let resolved = ScoringJobStatus {
        versions: resolve("fraud", &[alias("champion")], &model_status()).unwrap(),
        ..ScoringJobStatus::default()
    };
    let started = ScoringJobStatus {
        phase: ScoringPhase::Running,
        job_name: Some("bt-shards".into()),
        ..resolved.clone()
    };
    let reporting = ScoringJobStatus {
        phase: ScoringPhase::Reporting,
        ..started.clone()
    };
    let failed = JobState::Failed {
        reason: "BackoffLimitExceeded".into(),
        message: "m".into(),
    };
    let running = JobState::Running { succeeded: 1 };
    let cases: [(&str, &ScoringJobStatus, JobState, JobState, Step); 9] = [
        (
            "nothing resolved",
            &ScoringJobStatus::default(),
            JobState::Missing,
            JobState::Missing,
            Step::Resolve,
        ),
        (
            "resolved",
            &resolved,
            JobState::Missing,
            JobState::Missing,
            Step::StartShards,
        ),
        (
            "shards run",
            &started,
            running.clone(),
            JobState::Missing,
            Step::Scoring { succeeded: 1 },
        ),
        (
            "shards done",
            &started,
            JobState::Complete,
            JobState::Missing,
            Step::StartReport,
        ),
        (
            "shards failed",
            &started,
            failed.clone(),
            JobState::Missing,
            Step::ReadFailure {
                shards: true,
                reason: "BackoffLimitExceeded".into(),
                message: "m".into(),
            },
        ),
        (
            "shards' Job deleted",
            &started,
            JobState::Missing,
            JobState::Missing,
            Step::Fail {
                reason: reasons::JOB_DELETED,
                message: "the Job bt-shards was deleted before the shards finished".into(),
            },
        ),
        (
            "report to start",
            &reporting,
            JobState::Missing,
            JobState::Missing,
            Step::StartReport,
        ),
        (
            "report runs",
            &reporting,
            JobState::Missing,
            running,
            Step::Reporting,
        ),
        (
            "report done",
            &reporting,
            JobState::Complete,
            JobState::Complete,
            Step::ReadReport,
        ),
    ];
    for (name, status, shards, report, expect) in cases {
        assert_eq!(step(status, &shards, &report), expect, "{name}");
    }
    assert_eq!(
        step(&reporting, &JobState::Complete, &failed),
        Step::ReadFailure {
            shards: false,
            reason: "BackoffLimitExceeded".into(),
            message: "m".into()
        }
    );
}
