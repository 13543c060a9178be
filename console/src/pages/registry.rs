//! `/models`: every Model the user may read, one row each. A busy registry
//! sends megabytes of status (every version's metrics, lineage and alias
//! history), so the list is read into the few fields a row shows and the
//! rest of each object is skipped as it is parsed, never held.

use std::collections::BTreeMap;

use aimass_crds::v1alpha1::{CHALLENGER_ALIAS, CHAMPION_ALIAS};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{Page, Place, Viewer, readiness};
use crate::error::Error;

/// A Model as the list reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Listed {
    metadata: Meta,
    spec: Spec,
    status: Status,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Meta {
    name: String,
    namespace: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Spec {
    promotion: Promotion,
    source: Source,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Promotion {
    alias: String,
    gates: Vec<Gate>,
}

impl Default for Promotion {
    fn default() -> Self {
        Self {
            alias: CHAMPION_ALIAS.to_owned(),
            gates: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Gate {
    metric: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Source {
    training: Option<Training>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Training {
    schedule: Option<String>,
    suspend: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Status {
    aliases: BTreeMap<String, i64>,
    versions: Vec<Version>,
    conditions: Vec<Condition>,
    champion_from: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Version {
    version: i64,
    metrics: BTreeMap<String, f64>,
}

#[derive(Debug, PartialEq, Serialize)]
struct Row {
    #[serde(flatten)]
    place: Place,
    champion: Option<i64>,
    challenger: Option<i64>,
    metric_name: Option<String>,
    metric: Option<f64>,
    versions: usize,
    schedule: String,
    champion_from: String,
    ready: String,
    ready_class: &'static str,
}

/// `/models`: every Model in the namespaces the user may read.
pub async fn models(viewer: Viewer<'_>) -> Result<Page, Error> {
    let namespaces = viewer.cluster.visible(viewer.session).await?;
    let mut all: Vec<Listed> = viewer.list_permitted("models", &namespaces).await?;
    all.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    let rows: Vec<Row> = all.into_iter().map(row).collect();
    Ok(Page {
        template: "models.html",
        context: context! {rows},
        nav: "models",
        scope: namespaces,
    })
}

fn row(model: Listed) -> Row {
    let Listed {
        metadata,
        spec,
        status,
    } = model;
    let champion = status.aliases.get(&spec.promotion.alias).copied();
    // The metric the Model is judged by: its first gate's, else the first
    // any version reports.
    let metric_name = spec
        .promotion
        .gates
        .into_iter()
        .next()
        .map(|g| g.metric)
        .or_else(|| {
            status
                .versions
                .iter()
                .find_map(|v| v.metrics.keys().next().cloned())
        });
    let metric = champion
        .and_then(|c| status.versions.iter().find(|v| v.version == c))
        .zip(metric_name.as_ref())
        .and_then(|(v, m)| v.metrics.get(m).copied());
    let (ready, ready_class) = readiness(&status.conditions);
    let schedule = match spec.source.training {
        Some(Training {
            schedule: Some(cron),
            suspend: true,
        }) => format!("{cron} (paused)"),
        Some(Training {
            schedule: Some(cron),
            ..
        }) => cron,
        _ => String::new(),
    };
    Row {
        place: Place::new(metadata.namespace, metadata.name, "models"),
        champion,
        challenger: status.aliases.get(CHALLENGER_ALIAS).copied(),
        metric,
        metric_name,
        versions: status.versions.len(),
        schedule,
        champion_from: status.champion_from.unwrap_or_default(),
        ready,
        ready_class,
    }
}

#[cfg(test)]
mod tests {
    use aimass_crds::v1alpha1::Model;

    use super::*;

    const MODEL: &str = r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata:
  name: fraud
  namespace: risk
  managedFields: [{manager: aimass-operator, operation: Apply, fieldsV1: {f:status: {}}}]
spec:
  source:
    uri: file:///m.onnx
    training: {schedule: "0 3 * * *", suspend: true, template: {image: t, dataset: {uri: "s3://b/d.csv"}}}
  promotion: {gates: [{metric: auc, minimum: 0.8}]}
status:
  aliases: {champion: 2, challenger: 3}
  championFrom: risk-preview
  conditions: [{type: Ready, status: "True", reason: AsExpected, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"}]
  versions:
  - {version: 2, phase: Ready, uri: "file:///m/2.onnx", created: "2026-01-01T00:00:00Z", metrics: {auc: 0.91, ks: 0.5}, lineage: {trainingJob: r2}}
  - {version: 3, phase: Ready, uri: "file:///m/3.onnx", created: "2026-01-02T00:00:00Z", metrics: {auc: 0.93}}
"#;

    #[test]
    fn a_row_is_read_from_the_fields_it_shows() {
        // The same object the API server sends is a valid Model too.
        let _: Model = serde_yaml_ng::from_str(MODEL).expect("a Model");
        let listed: Listed = serde_yaml_ng::from_str(MODEL).expect("a listed Model");
        assert_eq!(
            row(listed),
            Row {
                place: Place::new("risk".into(), "fraud".into(), "models"),
                champion: Some(2),
                challenger: Some(3),
                metric_name: Some("auc".into()),
                metric: Some(0.91),
                versions: 2,
                schedule: "0 3 * * * (paused)".into(),
                champion_from: "risk-preview".into(),
                ready: "Ready".into(),
                ready_class: "ok",
            }
        );
    }

    #[test]
    fn a_model_without_gates_or_status_still_has_a_row() {
        let bare: Listed = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "new", "namespace": "risk"},
            "spec": {"source": {"uri": "file:///m.onnx"}},
        }))
        .expect("a bare Model");
        let row = row(bare);
        assert_eq!(
            (
                row.champion,
                row.metric_name,
                row.versions,
                row.schedule.as_str()
            ),
            (None, None, 0, "")
        );
        assert_eq!(row.ready, "Pending");
    }
}
