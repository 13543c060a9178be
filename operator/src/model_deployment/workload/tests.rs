//! Tests of `workload`.

use super::*;
use k8s_openapi::api::core::v1::Container;

#[test]
fn the_service_carries_rest_and_grpc_to_the_named_container_ports() {
    let md = md("");
    let service = service(&md).spec.unwrap();
    let ports: Vec<(String, i32, IntOrString)> = service
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port, p.target_port.unwrap()))
        .collect();
    assert_eq!(
        ports,
        [
            ("http".into(), 80, IntOrString::String("http".into())),
            ("grpc".into(), 8001, IntOrString::String("grpc".into()))
        ]
    );
    let pod = one_stable_pod(&md);
    let container = &pod.containers[0];
    let named: Vec<(String, i32)> = container
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap(), p.container_port))
        .collect();
    assert!(named.contains(&("grpc".into(), 8001)), "{named:?}");
    assert_eq!(env_of(container)["AIMASS_GRPC_PORT"], "8001");
    assert_eq!(
        grpc_address(&md),
        format!("scoring.{}.svc:8001", md.namespace().unwrap())
    );
}

#[test]
fn the_admin_port_answers_only_the_operator_and_the_scrapers() {
    let policy = network_policy(&md(""), "aimass-system", &["monitoring".to_owned()]);
    assert_eq!(policy.metadata.name.as_deref(), Some("scoring"));
    let spec = policy.spec.unwrap();
    assert_eq!(
        spec.pod_selector.unwrap().match_labels.unwrap()[DEPLOYMENT_LABEL],
        "scoring"
    );
    let rules = spec.ingress.unwrap();
    let ports = |i: usize| -> Vec<IntOrString> {
        rules[i]
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.port.clone())
            .collect()
    };
    assert_eq!(
        ports(0),
        [
            IntOrString::String("http".into()),
            IntOrString::String("grpc".into())
        ]
    );
    assert!(rules[0].from.is_none(), "the API ports are open");
    assert_eq!(ports(1), [IntOrString::String("admin".into())]);
    let from = &rules[1].from.as_ref().unwrap()[0];
    let namespaces = from
        .namespace_selector
        .as_ref()
        .unwrap()
        .match_expressions
        .as_ref()
        .unwrap();
    assert_eq!(
        namespaces[0].values.as_deref(),
        Some(&["aimass-system".to_owned(), "monitoring".to_owned()][..])
    );
    assert!(from.pod_selector.is_none());
}

fn md(extra: &str) -> ModelDeployment {
    let mut md: ModelDeployment = serde_yaml_ng::from_str(&format!(
        r#"
apiVersion: aimass.io/v1alpha1
kind: ModelDeployment
metadata: {{name: scoring, namespace: risk}}
spec:
  model: {{name: card-fraud}}
  batching: {{maxBatchSize: 16, maxQueueDelayMicros: 200}}
  server: {{drainTimeoutSeconds: 10, env: [{{name: RUST_LOG, value: debug}}]}}
  nodeSelector: {{pool: scoring}}
{extra}
"#
    ))
    .unwrap();
    md.metadata.uid = Some("uid-md".into());
    md
}

fn version() -> ModelVersion {
    serde_yaml_ng::from_str(
            r#"{version: 3, phase: Ready, uri: "s3://models/card-fraud/3/model.onnx", sha256: "ab", created: "2026-01-01T00:00:00Z"}"#,
        )
        .unwrap()
}

#[test]
fn the_stable_deployment_serves_the_version_safely() {
    let md = md("");
    let version = version();
    let d = deployment(&Workload {
        md: &md,
        version: &version,
        combination: None,
        shadow: None,
        replicas: 2,
        default_image: "aimass/inference-server:0.1.0",
        secret: Some("store"),
        key_service: &key_service(),
        track: Track::Stable,
    });
    assert_eq!(d.metadata.name.as_deref(), Some("scoring"));
    assert_eq!(
        d.metadata.owner_references.as_ref().unwrap()[0].kind,
        "ModelDeployment"
    );
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let rolling = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
    let labels = spec.selector.match_labels.unwrap();
    assert_eq!(labels[TRACK_LABEL], "stable");
    let template = spec.template;
    assert_eq!(
        template.metadata.unwrap().labels.unwrap()[VERSION_LABEL],
        "3"
    );
    let pod = template.spec.unwrap();
    let c = &pod.containers[0];
    let env = env_of(c);
    assert_eq!(
        env["AIMASS_MODEL_URI"],
        "s3://models/card-fraud/3/model.onnx"
    );
    assert_eq!(env["AIMASS_MODEL_SHA256"], "ab");
    assert_eq!(env["AIMASS_MAX_BATCH_SIZE"], "16");
    assert_eq!(env["RUST_LOG"], "debug");
    assert_eq!(c.image.as_deref(), Some("aimass/inference-server:0.1.0"));
    assert_eq!(secret_keys(c), [("AWS_ACCESS_KEY_ID", "store")]);
    assert!(c.env_from.is_none(), "never the whole Secret");
    // The grace period outlasts the preStop pause plus the drain.
    assert_eq!(
        pod.termination_grace_period_seconds,
        Some(PRE_STOP_SECONDS + 10 + 5)
    );
    let pre_stop = c.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
    assert_eq!(pre_stop.sleep.as_ref().unwrap().seconds, PRE_STOP_SECONDS);
    assert_eq!(
        c.readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/v2/health/ready")
    );
    // Probes go to the admin port, which needs no caller credentials.
    let probe_port =
        |p: &Option<Probe>| p.as_ref().unwrap().http_get.as_ref().unwrap().port.clone();
    assert_eq!(
        probe_port(&c.readiness_probe),
        IntOrString::String("admin".into())
    );
    assert_eq!(
        probe_port(&c.liveness_probe),
        IntOrString::String("admin".into())
    );
    // Enforced by default: callers are reviewed and audited.
    assert_eq!(env["AIMASS_AUTH"], "kubernetes");
    assert_eq!(env["AIMASS_AUTH_AUDIENCE"], "aimass");
    assert_eq!(env["AIMASS_API_CLIENTS"], "true");
    assert_eq!(env["AIMASS_AUDIT_FAILURE_POLICY"], "fail-closed");
    assert!(env["AIMASS_AUDIT_LOG"].starts_with(AUDIT_DIR));
    assert_eq!(pod.service_account_name.as_deref(), Some("scoring-server"));
    // The audit keys come from the key service, never from a Secret of
    // the namespace; the token it reviews is bound to the pod.
    assert_eq!(env["AIMASS_AUDIT_KEY_SERVICE"], key_service().url);
    let volumes = pod.volumes.as_ref().unwrap();
    assert!(volumes.iter().all(|v| v.secret.is_none()), "{volumes:?}");
    let token = volumes[1]
        .projected
        .as_ref()
        .unwrap()
        .sources
        .as_ref()
        .unwrap()[0]
        .service_account_token
        .as_ref()
        .unwrap();
    assert_eq!(token.audience.as_deref(), Some("aimass-audit-keys"));
    // What the operator makes is what the key service hands keys to.
    let as_made = Pod {
        spec: Some(pod.clone()),
        ..Pod::default()
    };
    assert_eq!(
        crate::key_service::pod_may_hold_keys(
            &as_made,
            "scoring-server",
            "aimass/inference-server:0.1.0",
            &key_service().public_key
        ),
        Ok(())
    );
    let anti = pod.affinity.unwrap().pod_anti_affinity.unwrap();
    assert_eq!(
        anti.preferred_during_scheduling_ignored_during_execution
            .unwrap()[0]
            .pod_affinity_term
            .topology_key,
        "kubernetes.io/hostname"
    );
    assert_eq!(pod.node_selector.unwrap()["pool"], "scoring");
    let security = c.security_context.as_ref().unwrap();
    assert_eq!(
        (
            security.read_only_root_filesystem,
            security.allow_privilege_escalation
        ),
        (Some(true), Some(false))
    );
}

fn key_service() -> crate::key_service::Endpoint {
    crate::key_service::Endpoint {
        url: "http://10.96.0.20:8082".into(),
        public_key: "cHVibGlj".into(),
    }
}

/// The pod template of a one-replica stable track.
/// A container's environment by name; variables set from a field or a
/// Secret read as empty.
/// The variables read from Secrets' `AWS_ACCESS_KEY_ID`, and from which.
fn secret_keys(c: &Container) -> Vec<(&str, &str)> {
    c.env
        .iter()
        .flatten()
        .filter_map(|e| {
            let key = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
            (key.key == "AWS_ACCESS_KEY_ID").then_some((e.name.as_str(), key.name.as_str()))
        })
        .collect()
}

fn env_of(c: &Container) -> BTreeMap<&str, &str> {
    c.env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or_default()))
        .collect()
}

fn one_stable_pod(md: &ModelDeployment) -> PodSpec {
    let version = version();
    let d = deployment(&Workload {
        md,
        version: &version,
        combination: None,
        shadow: None,
        replicas: 1,
        default_image: "aimass/inference-server:0.1.0",
        secret: None,
        key_service: &key_service(),
        track: Track::Stable,
    });
    d.spec.unwrap().template.spec.unwrap()
}

#[test]
fn the_audit_payload_policy_reaches_the_server_in_its_own_format() {
    let md =
        md("  security: {auditPayload: [{input: amount, policy: Bucket, buckets: [10, 100]}]}\n");
    let pod = one_stable_pod(&md);
    let policy = pod.containers[0]
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "AIMASS_AUDIT_PAYLOAD")
        .and_then(|e| e.value.clone())
        .unwrap();
    let parsed = aimass_audit::payload::PayloadPolicy::parse(&policy, vec![0; 32]);
    assert!(parsed.is_ok(), "{policy}: {:?}", parsed.err());
    assert!(
        parsed
            .unwrap()
            .record("amount", || Some(vec![serde_json::json!(50)]))
            .is_some()
    );
}

#[test]
fn the_audit_trail_volume_is_bounded() {
    let pod = one_stable_pod(&md(""));
    let audit = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "audit")
        .and_then(|v| v.empty_dir.as_ref())
        .unwrap();
    assert_eq!(audit.size_limit.as_ref().map(|q| q.0.as_str()), Some("2Gi"));
}

#[test]
fn an_insecure_deployment_runs_without_reviews_or_trail() {
    let md = md("  security: {mode: Insecure}\n  serviceAccountName: batch\n");
    let pod = one_stable_pod(&md);
    let c = &pod.containers[0];
    let env = env_of(c);
    assert!(env.contains_key("AIMASS_ADMIN_PORT"));
    assert!(!env.contains_key("AIMASS_AUTH"));
    assert!(!env.contains_key("AIMASS_AUDIT_LOG"));
    assert!(pod.volumes.is_none() && c.volume_mounts.is_none());
    assert_eq!(pod.service_account_name.as_deref(), Some("batch"));
}

#[test]
fn tls_mounts_the_certificate_and_client_ca_secrets_and_the_url_says_https() {
    let md = md(
        "  security:\n    tls:\n      certificateSecret: {name: scoring-tls}\n      clientCertificates: {caSecret: {name: partner-cas}, checkRevocation: true}\n",
    );
    let pod = one_stable_pod(&md);
    let c = &pod.containers[0];
    let env = env_of(c);
    assert_eq!(env["AIMASS_TLS_CERT_FILE"], "/etc/aimass/tls/tls.crt");
    assert_eq!(env["AIMASS_TLS_KEY_FILE"], "/etc/aimass/tls/tls.key");
    assert_eq!(env["AIMASS_CLIENT_CA_FILE"], "/etc/aimass/client-ca/ca.crt");
    assert_eq!(env["AIMASS_CLIENT_CA_NAME"], "partner-cas");
    assert_eq!(
        env["AIMASS_CLIENT_CRL_FILE"],
        "/etc/aimass/client-ca/ca.crl"
    );
    let secrets: BTreeMap<&str, &str> = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| Some((v.name.as_str(), v.secret.as_ref()?.secret_name.as_deref()?)))
        .collect();
    assert_eq!(secrets["tls"], "scoring-tls");
    assert_eq!(secrets["client-ca"], "partner-cas");
    let mounts: Vec<&str> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert!(mounts.contains(&TLS_DIR) && mounts.contains(&CLIENT_CA_DIR));
    assert!(url(&md).starts_with("https://scoring."));
    // Without revocation lists, no CRL file is expected.
    let mut plain = md.clone();
    if let Some(tls) = plain.spec.security.tls.as_mut() {
        tls.client_certificates = None;
    }
    let pod = one_stable_pod(&plain);
    let env = env_of(&pod.containers[0]);
    assert!(
        !env.contains_key("AIMASS_CLIENT_CA_FILE") && !env.contains_key("AIMASS_CLIENT_CRL_FILE")
    );
}

#[test]
fn the_audit_archive_and_its_credentials_reach_the_server_apart_from_the_models() {
    let md = md(
        "  security:\n    auditArchive: {prefix: \"s3://audit-worm/fraud\", secretRef: {name: worm}, intervalSeconds: 10, segmentMebibytes: 8}\n",
    );
    let version = version();
    let d = deployment(&Workload {
        md: &md,
        version: &version,
        combination: None,
        shadow: None,
        replicas: 1,
        default_image: "img",
        secret: Some("model-store"),
        key_service: &key_service(),
        track: Track::Stable,
    });
    let c = &d.spec.unwrap().template.spec.unwrap().containers[0];
    let env = env_of(c);
    assert_eq!(env["AIMASS_AUDIT_ARCHIVE"], "s3://audit-worm/fraud");
    assert_eq!(env["AIMASS_AUDIT_ARCHIVE_INTERVAL_SECONDS"], "10");
    assert_eq!(env["AIMASS_AUDIT_SEGMENT_BYTES"], "8388608");
    assert_eq!(
        secret_keys(c),
        [
            ("AWS_ACCESS_KEY_ID", "model-store"),
            ("AIMASS_AUDIT_ARCHIVE_AWS_ACCESS_KEY_ID", "worm")
        ]
    );
}

#[test]
fn the_canary_has_its_own_track_behind_the_same_service() {
    let mut md = md("");
    md.metadata.annotations = Some(BTreeMap::from([(
        CANARY_FAULT_ANNOTATION.to_owned(),
        "2".to_owned(),
    )]));
    let version = version();
    let d = deployment(&Workload {
        md: &md,
        version: &version,
        combination: None,
        shadow: None,
        replicas: 1,
        default_image: "img",
        secret: None,
        key_service: &key_service(),
        track: Track::Canary,
    });
    assert_eq!(d.metadata.name.as_deref(), Some("scoring-canary"));
    let faults = |d: &Deployment| {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "AIMASS_FAULT_ERROR_EVERY")
    };
    assert!(faults(&d), "the rehearsal fault reaches the canary");
    let stable = deployment(&Workload {
        md: &md,
        version: &version,
        combination: None,
        shadow: None,
        replicas: 1,
        default_image: "img",
        secret: None,
        key_service: &key_service(),
        track: Track::Stable,
    });
    assert!(!faults(&stable), "and never the stable track");
    assert_eq!(
        d.spec.unwrap().selector.match_labels.unwrap()[TRACK_LABEL],
        "canary"
    );
    let svc = service(&md);
    let selector = svc.spec.unwrap().selector.unwrap();
    assert_eq!(selector.len(), 1);
    assert_eq!(selector[DEPLOYMENT_LABEL], "scoring");
    assert_eq!(url(&md), "http://scoring.risk.svc:80/v2/models/card-fraud");
    assert_eq!(super::selector(&md), "aimass.io/model-deployment=scoring");
}

#[test]
fn a_version_with_a_baseline_is_served_counting_drift_with_the_rules() {
    let mut version = version();
    version.baseline = Some(aimass_crds::v1alpha1::VersionBaseline {
        uri: "s3://models/card-fraud/3/baseline.json".into(),
        sha256: "cd".into(),
        features: 8,
        scores: 1,
    });
    let serve = |md: &ModelDeployment, version: &ModelVersion| {
        let d = deployment(&Workload {
            md,
            version,
            combination: None,
            shadow: None,
            replicas: 1,
            default_image: "aimass/inference-server:0.1.0",
            secret: None,
            key_service: &key_service(),
            track: Track::Stable,
        });
        let c = d.spec.unwrap().template.spec.unwrap().containers.remove(0);
        env_of(&c)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<BTreeMap<String, String>>()
    };
    let ruled =
        md("  drift: {rules: [{feature: amount, action: Reject}, {feature: mcc, action: Flag}]}\n");
    let env = serve(&ruled, &version);
    assert_eq!(
        env["AIMASS_BASELINE_URI"],
        "s3://models/card-fraud/3/baseline.json"
    );
    assert_eq!(env[BASELINE_SHA256_VAR], "cd");
    assert_eq!(env["AIMASS_FEATURE_RULES"], "amount=Reject,mcc=Flag");
    // Off, or a version without a baseline: nothing counted, no rules.
    let off = md("  drift: {enabled: false}\n");
    assert!(!serve(&off, &version).contains_key("AIMASS_BASELINE_URI"));
    assert!(!serve(&ruled, &super::tests::version()).contains_key("AIMASS_FEATURE_RULES"));
}

#[test]
fn an_ensemble_is_served_by_its_name_with_each_member_checked_by_digest() {
    let mut md = md("");
    md.spec.model = None;
    let combination: Combination = serde_yaml_ng::from_str(
        r#"
revision: 4
combine: WeightedSum
output: probabilities
created: "2026-01-01T00:00:00Z"
members:
- {name: gbdt, model: fraud-gbdt, version: 3, weight: 0.7, uri: "s3://m/gbdt/3/model.onnx", sha256: "aa"}
- {name: mlp, model: fraud-mlp, version: 1, weight: 0.3, uri: "s3://m/mlp/1/model.onnx"}
"#,
    )
    .unwrap();
    let version = super::super::ensemble::as_version(&combination);
    let d = deployment(&Workload {
        md: &md,
        version: &version,
        combination: Some(&combination),
        shadow: None,
        replicas: 1,
        default_image: "img",
        secret: None,
        key_service: &key_service(),
        track: Track::Stable,
    });
    let pod = d.spec.unwrap().template;
    assert_eq!(pod.metadata.unwrap().labels.unwrap()[VERSION_LABEL], "4");
    let pod_spec = pod.spec.unwrap();
    let container = &pod_spec.containers[0];
    let env = env_of(container);
    assert_eq!(
        env["AIMASS_MODEL_NAME"], "scoring",
        "called by its own name"
    );
    assert_eq!(env["AIMASS_MODEL_VERSION"], "4");
    assert!(!env.contains_key("AIMASS_MODEL_URI") && !env.contains_key("AIMASS_MODEL_SHA256"));
    assert_eq!(container.args, None, "the image's own command line");
    let plan: serde_json::Value =
        serde_json::from_str(env["AIMASS_ENSEMBLE"]).expect("a JSON plan");
    assert_eq!(
        plan,
        serde_json::json!({"combine": "weighted-sum", "output": "probabilities", "members": [
            {"name": "gbdt", "uri": "s3://m/gbdt/3/model.onnx", "weight": 0.7, "sha256": "aa"},
            {"name": "mlp", "uri": "s3://m/mlp/1/model.onnx", "weight": 0.3}]})
    );
    let key_service = key_service();
    assert_eq!(
        crate::key_service::pod_may_hold_keys(
            &k8s_openapi::api::core::v1::Pod {
                metadata: Default::default(),
                spec: Some(PodSpec {
                    service_account_name: Some(access::service_account_name(&md)),
                    ..pod_spec.clone()
                }),
                status: None,
            },
            &access::service_account_name(&md),
            "img",
            &key_service.public_key,
        ),
        Ok(()),
        "an ensemble's servers may hold the audit keys"
    );
    assert_eq!(url(&md), "http://scoring.risk.svc:80/v2/models/scoring");
}
