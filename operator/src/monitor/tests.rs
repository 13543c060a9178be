//! The monitor's field set, and the controller leaving it alone.

use super::*;
use aimass_crds::v1alpha1::{MigrationOutcome, ModelDeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn decision(to: i32) -> ScaleDecision {
    ScaleDecision {
        time: Time(jiff::Timestamp::UNIX_EPOCH),
        from: 1,
        to,
        panic: false,
        stable_value: 0.0,
        panic_value: 0.0,
        reason: "load".into(),
    }
}

fn findings(to: i32) -> Findings {
    let when = Time(jiff::Timestamp::UNIX_EPOCH);
    Findings {
        last_scale_decision: Some(decision(to)),
        unhealthy_replicas: vec![UnhealthyReplica {
            pod: "scorer-1".into(),
            node: None,
            since: when.clone(),
            metric: "p99LatencyMs".into(),
            value: 300.0,
            threshold: 100.0,
        }],
        migrations: vec![MigrationRecord {
            time: when,
            pod: "scorer-1".into(),
            node: None,
            replacement_pod: None,
            replacement_node: None,
            metric: "p99LatencyMs".into(),
            value: 300.0,
            threshold: 100.0,
            outcome: MigrationOutcome::InProgress,
            completion_time: None,
            message: None,
        }],
        migration_paused: true,
        drift: Some(aimass_crds::v1alpha1::DriftStatus {
            version: Some(3),
            psi: Some(0.3),
            detected: true,
            ..Default::default()
        }),
        traffic: Some(aimass_crds::v1alpha1::TrafficStatus {
            history: Vec::new(),
            callers: vec![aimass_crds::v1alpha1::CallerTraffic {
                principal: "partner:a".into(),
                requests: 12,
            }],
        }),
        shadow: Some(aimass_crds::v1alpha1::ShadowStatus {
            version: 4,
            requests: 10,
            rows: 160,
            label_agreement: Some(0.9),
            ..Default::default()
        }),
    }
}

/// A status as the controller holds it: read at the start of its
/// reconcile, with the monitor's findings of that moment.
fn status_with(findings: &Findings) -> ModelDeploymentStatus {
    ModelDeploymentStatus {
        replicas: 1,
        ready_replicas: 1,
        serving_version: Some(3),
        last_scale_decision: findings.last_scale_decision.clone(),
        unhealthy_replicas: findings.unhealthy_replicas.clone(),
        migrations: findings.migrations.clone(),
        migration_paused: findings.migration_paused,
        drift: findings.drift.clone(),
        traffic: findings.traffic.clone(),
        shadow: findings.shadow.clone(),
        ..ModelDeploymentStatus::default()
    }
}

#[test]
fn the_findings_are_exactly_the_fields_the_controller_leaves() {
    let value = serde_json::to_value(findings(4)).expect("serializable");
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut fields = FIELDS.to_vec();
    fields.sort_unstable();
    assert_eq!(keys, fields);
    // And they round-trip through the status type, under the same names.
    let status: ModelDeploymentStatus =
        serde_json::from_value(value).expect("the status type reads them");
    assert_eq!(Findings::of(Some(&status)), findings(4));
}

/// The race the field split closes: the controller reads status (the
/// autoscaler had decided 1), the monitor writes a new decision (4), and
/// the controller then writes the status it computed. Applied to what the
/// API server holds, its write must leave the decision at 4; before, the
/// controller sent its whole status and put 1 back.
#[test]
fn the_controllers_status_write_never_overwrites_the_monitors_decision() {
    let read_by_controller = status_with(&findings(1));
    let mut computed = read_by_controller.clone();
    computed.ready_replicas = 2;
    let body = crate::model_deployment::STATUS.body::<ModelDeployment, _>("scorer", &computed);
    let sent = body["status"].as_object().expect("a status object");
    for field in FIELDS {
        assert!(
            !sent.contains_key(*field),
            "the controller sent {field}: {body}"
        );
    }
    assert_eq!(sent["readyReplicas"], 2);

    // What the server holds once the monitor wrote, then the controller.
    let mut server = serde_json::to_value(status_with(&findings(4))).expect("serializable");
    for (key, value) in sent {
        server[key] = value.clone();
    }
    let server: ModelDeploymentStatus = serde_json::from_value(server).expect("a status");
    assert_eq!(server.last_scale_decision, Some(decision(4)));
    assert_eq!(server.ready_replicas, 2);
    assert_eq!(Findings::of(Some(&server)), findings(4));
}

#[test]
fn the_monitors_body_names_the_object_and_only_its_fields() {
    let body = WRITER.body::<ModelDeployment, _>("scorer", &findings(2));
    assert_eq!(body["apiVersion"], "aimass.io/v1alpha1");
    assert_eq!(body["kind"], "ModelDeployment");
    assert_eq!(body["metadata"]["name"], "scorer");
    assert_eq!(body["status"]["lastScaleDecision"]["to"], 2);
    assert_eq!(
        body["status"].as_object().map(|o| o.len()),
        Some(FIELDS.len())
    );
}
