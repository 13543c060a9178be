//! The HTML templates, embedded in the binary and escaped by default, and
//! the filters they share.

use minijinja::{Environment, Value};

use crate::error::Error;

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("macros.html", include_str!("../templates/macros.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("overview.html", include_str!("../templates/overview.html")),
    ("models.html", include_str!("../templates/models.html")),
    ("model.html", include_str!("../templates/model.html")),
    ("version.html", include_str!("../templates/version.html")),
    (
        "training_jobs.html",
        include_str!("../templates/training_jobs.html"),
    ),
    (
        "training_job.html",
        include_str!("../templates/training_job.html"),
    ),
    (
        "scoring_jobs.html",
        include_str!("../templates/scoring_jobs.html"),
    ),
    (
        "scoring_job.html",
        include_str!("../templates/scoring_job.html"),
    ),
    (
        "deployments.html",
        include_str!("../templates/deployments.html"),
    ),
    (
        "deployment.html",
        include_str!("../templates/deployment.html"),
    ),
    ("yaml.html", include_str!("../templates/yaml.html")),
    (
        "decisions.html",
        include_str!("../templates/decisions.html"),
    ),
    (
        "approvals.html",
        include_str!("../templates/approvals.html"),
    ),
    ("compare.html", include_str!("../templates/compare.html")),
];

/// The block a live update swaps in.
pub const FRAGMENT_BLOCK: &str = "main";

/// The template environment.
pub struct Views {
    env: Environment<'static>,
}

impl Views {
    /// Loads the embedded templates; an error names the broken one.
    pub fn new() -> Result<Self, Error> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        env.add_filter("fixed", fixed);
        env.add_filter("entries", entries);
        Ok(Self { env })
    }

    /// Renders `template` with `context`; only its `main` block when
    /// `fragment`.
    pub fn render(&self, template: &str, context: Value, fragment: bool) -> Result<String, Error> {
        let template = self.env.get_template(template)?;
        if fragment {
            template
                .render_captured(context)?
                .with_state_mut(|state| state.render_block(FRAGMENT_BLOCK))
                .map_err(Error::from)
        } else {
            Ok(template.render(context)?)
        }
    }
}

/// A map's (key, value) pairs; none for a field the object leaves out
/// (empty maps are not serialised).
fn entries(value: Value) -> Result<Value, minijinja::Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(Value::from(Vec::<Value>::new()));
    }
    let pairs = value
        .try_iter()?
        .map(|key| Ok(Value::from(vec![key.clone(), value.get_item(&key)?])))
        .collect::<Result<Vec<Value>, minijinja::Error>>()?;
    Ok(Value::from(pairs))
}

/// A number with `digits` decimals (4 by default); blank for none.
fn fixed(value: Value, digits: Option<usize>) -> String {
    match f64::try_from(value) {
        Ok(v) if v.is_finite() => format!("{v:.*}", digits.unwrap_or(4)),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_text_is_escaped() -> Result<(), Error> {
        let views = Views::new()?;
        let page = views.render(
            "error.html",
            minijinja::context! {status => 404, message => "<img src=x onerror=alert(1)>"},
            false,
        )?;
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{page}"
        );
        assert!(!page.contains("<img src=x"));
        let fragment = views.render(
            "error.html",
            minijinja::context! {status => 404, message => "gone"},
            true,
        )?;
        assert!(
            fragment.contains("gone") && !fragment.contains("<html"),
            "{fragment}"
        );
        Ok(())
    }

    /// A deployment with every part of its status: drift, canary,
    /// autoscaler, migrations and a broken audit checkpoint.
    #[test]
    fn a_deployment_with_every_status_part_renders_each() -> Result<(), Error> {
        let page = deployment_page(
            r#"
apiVersion: aimass.io/v1alpha1
kind: ModelDeployment
metadata: {name: scoring, namespace: risk}
spec: {model: {name: fraud}}
status:
  servingVersion: 3
  conditions:
  - {type: Ready, status: "True", reason: AsExpected, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"}
  - {type: Degraded, status: "False", reason: AsExpected, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"}
  - {type: Drift, status: "True", reason: DriftDetected, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"}
  - {type: Progressing, status: "True", reason: Canary, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"}
  replicas: 2
  readyReplicas: 2
  lastScaleDecision: {time: "2026-01-01T00:00:00Z", from: 1, to: 2, panic: false, stableValue: 9.5, panicValue: 9.5, reason: "concurrency 9.5 over target 5"}
  canary: {version: 4, phase: Analysing, percent: 10, step: 0, stepStartTime: "2026-01-01T00:00:00Z"}
  drift:
    level: Action
    detected: true
    streak: 2
    rows: 2000
    psi: 0.4123
    warning: 0.1
    action: 0.25
    message: "PSI 0.41 over 2000 rows; top amount"
    features: [{name: amount, index: 1.25, missing: 0, outOfContract: 7}]
  migrations:
  - {time: "2026-01-01T00:00:00Z", pod: scoring-a, node: n1, metric: p99, value: 0.9, threshold: 0.5, outcome: Completed}
  traffic:
    history:
    - {time: "2026-01-01T00:00:30Z", requestsPerSecond: 12.5, errorRate: 0.01, rejectedRate: 0.02, p50LatencyMillis: 1.5, p99LatencyMillis: 4.25}
    callers:
    - {principal: "<b>partner</b>", requests: 42}
  auditCheckpoints:
  - {pod: scoring-a, sequence: 41, mac: "ab", time: "2026-01-01T00:00:00Z", writeFailures: 0, broken: "record 12 does not chain"}
"#,
        )?;
        shows(
            &page,
            &[
                "concurrency 9.5 over target 5",
                "v4 Analysing at 10 %",
                "PSI 0.4123",
                "<td>amount</td><td>1.2500</td>",
                "record 12 does not chain",
                "12.5 requests/s · p50 1.50 ms · p99 4.25 ms · server errors 1.00 % · refused 2.00 %",
                "<td>&lt;b&gt;partner&lt;&#x2f;b&gt;</td><td>42</td>",
                "Completed",
                // Degraded and Drift are bad when True, Progressing neither.
                r#"class="cond good" data-status="True" title=""><b>Ready</b>"#,
                r#"class="cond good" data-status="False" title=""><b>Degraded</b>"#,
                r#"class="cond bad" data-status="True" title=""><b>Drift</b>"#,
                r#"class="cond neutral" data-status="True" title=""><b>Progressing</b>"#,
            ],
        );
        Ok(())
    }

    /// Asserts that `page` shows every one of `shown`.
    fn shows(page: &str, shown: &[&str]) {
        for shown in shown {
            assert!(
                page.contains(shown),
                "{shown:?} is not on the page:\n{page}"
            );
        }
    }

    /// The deployment page of `yaml`, rendered.
    fn deployment_page(yaml: &str) -> Result<String, Error> {
        let md: aimass_crds::v1alpha1::ModelDeployment =
            serde_yaml_ng::from_str(yaml).map_err(|e| Error::BadRequest(e.to_string()))?;
        let status = md.status.clone().unwrap_or_default();
        Views::new()?.render(
            "deployment.html",
            minijinja::context! {
                ns => "risk", name => md.metadata.name.clone(), user => "alice",
                md => Value::from_serialize(&md),
                status => Value::from_serialize(&status),
                drift_class => "bad",
            },
            false,
        )
    }

    #[test]
    fn an_ensembles_page_shows_its_combinations_and_a_shadows_its_comparison() -> Result<(), Error>
    {
        let ensemble = deployment_page(
            r#"
apiVersion: aimass.io/v1alpha1
kind: ModelDeployment
metadata: {name: blend, namespace: risk}
spec:
  ensemble:
    combine: Stack
    meta: {name: fraud-meta}
    members: [{name: gbdt, model: {name: fraud-gbdt}}, {name: mlp, model: {name: "<i>mlp</i>"}}]
status:
  servingVersion: 2
  combinations:
  - {revision: 1, combine: WeightedSum, output: probabilities, created: "2026-01-01T00:00:00Z",
     members: [{name: gbdt, model: fraud-gbdt, version: 1, alias: champion, weight: 0.7, uri: "s3://m/1"}]}
  - {revision: 2, combine: Stack, output: probabilities, created: "2026-01-02T00:00:00Z",
     members: [{name: gbdt, model: fraud-gbdt, version: 3, weight: 1, uri: "s3://m/3"}],
     meta: {name: meta, model: fraud-meta, version: 5, weight: 1, uri: "s3://m/5"}}
"#,
        )?;
        shows(
            &ensemble,
            &[
                "Ensemble (Stack) of <a href=\"/ns/risk/models/fraud-gbdt\">fraud-gbdt</a>",
                "&lt;i&gt;mlp&lt;&#x2f;i&gt;",
                "meta-model <a href=\"/ns/risk/models/fraud-meta\">fraud-meta</a>",
                "<td>v1</td><td>WeightedSum of probabilities</td><td>gbdt = fraud-gbdt v1 (champion) × 0.7</td>",
                r#"<tr class="ok"><td>v2</td><td>Stack of probabilities</td><td>gbdt = fraud-gbdt v3; meta-model fraud-meta v5</td>"#,
            ],
        );
        let shadowed = deployment_page(
            r#"
apiVersion: aimass.io/v1alpha1
kind: ModelDeployment
metadata: {name: scoring, namespace: risk}
spec:
  model: {name: card-fraud}
  shadow: {percent: 50}
status:
  shadow: {version: 2, requests: 510, rows: 8160, labelAgreement: 0.875, meanAbsoluteDifference: 0.1211, dropped: 0,
           differences: [{le: 0.02, rows: 510}, {le: 0.5, rows: 8160}]}
"#,
        )?;
        shows(
            &shadowed,
            &[
                "50 % of the requests",
                "v2 scored 510 requests (8160 rows) · labels agree on 87.50 % · mean score difference 0.1211 · dropped 0",
                "<td>0.5</td><td>8160</td>",
            ],
        );
        Ok(())
    }
}
