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

/// The registry of the namespace: Model `fraud`.
fn registry() -> BTreeMap<String, Model> {
    BTreeMap::from([("fraud".to_owned(), model())])
}

fn now() -> Time {
    Time("2026-02-01T00:00:00Z".parse().expect("a time"))
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
    let models = registry();
    let none = BTreeMap::new();
    for row in table {
        let missing = row.missing.iter().map(|s| (*s).to_owned()).collect();
        let choice = choose(
            &md(row.md, row.allow),
            if row.model { &models } else { &none },
            row.current,
            &missing,
            &now(),
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
    let names: Vec<String> = needed_secrets(&md, &registry())
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
    assert!(needed_secrets(&md, &BTreeMap::new()).len() == 2);
}

/// An ensemble of `fraud` (`gbdt`, its champion) and `other` (`mlp`, its
/// `alias`), serving combination 1 of their version 2 each.
fn blend(alias: &str) -> ModelDeployment {
    let mut md = md(
        &format!(
            "ensemble: {{combine: WeightedSum, output: y, members: [{{name: gbdt, model: {{name: fraud}}, weight: 0.7}}, {{name: mlp, model: {{name: other, alias: {alias}}}, weight: 0.3}}]}}"
        ),
        false,
    );
    let registry = BTreeMap::from([
        ("fraud".to_owned(), model()),
        ("other".to_owned(), other(None)),
    ]);
    let mut serving = md.clone();
    serving.spec.ensemble.as_mut().expect("an ensemble").members[1]
        .model
        .alias = None;
    let first = choose(&serving, &registry, None, &BTreeSet::new(), &now())
        .target
        .and_then(|t| t.combination)
        .expect("the first combination");
    md.status = Some(aimass_crds::v1alpha1::ModelDeploymentStatus {
        combinations: vec![first],
        ..Default::default()
    });
    md
}

/// Model `other`, a copy of `fraud` read through `secret` (`store` when
/// `None`).
fn other(secret: Option<&str>) -> Model {
    let mut other = model();
    other.metadata.name = Some("other".into());
    if let Some(secret) = secret {
        other.spec.source.secret_ref = Some(aimass_crds::v1alpha1::SecretReference {
            name: secret.into(),
        });
    }
    other
}

#[test]
fn an_ensemble_keeps_its_last_good_combination_when_a_member_cannot_join() {
    let registry = BTreeMap::from([
        ("fraud".to_owned(), model()),
        ("other".to_owned(), other(None)),
    ]);
    // The mlp follows `challenger`: version 3 takes 9 features.
    let md = blend("challenger");
    let choice = choose(&md, &registry, Some(1), &BTreeSet::new(), &now());
    let problem = choice.problem.expect("a problem");
    assert_eq!(problem.reason, reasons::MEMBER_INCOMPATIBLE);
    assert!(
        problem
            .message
            .starts_with("member mlp takes input x as FP32 [-1, 9]"),
        "{}",
        problem.message
    );
    let kept = choice.target.expect("the serving combination");
    assert_eq!(kept.version.version, 1);
    assert_eq!(
        kept.combination.expect("a combination").describe(),
        "gbdt=fraud v2, mlp=other v2"
    );

    // Pinned to version 1, it is a new combination, numbered 2.
    let mut pinned = md.clone();
    let mlp = &mut pinned.spec.ensemble.as_mut().expect("an ensemble").members[1].model;
    mlp.alias = None;
    mlp.version = Some(1);
    let choice = choose(&pinned, &registry, Some(1), &BTreeSet::new(), &now());
    assert_eq!(choice.problem, None);
    let next = choice.target.expect("a target");
    assert_eq!(next.version.version, 2);
    assert_eq!(next.secret.as_deref(), Some("store"));

    // Members read with two Secrets: no server can read both.
    let split = BTreeMap::from([
        ("fraud".to_owned(), model()),
        ("other".to_owned(), other(Some("vault"))),
    ]);
    let choice = choose(&pinned, &split, Some(1), &BTreeSet::new(), &now());
    let problem = choice.problem.expect("a problem");
    assert_eq!(problem.reason, reasons::MEMBER_INCOMPATIBLE);
    assert!(
        problem.message.contains("(store, vault)"),
        "{}",
        problem.message
    );
    assert_eq!(choice.target.map(|t| t.version.version), Some(1));
}

#[test]
fn the_shadow_resolves_beside_the_served_version_and_must_take_its_inputs() {
    let registry = registry();
    let serving = model().status.expect("a registry").versions[1].clone();
    let shadow = |spec: &str| {
        let md = md(&format!("model: {{name: fraud}}\n  shadow: {spec}"), false);
        super::shadow(&md, &registry, Some(&serving))
    };
    assert_eq!(
        shadow("{version: 1}").map(|s| s.map(|v| v.version)),
        Ok(Some(1))
    );
    assert_eq!(
        shadow("{version: 2}"),
        Ok(None),
        "the served version itself"
    );
    let wider = shadow("{}").expect_err("the challenger takes 9 features");
    assert_eq!(wider.reason, reasons::SHADOW_UNAVAILABLE);
    assert_eq!(
        wider.message,
        "version 3 takes other inputs than version 2: it cannot score the same requests"
    );
    let missing = shadow("{alias: canary}").expect_err("no such alias");
    assert_eq!(missing.reason, reasons::SHADOW_UNAVAILABLE);
    assert!(
        missing.message.contains("has no canary alias"),
        "{}",
        missing.message
    );
    let unshadowed = md("model: {name: fraud}", false);
    assert_eq!(
        super::shadow(&unshadowed, &registry, Some(&serving)),
        Ok(None)
    );
}
