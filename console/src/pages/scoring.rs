//! Scoring runs: the list, one run with its report version beside version,
//! and the backtests that scored two versions on the same rows (for the
//! compare page).

use aimass_crds::v1alpha1::{ScoringJob, ScoringReport, VersionReport};
use minijinja::{Value, context};
use serde::Serialize;

use super::{Page, Place, Viewer, at, name, newest_first};
use crate::chart::{self, Series};
use crate::error::Error;

/// At most this many runs are listed, newest first.
const LISTED: usize = 500;
/// At most this many backtests are shown side by side, newest first.
const BACKTESTS: usize = 5;

#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    place: Place,
    model: String,
    versions: String,
    phase: String,
    reason: String,
    shards: String,
    summary: String,
    started: String,
}

/// `/scoringjobs`: the scoring runs (batch scoring, evaluations,
/// backtests) in the namespaces the user may read.
pub async fn scoring_jobs(viewer: Viewer<'_>) -> Result<Page, Error> {
    let namespaces = viewer.cluster.visible(viewer.session).await?;
    let all: Vec<ScoringJob> = viewer.list_permitted("scoringjobs", &namespaces).await?;
    let rows: Vec<Row> = newest_first(all, LISTED)
        .into_iter()
        .map(|sj| {
            let status = sj.status.unwrap_or_default();
            Row {
                place: Place::of(&sj.metadata, "scoringjobs"),
                model: sj.spec.model_ref.name,
                versions: status.versions_summary.unwrap_or_default(),
                phase: format!("{:?}", status.phase),
                reason: status.reason.unwrap_or_default(),
                shards: format!(
                    "{}/{}",
                    status.shards_succeeded.unwrap_or(0),
                    sj.spec.run.shards
                ),
                summary: status.report.map(|r| r.summary).unwrap_or_default(),
                started: status.start_time.as_ref().map(at).unwrap_or_default(),
            }
        })
        .collect();
    Ok(Page {
        template: "scoring_jobs.html",
        context: context! {rows},
        nav: "scoring",
        scope: namespaces,
    })
}

/// `/ns/{ns}/scoringjobs/{name}`: one run, what it read and wrote, and its
/// report: each version's figures side by side, decisions at each
/// threshold, bad rate by decile drawn, segments and refusals.
pub async fn scoring_job(viewer: Viewer<'_>, ns: &str, job: &str) -> Result<Page, Error> {
    let (ns, job) = (name(ns)?, name(job)?);
    let sj: ScoringJob = viewer.get("scoringjobs", ns, job).await?;
    Ok(Page {
        template: "scoring_job.html",
        context: context_of(&sj),
        nav: "scoring",
        scope: vec![ns.to_owned()],
    })
}

/// What a run's page shows of `sj`.
fn context_of(sj: &ScoringJob) -> Value {
    let status = sj.status.clone().unwrap_or_default();
    let (figures, deciles) = match &status.report {
        Some(report) => (
            report.versions.iter().map(Figures::of).collect(),
            deciles_chart(report),
        ),
        None => (Vec::new(), String::new()),
    };
    context! {
        ns => sj.metadata.namespace, name => sj.metadata.name,
        sj => Value::from_serialize(sj),
        status => Value::from_serialize(&status),
        figures, deciles,
    }
}

/// One version's key figures in a report.
#[derive(Debug, PartialEq, Serialize)]
struct Figures {
    version: i64,
    scored: i64,
    refused: i64,
    mean_score: Option<f64>,
    auc: Option<f64>,
    ks: Option<f64>,
    gini: Option<f64>,
}

impl Figures {
    fn of(report: &VersionReport) -> Self {
        let metric = |f: fn(&aimass_crds::v1alpha1::SeparationMetrics) -> Option<f64>| {
            report.metrics.as_ref().and_then(f)
        };
        Self {
            version: report.version,
            scored: report.scored,
            refused: report.refused,
            mean_score: report.mean_score,
            auc: metric(|m| m.auc),
            ks: metric(|m| m.ks),
            gini: metric(|m| m.gini),
        }
    }
}

/// Bad rate by score decile (1 is the riskiest), one line per version
/// measured.
fn deciles_chart(report: &ScoringReport) -> String {
    let series: Vec<Series> = report
        .versions
        .iter()
        .filter(|v| v.metrics.as_ref().is_some_and(|m| !m.deciles.is_empty()))
        .map(|v| Series {
            name: format!("v{} bad rate", v.version),
            points: v
                .metrics
                .iter()
                .flat_map(|m| &m.deciles)
                .map(|d| (f64::from(d.decile), d.bad_rate))
                .collect(),
        })
        .collect();
    chart::svg(&series, 640, 200)
}

/// A backtest of two versions: the run, and each one's figures on the
/// same rows.
#[derive(Debug, PartialEq, Serialize)]
pub struct Backtest {
    #[serde(flatten)]
    place: Place,
    finished: String,
    rows: i64,
    labelled: i64,
    a: Figures,
    b: Figures,
}

/// The finished runs of `model` that scored both `a` and `b` (newest
/// first, at most five): scheduled backtests and any ScoringJob naming
/// both. An empty list when the user may not list ScoringJobs.
pub async fn backtests(
    viewer: Viewer<'_>,
    ns: &str,
    model: &str,
    a: i64,
    b: i64,
) -> Result<Vec<Backtest>, Error> {
    let runs: Vec<ScoringJob> = viewer
        .list_permitted("scoringjobs", &[ns.to_owned()])
        .await?;
    Ok(side_by_side(runs, model, a, b))
}

/// The pure part of [`backtests`].
fn side_by_side(runs: Vec<ScoringJob>, model: &str, a: i64, b: i64) -> Vec<Backtest> {
    newest_first(runs, usize::MAX)
        .into_iter()
        .filter(|sj| sj.spec.model_ref.name == model)
        .filter_map(|sj| {
            let status = sj.status?;
            let report = status.report?;
            let find = |n: i64| report.versions.iter().find(|v| v.version == n);
            let (ra, rb) = (find(a)?, find(b)?);
            Some(Backtest {
                place: Place::of(&sj.metadata, "scoringjobs"),
                finished: status.completion_time.as_ref().map(at).unwrap_or_default(),
                rows: report.rows,
                labelled: report.labelled,
                a: Figures::of(ra),
                b: Figures::of(rb),
            })
        })
        .take(BACKTESTS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, model: &str, created: &str, report: Option<&str>) -> ScoringJob {
        let mut sj: ScoringJob = serde_yaml_ng::from_str(&format!(
            r#"
apiVersion: aimass.io/v1alpha1
kind: ScoringJob
metadata: {{name: {name}, namespace: risk, creationTimestamp: "{created}"}}
spec:
  modelRef: {{name: {model}}}
  versions: [{{version: 1}}, {{version: 2}}]
  dataset: {{uri: "file:///d.csv"}}
  output: {{uri: "file:///out/"}}
"#
        ))
        .expect("a ScoringJob");
        if let Some(report) = report {
            sj.status = Some(
                serde_yaml_ng::from_str(&format!("{{phase: Succeeded, report: {report}}}"))
                    .expect("a status"),
            );
        }
        sj
    }

    const REPORT: &str = r#"{rows: 100, labelled: 90, unlabelled: 10, bad: 9, summary: "",
        versions: [
          {version: 1, scored: 100, refused: 0, metrics: {rows: 90, bad: 9, auc: 0.81, ks: 0.5, gini: 0.62,
            deciles: [{decile: 1, rows: 10, bad: 5, badRate: 0.5, minScore: 0.9, maxScore: 1.0}]}},
          {version: 2, scored: 98, refused: 2, meanScore: 0.2, metrics: {rows: 88, bad: 9, auc: 0.86}}]}"#;

    #[test]
    fn backtests_are_the_finished_runs_of_the_model_that_scored_both() {
        let runs = vec![
            run("old", "fraud", "2026-01-01T00:00:00Z", Some(REPORT)),
            run("new", "fraud", "2026-01-02T00:00:00Z", Some(REPORT)),
            run("running", "fraud", "2026-01-03T00:00:00Z", None),
            run(
                "other-model",
                "credit",
                "2026-01-04T00:00:00Z",
                Some(REPORT),
            ),
        ];
        let found = side_by_side(runs.clone(), "fraud", 1, 2);
        let names: Vec<&str> = found.iter().map(|b| b.place.name.as_str()).collect();
        assert_eq!(names, ["new", "old"]);
        let first = &found[0];
        assert_eq!((first.rows, first.labelled), (100, 90));
        assert_eq!(first.a.auc, Some(0.81));
        assert_eq!(first.b.auc, Some(0.86));
        assert_eq!((first.b.scored, first.b.refused), (98, 2));
        assert_eq!(first.b.ks, None);
        assert_eq!(first.place.href, "/ns/risk/scoringjobs/new");
        // A version the run did not score: no backtest to show.
        assert!(side_by_side(runs, "fraud", 1, 3).is_empty());
    }

    #[test]
    fn a_run_renders_its_report_and_hostile_text_as_text() -> Result<(), Error> {
        let mut sj = run("nightly", "fraud", "2026-01-01T00:00:00Z", Some(REPORT));
        let status = sj.status.as_mut().expect("a status");
        let report = status.report.as_mut().expect("a report");
        report.versions[1].segments = vec![serde_yaml_ng::from_str(
            r#"{segment: "<script>alert(1)</script>", scored: 7, metrics: {rows: 7, bad: 1, auc: 0.75}}"#,
        )
        .expect("a segment")];
        report.versions[1].refusals = vec![
            serde_yaml_ng::from_str(r#"{line: 12, reason: "amount: not a number"}"#)
                .expect("a refusal"),
        ];
        let views = crate::views::Views::new()?;
        let page = views.render("scoring_job.html", context_of(&sj), false)?;
        for shown in [
            "<th>v1</th><td>100</td><td>0</td><td></td><td>0.8100</td><td>0.5000</td><td>0.6200</td>",
            "<th>v2</th><td>98</td><td>2</td><td>0.2000</td><td>0.8600</td>",
            "v1 bad rate",
            "&lt;script&gt;alert(1)&lt;&#x2f;script&gt;",
            "<th>12</th><td>amount: not a number</td>",
            "100 rows, 90 labelled (9 bad)",
        ] {
            assert!(page.contains(shown), "{shown} not in {page}");
        }
        assert!(!page.contains("<script>alert"));
        // Before its report: said in words.
        let pending = run("pending", "fraud", "2026-01-01T00:00:00Z", None);
        let page = views.render("scoring_job.html", context_of(&pending), false)?;
        assert!(page.contains("No report yet"), "{page}");
        assert!(page.contains("(not resolved yet)"), "{page}");
        // A failed run: Failed is bad when True, Running neither good nor bad.
        let mut failed = pending;
        failed.status = Some(
            serde_yaml_ng::from_str(
                r#"{phase: Failed, reason: DatasetUnavailable, conditions: [
                {type: Running, status: "False", reason: DatasetUnavailable, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"},
                {type: Failed, status: "True", reason: DatasetUnavailable, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"}]}"#,
            )
            .expect("a status"),
        );
        let page = views.render("scoring_job.html", context_of(&failed), false)?;
        for chip in [
            r#"class="cond neutral" data-status="False" title=""><b>Running</b>"#,
            r#"class="cond bad" data-status="True" title=""><b>Failed</b>"#,
        ] {
            assert!(page.contains(chip), "{chip} not in {page}");
        }
        Ok(())
    }

    #[test]
    fn the_deciles_are_drawn_per_version() {
        let report: ScoringReport = serde_yaml_ng::from_str(REPORT).expect("a report");
        let chart = deciles_chart(&report);
        assert!(chart.contains("v1 bad rate"), "{chart}");
        // v2 has no deciles: only v1 draws a line.
        assert_eq!(chart.matches("<polyline").count(), 1);
        assert_eq!(deciles_chart(&ScoringReport::default()), "");
    }
}
