use aimass_crds::v1alpha1::{ScoredVersion, ScoringJobStatus, SeparationMetrics, VersionReport};

use super::*;

fn model(schedule: Option<&str>) -> Model {
    let mut model: Model = serde_yaml_ng::from_str(&format!(
        r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: fraud, namespace: risk, uid: u-1, creationTimestamp: "2026-12-01T00:00:00Z"}}
spec:
  source: {{uri: "s3://b/m.onnx"}}
  promotion:
    gates: [{{metric: auc, minimum: 0.8}}, {{metric: ks, minimum: 0.3}}]
  evaluation:
    {schedule}
    template:
      dataset: {{uri: "s3://d/labelled.csv"}}
      labelColumn: is_fraud
      output: {{uri: "s3://o/evaluations/"}}
"#,
        schedule = schedule
            .map(|s| format!("schedule: \"{s}\""))
            .unwrap_or_default()
    ))
    .unwrap();
    model.metadata.uid = Some("u-1".into());
    model
}

fn finished(name: &str, version: i64, auc: f64, ks: f64, at: &str) -> ScoringJob {
    let mut sj = build(&model(None), name, "evaluation", vec![]);
    sj.status = Some(ScoringJobStatus {
        phase: ScoringPhase::Succeeded,
        completion_time: Some(Time(at.parse().unwrap())),
        versions: vec![ScoredVersion {
            version,
            ..ScoredVersion::default()
        }],
        report: Some(ScoringReport {
            versions: vec![VersionReport {
                version,
                metrics: Some(SeparationMetrics {
                    rows: 1000,
                    bad: 50,
                    auc: Some(auc),
                    ks: Some(ks),
                    gini: Some(2.0 * auc - 1.0),
                    ..SeparationMetrics::default()
                }),
                ..VersionReport::default()
            }],
            ..ScoringReport::default()
        }),
        ..ScoringJobStatus::default()
    });
    sj
}

fn at(text: &str) -> Time {
    Time(text.parse().unwrap())
}

#[test]
fn a_scheduled_run_is_owned_by_the_model_and_writes_in_its_own_folder() {
    let sj = build(&model(None), "eval-1", "evaluation", champion(&model(None)));
    assert_eq!(sj.name_any(), "fraud-eval-1");
    assert_eq!(sj.spec.run.output.uri, "s3://o/evaluations/fraud-eval-1");
    assert_eq!(sj.spec.versions[0].alias.as_deref(), Some("champion"));
    assert_eq!(sj.labels()[PURPOSE], "evaluation");
    let owner = &sj.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Model", Some(true))
    );
}

#[test]
fn ticks_start_runs_one_at_a_time_and_finished_runs_are_recorded_once() {
    let daily = model(Some("0 2 * * *"));
    let status = ModelStatus::default();
    // The first tick after creation is due.
    let plan = plan(&daily, &[], &status, &at("2026-12-02T03:00:00Z")).unwrap();
    assert_eq!(plan.start, Some("2026-12-02T02:00:00Z".parse().unwrap()));
    assert_eq!(plan.next_evaluation_time, Some(at("2026-12-03T02:00:00Z")));
    // A run still going skips the tick.
    let mut going = build(&daily, "eval-x", "evaluation", vec![]);
    going.status = Some(ScoringJobStatus::default());
    let plan = plan_of(&daily, &[going], &status, "2026-12-02T03:00:00Z");
    assert_eq!(plan.start, None);
    assert!(plan.skipped.is_some());

    // Finished runs become records, oldest first, once.
    let runs = [
        finished("b", 3, 0.75, 0.35, "2026-12-03T02:10:00Z"),
        finished("a", 3, 0.86, 0.41, "2026-12-02T02:10:00Z"),
    ];
    let plan = plan_of(&model(None), &runs, &status, "2026-12-03T03:00:00Z");
    let names: Vec<&str> = plan
        .records
        .iter()
        .map(|r| r.scoring_job.as_str())
        .collect();
    assert_eq!(names, ["fraud-a", "fraud-b"]);
    assert!(plan.records[0].below_gates.is_empty());
    assert_eq!(plan.records[1].below_gates, ["auc 0.7500 < 0.8"]);
    assert_eq!(plan.records[1].metrics["badRate"], 0.05);
    let recorded = ModelStatus {
        evaluations: plan.records,
        ..ModelStatus::default()
    };
    assert!(
        plan_of(&model(None), &runs, &recorded, "2026-12-03T03:00:00Z")
            .records
            .is_empty()
    );

    // The condition follows the latest record.
    let below = condition(recorded.evaluations.last());
    assert_eq!((below.status, below.reason), (false, reasons::BELOW_GATE));
    assert!(
        below.message.contains("auc 0.7500 < 0.8"),
        "{}",
        below.message
    );
    let within = condition(recorded.evaluations.first());
    assert_eq!(
        (within.status, within.reason),
        (true, reasons::WITHIN_GATES)
    );
    assert_eq!(condition(None).reason, reasons::NOT_EVALUATED);
}

fn plan_of(model: &Model, runs: &[ScoringJob], status: &ModelStatus, now: &str) -> Plan {
    plan(model, runs, status, &at(now)).unwrap()
}
