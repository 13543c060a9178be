//! Table tests of the stable track's choice.

use super::*;
use aimass_crds::v1alpha1::Model;

/// A Model read through `secret`, with versions 1 and 2 Ready (2 is the
/// champion) and 3 Ready with other inputs (the challenger).
fn model() -> Model {
    let version = |n: i64, features: i64| {
        format!(
            r#"{{version: {n}, phase: Ready, uri: "file:///{n}", created: "2026-01-01T00:00:00Z",
              signature: {{inputs: [{{name: x, datatype: FP32, shape: [-1, {features}]}}], outputs: [{{name: y, datatype: FP32, shape: [-1]}}]}}}}"#
        )
    };
    serde_yaml_ng::from_str(&format!(
        r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: fraud, namespace: desk}}
spec: {{source: {{uri: "s3://bucket/m.onnx", secretRef: {{name: store}}}}}}
status:
  aliases: {{champion: 2, challenger: 3}}
  versions: [{}, {}, {}]
"#,
        version(1, 8),
        version(2, 8),
        version(3, 9)
    ))
    .expect("a valid Model")
}

/// A ModelDeployment with `spec`, annotated to allow a signature change
/// when `allow` is.
fn md(spec: &str, allow: bool) -> ModelDeployment {
    let annotations = if allow {
        ", annotations: {aimass.io/allow-signature-change: \"true\"}"
    } else {
        ""
    };
    serde_yaml_ng::from_str(&format!(
        "
apiVersion: aimass.io/v1alpha1
kind: ModelDeployment
metadata: {{name: scorer, namespace: desk{annotations}}}
spec:
  {spec}
"
    ))
    .expect("a valid ModelDeployment")
}

#[test]
fn the_choice_follows_the_registry_and_never_breaks_what_serves() {
    struct Row {
        what: &'static str,
        md: &'static str,
        allow: bool,
        model: bool,
        current: Option<i64>,
        missing: &'static [&'static str],
        /// (version run, alias) or nothing.
        runs: Option<(i64, Option<&'static str>)>,
        problem: Option<&'static str>,
    }
    let table = [
        Row {
            what: "the champion, all there",
            md: "model: {name: fraud}",
            allow: false,
            model: true,
            current: Some(1),
            missing: &[],
            runs: Some((2, Some("champion"))),
            problem: None,
        },
        Row {
            what: "a pinned version",
            md: "model: {name: fraud, version: 1}",
            allow: false,
            model: true,
            current: None,
            missing: &[],
            runs: Some((1, None)),
            problem: None,
        },
        Row {
            what: "an invalid spec runs nothing",
            md: "model: {name: fraud}\n  autoscaling: {enabled: false}\n  replicas: {min: 1, max: 2, count: 5}",
            allow: false,
            model: true,
            current: Some(2),
            missing: &[],
            runs: None,
            problem: Some("InvalidSpec"),
        },
        Row {
            what: "no Model runs nothing",
            md: "model: {name: fraud}",
            allow: false,
            model: false,
            current: Some(2),
            missing: &[],
            runs: None,
            problem: Some("ReferenceNotFound"),
        },
        Row {
            what: "an unknown alias keeps what runs",
            md: "model: {name: fraud, alias: staging}",
            allow: false,
            model: true,
            current: Some(1),
            missing: &[],
            runs: Some((1, None)),
            problem: Some("AliasUnresolved"),
        },
        Row {
            what: "an unknown alias with nothing running runs nothing",
            md: "model: {name: fraud, alias: staging}",
            allow: false,
            model: true,
            current: None,
            missing: &[],
            runs: None,
            problem: Some("AliasUnresolved"),
        },
        Row {
            what: "a missing storage Secret keeps what runs",
            md: "model: {name: fraud}",
            allow: false,
            model: true,
            current: Some(1),
            missing: &["store"],
            runs: Some((1, None)),
            problem: Some("ReferenceNotFound"),
        },
        Row {
            what: "a missing TLS Secret keeps what runs",
            md: "model: {name: fraud}\n  security: {tls: {certificateSecret: {name: certs}}}",
            allow: false,
            model: true,
            current: Some(1),
            missing: &["certs"],
            runs: Some((1, None)),
            problem: Some("ReferenceNotFound"),
        },
        Row {
            what: "other inputs are not rolled out",
            md: "model: {name: fraud, alias: challenger}",
            allow: false,
            model: true,
            current: Some(2),
            missing: &[],
            runs: Some((2, None)),
            problem: Some("SignatureChanged"),
        },
        Row {
            what: "other inputs, callers updated (annotation)",
            md: "model: {name: fraud, alias: challenger}",
            allow: true,
            model: true,
            current: Some(2),
            missing: &[],
            runs: Some((3, Some("challenger"))),
            problem: None,
        },
        Row {
            what: "other inputs with nothing running yet",
            md: "model: {name: fraud, alias: challenger}",
            allow: false,
            model: true,
            current: None,
            missing: &[],
            runs: Some((3, Some("challenger"))),
            problem: None,
        },
    ];
    let model = model();
    for row in table {
        let missing = row.missing.iter().map(|s| (*s).to_owned()).collect();
        let choice = choose(
            &md(row.md, row.allow),
            row.model.then_some(&model),
            row.current,
            &missing,
        );
        let runs = choice
            .target
            .as_ref()
            .map(|t| (t.version.version, t.alias.as_deref()));
        assert_eq!(runs, row.runs, "{}", row.what);
        assert_eq!(
            choice.problem.as_ref().map(|p| p.reason),
            row.problem,
            "{}: {:?}",
            row.what,
            choice.problem
        );
        if let Some(target) = &choice.target {
            assert_eq!(target.secret.as_deref(), Some("store"), "{}", row.what);
        }
    }
}

#[test]
fn the_needed_secrets_say_what_each_holds() {
    let md = md(
        "model: {name: fraud}\n  security: {tls: {certificateSecret: {name: certs}, clientCertificates: {caSecret: {name: partners}}}, mode: Enforced}",
        false,
    );
    let names: Vec<String> = needed_secrets(&md, Some(&model()))
        .into_iter()
        .map(|(name, purpose)| format!("{name}: {purpose}"))
        .collect();
    assert_eq!(
        names,
        [
            "store: holds the credentials to read the model",
            "certs: holds the servers' TLS certificate",
            "partners: holds the CAs of client certificates",
        ]
    );
    assert!(needed_secrets(&md, None).len() == 2);
}
