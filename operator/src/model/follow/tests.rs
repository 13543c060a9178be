use super::*;
use aimass_crds::v1alpha1::ModelSignature;

const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn at(second: i64) -> Time {
    Time(jiff::Timestamp::from_second(second).unwrap())
}

/// risk-test/fraud trained version 2 (asked for by alice).
fn trained() -> serde_json::Value {
    serde_json::json!({
        "version": 2, "phase": "Ready", "uri": "s3://test/fraud/2/model.onnx", "sha256": SHA,
        "created": "2026-12-01T00:00:00Z", "metrics": {"auc": 0.91},
        "lineage": {"trainingJob": "fraud-1", "datasetUri": "s3://data/tx.csv"},
        "provenance": {"steps": [{"namespace": "risk-test", "model": "fraud", "version": 2,
            "requestedBy": "alice", "trainingJob": "fraud-1", "time": "2026-12-01T00:00:00Z"}]}
    })
}

/// A source Model in `namespace` whose champion is `record`, proven there
/// when `proven`.
fn source(namespace: &str, record: serde_json::Value, proven: bool) -> Model {
    let version = record["version"].clone();
    let evidence = if proven {
        serde_json::json!([{"version": version, "sha256": SHA, "namespace": namespace,
            "deployment": "scoring", "since": "2026-12-02T00:00:00Z",
            "provenAt": "2026-12-02T01:00:00Z", "requests": 5000, "errorRate": 0.0,
            "p99LatencyMillis": 4.0}])
    } else {
        serde_json::json!([])
    };
    serde_json::from_value(serde_json::json!({
        "apiVersion": "aimass.io/v1alpha1", "kind": "Model",
        "metadata": {"name": "fraud", "namespace": namespace},
        "spec": {"source": {"uri": "s3://x/model.onnx"}},
        "status": {"versions": [record], "aliases": {"champion": version}, "evidence": evidence}
    }))
    .unwrap()
}

/// preview's record of test's version 2, as preview's version 1.
fn in_preview() -> serde_json::Value {
    let mut record = trained();
    record["version"] = 1.into();
    record["provenance"]["steps"].as_array_mut().unwrap().push(
        serde_json::json!({"namespace": "risk-preview", "model": "fraud", "version": 1,
            "requestedBy": "carol", "time": "2026-12-01T01:00:00Z"}),
    );
    record
}

/// risk-prod/fraud following `from_namespace`, asked for by `requester`,
/// requiring evidence from preview and `approvals` approvals.
fn target(from_namespace: &str, requester: Option<&str>, approvals: i32) -> Model {
    let annotations = match requester {
        Some(r) => serde_json::json!({REQUESTED_BY_ANNOTATION: r}),
        None => serde_json::json!({}),
    };
    serde_json::from_value(serde_json::json!({
        "apiVersion": "aimass.io/v1alpha1", "kind": "Model",
        "metadata": {"name": "fraud", "namespace": "risk-prod", "annotations": annotations},
        "spec": {
            "source": {"promotedFrom": {"namespace": from_namespace, "model": "fraud", "alias": "champion"}},
            "promotion": {"requires": {"evidenceFrom": ["risk-preview"], "approvals": approvals}}
        }
    }))
    .unwrap()
}

fn approval(name: &str, by: &str, sha256: &str) -> ModelApproval {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "aimass.io/v1alpha1", "kind": "ModelApproval",
        "metadata": {"name": name, "namespace": "risk-prod", "creationTimestamp": "2026-12-03T00:00:00Z"},
        "spec": {"model": "fraud", "sha256": sha256, "approvedBy": by}
    }))
    .unwrap()
}

/// A case: name, target, source, approvals, expected reason and words.
type Case<'a> = (
    &'a str,
    Model,
    Option<&'a Model>,
    Vec<ModelApproval>,
    &'a str,
    &'a str,
);

fn run(
    target: &Model,
    source: Option<&Model>,
    approvals: &[ModelApproval],
) -> (Plan, Vec<Verdict>) {
    let from = target.spec.source.promoted_from.clone().unwrap();
    plan(target, &from, source, approvals, &at(2_000_000_000))
}

fn waits(plan: &Plan) -> (&'static str, &str) {
    match plan {
        Plan::Wait { reason, message } => (reason, message.as_str()),
        other => panic!("expected a wait, got {other:?}"),
    }
}

#[test]
fn following_waits_with_a_reason_until_evidence_and_approvals_are_there() {
    let preview = source("risk-preview", in_preview(), true);
    let unproven_preview = source("risk-preview", in_preview(), false);
    let test = source("risk-test", trained(), true);
    let bob = approval("bob-ok", "bob", SHA);
    let table: Vec<Case> = vec![
        (
            "no source",
            target("risk-preview", Some("carol"), 1),
            None,
            vec![],
            reasons::SOURCE_NOT_FOUND,
            "risk-preview/fraud does not exist",
        ),
        (
            "own namespace",
            target("risk-prod", Some("carol"), 1),
            Some(&preview),
            vec![],
            reasons::SOURCE_NOT_FOUND,
            "own namespace",
        ),
        (
            "straight from test",
            target("risk-test", Some("carol"), 1),
            Some(&test),
            vec![bob.clone()],
            reasons::EVIDENCE_MISSING,
            "risk-test/fraud:2 has no evidence from risk-preview (proven in: risk-test)",
        ),
        (
            "preview not proven",
            target("risk-preview", Some("carol"), 1),
            Some(&unproven_preview),
            vec![bob.clone()],
            reasons::EVIDENCE_MISSING,
            "proven in: none",
        ),
        (
            "no approval yet",
            target("risk-preview", Some("dave"), 1),
            Some(&preview),
            vec![],
            reasons::AWAITING_APPROVAL,
            "by someone other than alice, carol, dave",
        ),
        (
            "approval of another artifact",
            target("risk-preview", Some("dave"), 1),
            Some(&preview),
            vec![approval("stale", "bob", OTHER)],
            reasons::AWAITING_APPROVAL,
            "sha256 aaaa",
        ),
        (
            "approved by the trainer",
            target("risk-preview", Some("dave"), 1),
            Some(&preview),
            vec![approval("self", "alice", SHA)],
            reasons::SAME_IDENTITY,
            "self by alice does not count: alice asked for its training",
        ),
        (
            "approved by the promoter",
            target("risk-preview", Some("dave"), 1),
            Some(&preview),
            vec![approval("self", "dave", SHA)],
            reasons::SAME_IDENTITY,
            "dave asked for this promotion",
        ),
        (
            "approved by whoever promoted it below",
            target("risk-preview", Some("dave"), 1),
            Some(&preview),
            vec![approval("self", "carol", SHA)],
            reasons::SAME_IDENTITY,
            "carol asked for its promotion into risk-preview",
        ),
        (
            "one of two approvals",
            target("risk-preview", Some("dave"), 2),
            Some(&preview),
            vec![bob.clone(), approval("bob-again", "bob", SHA)],
            reasons::AWAITING_APPROVAL,
            "1 more approval(s)",
        ),
        (
            "requester unknown",
            target("risk-preview", None, 1),
            Some(&preview),
            vec![bob.clone()],
            reasons::REQUESTER_UNKNOWN,
            "set aimass.io/requested-by",
        ),
    ];
    for (case, target, source, approvals, reason, message) in table {
        let (plan, _) = run(&target, source, &approvals);
        let (got, text) = waits(&plan);
        assert_eq!(got, reason, "{case}: {text}");
        assert!(text.contains(message), "{case}: {text:?} lacks {message:?}");
    }
    // Approvals that do not count say so in their own status.
    let (_, verdicts) = run(
        &target("risk-preview", Some("dave"), 1),
        Some(&preview),
        &[approval("self", "alice", SHA)],
    );
    assert_eq!(verdicts.len(), 1);
    assert!(!verdicts[0].counted && verdicts[0].reason == reasons::SAME_IDENTITY);
}

#[test]
fn a_proven_and_approved_version_is_recorded_with_its_whole_provenance() {
    let preview = source("risk-preview", in_preview(), true);
    let target = target("risk-preview", Some("dave"), 1);
    let approvals = [
        approval("self", "alice", SHA),
        approval("bob-ok", "bob", SHA),
    ];
    let (plan, verdicts) = run(&target, Some(&preview), &approvals);
    let Plan::Record(promotion) = plan else {
        panic!("expected a record, got {plan:?}");
    };
    assert_eq!(promotion.source, "risk-preview/fraud:1");
    assert_eq!(promotion.sha256, SHA);
    let steps = &promotion.provenance.steps;
    let places: Vec<_> = steps.iter().map(|s| s.namespace.as_str()).collect();
    assert_eq!(places, ["risk-test", "risk-preview", "risk-prod"]);
    assert_eq!(steps[0].requested_by.as_deref(), Some("alice"));
    assert_eq!(steps[0].training_job.as_deref(), Some("fraud-1"));
    assert_eq!(
        steps[1].evidence.as_ref().map(|e| e.requests),
        Some(5000),
        "preview's evidence travels"
    );
    assert_eq!(steps[2].requested_by.as_deref(), Some("dave"));
    let approvers: Vec<_> = steps[2]
        .approvals
        .iter()
        .map(|a| a.approved_by.as_str())
        .collect();
    assert_eq!(approvers, ["bob"]);
    let counted: Vec<_> = verdicts
        .iter()
        .map(|v| (v.name.as_str(), v.counted))
        .collect();
    assert_eq!(counted, [("self", false), ("bob-ok", true)]);

    // The artifact as approved becomes version 7 here, with the source's
    // metrics and lineage.
    let signature = ModelSignature::default();
    let artifact = |sha256: &str| Artifact {
        sha256: sha256.to_owned(),
        size_bytes: 10,
        signature: signature.clone(),
        baseline: None,
    };
    let record = promoted(&promotion, 7, Ok(artifact(SHA)));
    assert_eq!(record.phase, VersionPhase::Ready);
    assert_eq!((record.version, record.sha256.as_deref()), (7, Some(SHA)));
    assert_eq!(record.uri, "s3://test/fraud/2/model.onnx");
    assert_eq!(record.metrics["auc"], 0.91);
    let last = record
        .provenance
        .as_ref()
        .and_then(|p| p.steps.last())
        .unwrap();
    assert_eq!((last.namespace.as_str(), last.version), ("risk-prod", 7));

    // An artifact changed since it was proven and approved is refused.
    let changed = promoted(&promotion, 7, Ok(artifact(OTHER)));
    assert_eq!(changed.phase, VersionPhase::Rejected);
    assert_eq!(changed.reason.as_deref(), Some(reasons::DIGEST_MISMATCH));
    assert!(
        changed
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("changed after approval")
    );

    // Where the champion came from, for `kubectl get mdl -o wide`.
    let mut promoted_here = target.clone();
    let status = ModelStatus {
        versions: vec![record.clone()],
        aliases: [("champion".to_owned(), 7)].into_iter().collect(),
        ..ModelStatus::default()
    };
    promoted_here.status = Some(status.clone());
    assert_eq!(
        champion_from(&promoted_here, &status).as_deref(),
        Some("risk-preview/fraud:1")
    );

    // Once recorded (or refused), following is done.
    for record in [record, changed] {
        let mut recorded = target.clone();
        recorded.status = Some(ModelStatus {
            versions: vec![record],
            ..ModelStatus::default()
        });
        assert_eq!(run(&recorded, Some(&preview), &approvals).0, Plan::Done(7));
    }
}

#[test]
fn a_version_from_a_model_without_provenance_starts_its_history_there() {
    let mut record = trained();
    record.as_object_mut().unwrap().remove("provenance");
    let test = source("risk-test", record, true);
    let mut target = target("risk-test", Some("dave"), 0);
    target.spec.promotion.requires = None;
    let (plan, _) = run(&target, Some(&test), &[]);
    let Plan::Record(promotion) = plan else {
        panic!("expected a record, got {plan:?}");
    };
    let steps = &promotion.provenance.steps;
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (steps[0].namespace.as_str(), steps[0].version),
        ("risk-test", 2)
    );
    assert_eq!(steps[0].training_job.as_deref(), Some("fraud-1"));
    assert!(
        steps[0].evidence.is_some(),
        "test's own evidence is carried"
    );
}
