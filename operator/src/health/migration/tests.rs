//! Tests of `migration`.

use super::super::evaluate::{Breach, Track};
use super::*;

fn spec(dry_run: bool) -> MigrationSpec {
    serde_json::from_value(
        serde_json::json!({"enabled": true, "dryRun": dry_run, "cooldownSeconds": 300}),
    )
    .unwrap()
}

fn record(at: i64, pod: &str, outcome: MigrationOutcome) -> MigrationRecord {
    MigrationRecord {
        time: Time(jiff::Timestamp::from_second(at).unwrap()),
        pod: pod.into(),
        node: None,
        replacement_pod: None,
        replacement_node: None,
        metric: "p99LatencyMillis".into(),
        value: 500.0,
        threshold: 150.0,
        outcome,
        completion_time: None,
        message: None,
    }
}

/// Name, dry run, records, fleet-wide, paused, now, expected outcome.
type Case<'a> = (
    &'a str,
    bool,
    &'a [MigrationRecord],
    bool,
    bool,
    i64,
    Option<MigrationOutcome>,
);

#[test]
fn start_table() {
    let done = [record(1000, "a", MigrationOutcome::Completed)];
    let paused_once = [record(1000, "b", MigrationOutcome::Paused)];
    // (name, dry run, records, fleet-wide, paused, now, expected)
    let cases: Vec<Case> = vec![
        (
            "a sick replica is migrated",
            false,
            &[],
            false,
            false,
            2000,
            Some(MigrationOutcome::InProgress),
        ),
        (
            "a dry run only records",
            true,
            &[],
            false,
            false,
            2000,
            Some(MigrationOutcome::DryRun),
        ),
        (
            "the whole fleet sick is load",
            false,
            &[],
            true,
            false,
            2000,
            None,
        ),
        (
            "none within the cooldown",
            false,
            &done,
            false,
            false,
            1200,
            None,
        ),
        (
            "again after the cooldown",
            false,
            &done,
            false,
            false,
            1400,
            Some(MigrationOutcome::InProgress),
        ),
        (
            "a pause is recorded",
            false,
            &[],
            false,
            true,
            2000,
            Some(MigrationOutcome::Paused),
        ),
        (
            "once per cooldown for the same pod",
            false,
            &paused_once,
            false,
            true,
            1100,
            None,
        ),
        (
            "a paused record does not start the cooldown",
            false,
            &paused_once,
            false,
            false,
            1100,
            Some(MigrationOutcome::InProgress),
        ),
    ];
    for (name, dry_run, records, fleet_wide, paused, now, expected) in cases {
        assert_eq!(
            start(&spec(dry_run), records, "b", fleet_wide, paused, now),
            expected,
            "{name}"
        );
    }
}

fn migrating(dry_run: bool) -> ModelDeployment {
    crate::fixtures::scorer(&format!(
        "  migration: {{enabled: true, dryRun: {dry_run}, cooldownSeconds: 300}}"
    ))
}

fn sick() -> Track {
    let mut track = Track::default();
    track.unhealthy = true;
    track.breach = Some(Breach {
        metric: "p99LatencyMillis",
        value: 480.0,
        threshold: 150.0,
    });
    track
}

/// Four replicas on four nodes, `sick` of them unhealthy.
fn fleet(sick_pods: &[&str]) -> (Tracks, HashMap<String, Option<String>>) {
    let pods = ["a", "b", "c", "d"];
    let tracks = pods
        .iter()
        .map(|p| {
            let track = if sick_pods.contains(p) {
                sick()
            } else {
                Track::default()
            };
            ((*p).to_owned(), track)
        })
        .collect();
    let nodes = pods
        .iter()
        .map(|p| ((*p).to_owned(), Some(format!("node-{p}"))))
        .collect();
    (tracks, nodes)
}

#[test]
fn begin_table() {
    let now = jiff::Timestamp::from_second(5000).unwrap();
    // (case, dry run, sick pods, paused, expected (pod, outcome, finished))
    #[allow(clippy::type_complexity)]
    let cases: [(
        &str,
        bool,
        &[&str],
        bool,
        Option<(&str, MigrationOutcome, bool)>,
    ); 5] = [
        (
            "one sick replica starts a migration",
            false,
            &["b"],
            false,
            Some(("b", MigrationOutcome::InProgress, false)),
        ),
        (
            "a dry run is recorded as finished",
            true,
            &["b"],
            false,
            Some(("b", MigrationOutcome::DryRun, true)),
        ),
        (
            "paused is recorded as finished",
            false,
            &["c"],
            true,
            Some(("c", MigrationOutcome::Paused, true)),
        ),
        ("a healthy fleet needs nothing", false, &[], false, None),
        (
            "half the fleet sick is load, not a bad node",
            false,
            &["a", "b"],
            false,
            None,
        ),
    ];
    for (case, dry_run, sick_pods, paused, expected) in cases {
        let (tracks, nodes) = fleet(sick_pods);
        let begun = begin(&migrating(dry_run), &[], &tracks, &nodes, paused, now);
        let got = begun
            .as_ref()
            .map(|(r, _)| (r.pod.as_str(), r.outcome, r.completion_time.is_some()));
        assert_eq!(got, expected, "{case}");
        if let Some((record, note)) = begun {
            assert_eq!(record.node, Some(format!("node-{}", record.pod)), "{case}");
            assert_eq!(record.metric, "p99LatencyMillis", "{case}");
            assert!(
                note.starts_with(&format!(
                    "pod {} on node-{}: p99LatencyMillis 480.00 crossed 150.00: ",
                    record.pod, record.pod
                )),
                "{case}: {note}"
            );
        }
    }
}

#[test]
fn a_sick_replica_on_an_unknown_node_is_left_alone() {
    let (tracks, mut nodes) = fleet(&["b"]);
    nodes.remove("b");
    let now = jiff::Timestamp::from_second(5000).unwrap();
    assert!(begin(&migrating(false), &[], &tracks, &nodes, false, now).is_none());
}

fn pod(name: &str, created: i64, deleting: bool) -> Pod {
    let time = Time(jiff::Timestamp::from_second(created).unwrap());
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.creation_timestamp = Some(time.clone());
    pod.metadata.deletion_timestamp = deleting.then_some(time);
    pod
}

#[test]
fn the_replacement_is_the_newest_live_pod_made_since_the_record() {
    let started = record(1000, "old", MigrationOutcome::InProgress);
    let name = |pods: &[Pod]| replacement(pods, &started).map(|p| p.name_any());
    assert_eq!(name(&[pod("old", 10, false)]), None);
    assert_eq!(
        name(&[pod("old", 10, false), pod("same-second", 1000, false)]),
        Some("same-second".into())
    );
    assert_eq!(
        name(&[
            pod("first", 1001, false),
            pod("newest", 1005, false),
            pod("going", 1009, true)
        ]),
        Some("newest".into())
    );
}
