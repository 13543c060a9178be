//! The objects that serve a ModelDeployment: an `apps/v1` Deployment of
//! inference servers per track (the stable one, and a canary during a canary
//! rollout) and one Service in front of both. Pure.

use std::collections::BTreeMap;

use aimass_crds::v1alpha1::{
    AuditFailurePolicy, ModelDeployment, ModelVersion, SecurityMode, TlsSpec,
};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
    Lifecycle, LifecycleHandler, ObjectFieldSelector, Pod, PodAffinityTerm, PodSpec,
    PodTemplateSpec, Probe, ProjectedVolumeSource, SecretVolumeSource, Service,
    ServiceAccountTokenProjection, ServicePort, ServiceSpec, SleepAction, Volume, VolumeMount,
    VolumeProjection, WeightedPodAffinityTerm,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::access;
use crate::env_var::env;
use crate::{labels, security};

/// Port the inference server answers the Open Inference Protocol on.
pub const SERVER_PORT: i32 = 8080;
/// Port of the server's probes and metrics, apart from the API so they
/// need no caller credentials.
pub const ADMIN_PORT: i32 = 8081;
/// Where the audit trail is written, on a volume of its own.
const AUDIT_DIR: &str = "/var/log/aimass";
/// Where the audit chain's key is mounted.
/// Where the token the key service reviews is mounted.
const KEY_SERVICE_TOKEN_DIR: &str = "/var/run/secrets/aimass/audit-keys";
/// How long that token lives: it is read once at start (the kubelet
/// refreshes it anyway).
const KEY_SERVICE_TOKEN_SECONDS: i64 = 3600;
/// Where the servers' TLS certificate Secret is mounted.
const TLS_DIR: &str = "/etc/aimass/tls";
/// Where the client CA Secret is mounted.
const CLIENT_CA_DIR: &str = "/etc/aimass/client-ca";
/// Port of the Service.
pub const SERVICE_PORT: i32 = 80;
/// Label naming the ModelDeployment a pod serves.
pub const DEPLOYMENT_LABEL: &str = "aimass.io/model-deployment";
/// Label naming a pod's track: `stable` or `canary`.
pub const TRACK_LABEL: &str = "aimass.io/track";
/// Label naming the Model version a pod serves.
pub const VERSION_LABEL: &str = "aimass.io/model-version";
/// Seconds a stopping pod keeps serving while its endpoint is removed from
/// every proxy, before the server stops accepting.
pub const PRE_STOP_SECONDS: i64 = 5;
/// Calls per second each source address may make to each Enforced replica
/// when `security.requestsPerSecondPerAddress` is not set.
const DEFAULT_PER_ADDRESS: i32 = 1000;

/// The server's drain timeout when the spec does not set one.
const DEFAULT_DRAIN_SECONDS: i32 = 20;

/// The size limit of the volume that holds a server's audit trail: rotated
/// archive segments are removed once shipped, so an archived trail stays
/// far below it.
const AUDIT_VOLUME_LIMIT: &str = "2Gi";

/// The IP of a pod that serves: Ready and not being deleted.
pub fn serving_ip(pod: &Pod) -> Option<String> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    status.pod_ip.clone().filter(|_| ready)
}

/// Which of a ModelDeployment's Deployments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    /// The version everyone gets.
    Stable,
    /// The version under test in a canary rollout.
    Canary,
}

impl Track {
    fn as_str(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Canary => "canary",
        }
    }
}

/// What a Deployment of inference servers is built from.
pub struct Workload<'a> {
    /// The ModelDeployment.
    pub md: &'a ModelDeployment,
    /// The version to serve.
    pub version: &'a ModelVersion,
    /// How many replicas.
    pub replicas: i32,
    /// The inference server image when the spec names none.
    pub default_image: &'a str,
    /// Secret with the credentials to read the artifact.
    pub secret: Option<&'a str>,
    /// Where `Enforced` servers get their audit keys.
    pub key_service: &'a crate::key_service::Endpoint,
    /// Which track.
    pub track: Track,
}

/// Annotation for rehearsals (game days, tests of alerts and rollbacks):
/// the canary track's servers answer every Nth inference with a 500, so a
/// rollback can be practised against real servers. Never set in production.
pub const CANARY_FAULT_ANNOTATION: &str = "aimass.io/rehearse-canary-fault-every";

/// Annotation for rehearsals: every replica holds each inference this many
/// milliseconds, to practise scaling and latency alerts. Never set in
/// production.
pub const LATENCY_FAULT_ANNOTATION: &str = "aimass.io/rehearse-latency-millis";

/// Annotation for rehearsals: every replica arms a delay of this many
/// milliseconds that SIGUSR1 to one server process switches on, to practise
/// the migration of one sick replica. Never set in production.
pub const SIGNAL_LATENCY_FAULT_ANNOTATION: &str = "aimass.io/rehearse-signal-latency-millis";

/// Name of a track's Deployment.
pub fn deployment_name(md: &ModelDeployment, track: Track) -> String {
    let name = md.name_any();
    match track {
        Track::Stable => name,
        Track::Canary => labels::fit(&format!("{name}-canary"), 253),
    }
}

/// The label that selects every server pod of `md`, whatever its track.
fn selector_labels(md: &ModelDeployment) -> BTreeMap<String, String> {
    let mut labels = deployment_labels(md);
    labels.retain(|k, _| k == DEPLOYMENT_LABEL);
    labels
}

/// The label selector of every serving pod of `md`, as the `scale`
/// subresource reports it.
pub fn selector(md: &ModelDeployment) -> String {
    format!("{DEPLOYMENT_LABEL}={}", labels::fit(&md.name_any(), 63))
}

/// The in-cluster URL of the Open Inference Protocol endpoint.
pub fn url(md: &ModelDeployment) -> String {
    let scheme = if md.spec.security.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!(
        "{scheme}://{}.{}.svc:{SERVICE_PORT}/v2/models/{}",
        md.name_any(),
        md.namespace().unwrap_or_default(),
        md.spec.model.name
    )
}

pub(super) fn deployment_labels(md: &ModelDeployment) -> BTreeMap<String, String> {
    let mut labels = labels::common("aimass-inference-server", &md.spec.model.name);
    labels.insert(DEPLOYMENT_LABEL.into(), labels::fit(&md.name_any(), 63));
    labels
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("admin".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

/// Label a migration puts on the replica it replaces: new replicas avoid its
/// node. Labels outside the selector change no Deployment.
pub const LEAVING_LABEL: &str = "aimass.io/leaving";

/// Replicas of the same ModelDeployment prefer different nodes, and above
/// all not the node of a replica being migrated away, on top of the user's
/// own affinity rules.
fn affinity(md: &ModelDeployment) -> Affinity {
    let mut affinity = md.spec.affinity.clone().unwrap_or_default();
    let mut anti = affinity.pod_anti_affinity.take().unwrap_or_default();
    let mut preferred = anti
        .preferred_during_scheduling_ignored_during_execution
        .take()
        .unwrap_or_default();
    let name = labels::fit(&md.name_any(), 63);
    let avoid = |weight, extra: Option<(&str, &str)>| {
        let mut match_labels = BTreeMap::from([(DEPLOYMENT_LABEL.to_owned(), name.clone())]);
        match_labels.extend(extra.map(|(k, v)| (k.to_owned(), v.to_owned())));
        WeightedPodAffinityTerm {
            weight,
            pod_affinity_term: PodAffinityTerm {
                topology_key: "kubernetes.io/hostname".into(),
                label_selector: Some(LabelSelector {
                    match_labels: Some(match_labels),
                    match_expressions: None,
                }),
                ..PodAffinityTerm::default()
            },
        }
    };
    preferred.push(avoid(50, None));
    preferred.push(avoid(100, Some((LEAVING_LABEL, "true"))));
    anti.preferred_during_scheduling_ignored_during_execution = Some(preferred);
    affinity.pod_anti_affinity = Some(anti);
    affinity
}

/// The Deployment of a track.
pub fn deployment(w: &Workload<'_>) -> Deployment {
    let md = w.md;
    let spec = &md.spec;
    let drain = spec
        .server
        .drain_timeout_seconds
        .unwrap_or(DEFAULT_DRAIN_SECONDS);
    let mut selector = selector_labels(md);
    selector.insert(TRACK_LABEL.into(), w.track.as_str().into());
    let mut pod_labels = deployment_labels(md);
    pod_labels.extend(selector.clone());
    pod_labels.insert(VERSION_LABEL.into(), w.version.version.to_string());

    let mut vars = vec![
        env("AIMASS_MODEL_URI", &w.version.uri),
        env("AIMASS_MODEL_NAME", &spec.model.name),
        env("AIMASS_MODEL_VERSION", w.version.version),
        env("AIMASS_PORT", SERVER_PORT),
        env("AIMASS_ADMIN_PORT", ADMIN_PORT),
        env("AIMASS_MAX_BATCH_SIZE", spec.batching.max_batch_size),
        env(
            "AIMASS_MAX_QUEUE_DELAY_MICROS",
            spec.batching.max_queue_delay_micros,
        ),
        env("AIMASS_QUEUE_CAPACITY", spec.batching.queue_capacity),
        env("AIMASS_DRAIN_TIMEOUT_SECONDS", drain),
    ];
    if let Some(sha) = &w.version.sha256 {
        vars.push(env("AIMASS_MODEL_SHA256", sha));
    }
    if let Some(timeout) = spec.server.request_timeout_millis {
        vars.push(env("AIMASS_REQUEST_TIMEOUT_MILLIS", timeout));
    }
    if let Some(millis) = md
        .annotations()
        .get(LATENCY_FAULT_ANNOTATION)
        .and_then(|v| v.parse::<u64>().ok())
    {
        vars.push(env("AIMASS_FAULT_LATENCY_MILLIS", millis));
    }
    if let Some(millis) = md
        .annotations()
        .get(SIGNAL_LATENCY_FAULT_ANNOTATION)
        .and_then(|v| v.parse::<u64>().ok())
    {
        vars.push(env("AIMASS_FAULT_LATENCY_ON_SIGNAL_MILLIS", millis));
    }
    if w.track == Track::Canary
        && let Some(every) = md
            .annotations()
            .get(CANARY_FAULT_ANNOTATION)
            .and_then(|v| v.parse::<u64>().ok())
    {
        vars.push(env("AIMASS_FAULT_ERROR_EVERY", every));
    }
    let enforced = spec.security.mode == SecurityMode::Enforced;
    if enforced {
        vars.extend(security_env(md, w.key_service));
    }
    if let Some(tls) = &spec.security.tls {
        vars.extend(tls_env(tls));
    }
    vars.extend(secret_env(md, w.secret));
    vars.extend(spec.server.env.iter().cloned());
    let (volumes, volume_mounts): (Vec<_>, Vec<_>) = volumes(md).into_iter().unzip();

    let container = Container {
        name: "server".into(),
        image: Some(
            spec.server
                .image
                .clone()
                .unwrap_or_else(|| w.default_image.to_owned()),
        ),
        env: Some(vars),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: SERVER_PORT,
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("admin".into()),
                container_port: ADMIN_PORT,
                ..ContainerPort::default()
            },
        ]),
        volume_mounts: (!volume_mounts.is_empty()).then_some(volume_mounts),
        resources: spec.resources.clone(),
        readiness_probe: Some(http_probe("/v2/health/ready", 1, 2)),
        liveness_probe: Some(http_probe("/v2/health/live", 10, 3)),
        // Stop new traffic first: the endpoint leaves every proxy while the
        // server still answers, then SIGTERM starts the drain.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: PRE_STOP_SECONDS,
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        security_context: Some(security::container(true)),
        ..Container::default()
    };
    Deployment {
        metadata: labels::owned_meta(md, deployment_name(md, w.track), deployment_labels(md)),
        spec: Some(DeploymentSpec {
            replicas: Some(w.replicas),
            selector: LabelSelector {
                match_labels: Some(selector),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            revision_history_limit: Some(5),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    termination_grace_period_seconds: Some(PRE_STOP_SECONDS + i64::from(drain) + 5),
                    service_account_name: if enforced {
                        Some(access::service_account_name(md))
                    } else {
                        spec.service_account_name.clone()
                    },
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    node_selector: (!spec.node_selector.is_empty())
                        .then(|| spec.node_selector.clone()),
                    tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
                    affinity: Some(affinity(md)),
                    security_context: Some(security::pod(Some(security::NONROOT_UID))),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The server's settings for checking callers and recording calls.
fn security_env(md: &ModelDeployment, key_service: &crate::key_service::Endpoint) -> Vec<EnvVar> {
    let security = &md.spec.security;
    let field = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
    };
    let mut vars = vec![
        env("AIMASS_AUTH", "kubernetes"),
        env("AIMASS_AUTH_AUDIENCE", &security.audience),
        env("AIMASS_API_CLIENTS", "true"),
        env("AIMASS_AUDIT_LOG", format!("{AUDIT_DIR}/calls.jsonl")),
        env("AIMASS_AUDIT_KEY_SERVICE", &key_service.url),
        env(crate::key_service::PUBLIC_KEY_ENV, &key_service.public_key),
        env(
            "AIMASS_AUDIT_KEY_SERVICE_TOKEN_FILE",
            format!("{KEY_SERVICE_TOKEN_DIR}/token"),
        ),
        env(
            "AIMASS_AUDIT_FAILURE_POLICY",
            match security.audit_failure_policy {
                AuditFailurePolicy::FailClosed => "fail-closed",
                AuditFailurePolicy::FailOpen => "fail-open",
            },
        ),
        field("POD_NAMESPACE", "metadata.namespace"),
        field("POD_NAME", "metadata.name"),
        field("NODE_NAME", "spec.nodeName"),
    ];
    if let Some(rate) = security.requests_per_second {
        vars.push(env("AIMASS_RATE_LIMIT_PER_SECOND", rate));
    }
    if let Some(burst) = security.burst {
        vars.push(env("AIMASS_RATE_LIMIT_BURST", burst));
    }
    vars.push(env(
        "AIMASS_RATE_LIMIT_PER_ADDRESS_PER_SECOND",
        security
            .requests_per_second_per_address
            .unwrap_or(DEFAULT_PER_ADDRESS),
    ));
    if let Some(archive) = &security.audit_archive {
        vars.push(env("AIMASS_AUDIT_ARCHIVE", &archive.prefix));
        if let Some(seconds) = archive.interval_seconds {
            vars.push(env("AIMASS_AUDIT_ARCHIVE_INTERVAL_SECONDS", seconds));
        }
        if let Some(mebibytes) = archive.segment_mebibytes {
            vars.push(env(
                "AIMASS_AUDIT_SEGMENT_BYTES",
                i64::from(mebibytes) * 1024 * 1024,
            ));
        }
    }
    if !security.audit_payload.is_empty() {
        // The server reads the same rules: {"input", "policy", "buckets"}.
        vars.push(env(
            "AIMASS_AUDIT_PAYLOAD",
            serde_json::to_string(&security.audit_payload).unwrap_or_default(),
        ));
    }
    vars
}

/// Environment from Secrets: the Model's storage credentials, and the audit
/// archive's under `AIMASS_AUDIT_ARCHIVE_`, so the two stores' settings
/// cannot mix.
/// The allow-listed keys of the storage Secret and of the audit archive's
/// (prefixed `AIMASS_AUDIT_ARCHIVE_`).
fn secret_env(md: &ModelDeployment, storage: Option<&str>) -> Vec<EnvVar> {
    let archive = (md.spec.security.mode == SecurityMode::Enforced)
        .then_some(md.spec.security.audit_archive.as_ref())
        .flatten()
        .and_then(|a| a.secret_ref.as_ref());
    storage
        .map(|name| crate::storage::secret_env(name, ""))
        .into_iter()
        .chain(
            archive.map(|secret| crate::storage::secret_env(&secret.name, "AIMASS_AUDIT_ARCHIVE_")),
        )
        .flatten()
        .collect()
}

/// The server's TLS files, from the mounted Secrets.
fn tls_env(tls: &TlsSpec) -> Vec<EnvVar> {
    let mut vars = vec![
        env("AIMASS_TLS_CERT_FILE", format!("{TLS_DIR}/tls.crt")),
        env("AIMASS_TLS_KEY_FILE", format!("{TLS_DIR}/tls.key")),
    ];
    if let Some(clients) = &tls.client_certificates {
        vars.push(env(
            "AIMASS_CLIENT_CA_FILE",
            format!("{CLIENT_CA_DIR}/ca.crt"),
        ));
        // Certificates authenticate as `partner:<CA Secret>:<CN>`.
        vars.push(env("AIMASS_CLIENT_CA_NAME", &clients.ca_secret.name));
        if clients.check_revocation {
            vars.push(env(
                "AIMASS_CLIENT_CRL_FILE",
                format!("{CLIENT_CA_DIR}/ca.crl"),
            ));
        }
    }
    vars
}

/// The volumes the server needs, each with its mount: the audit trail and
/// its key when Enforced, the TLS Secrets when asked for.
fn volumes(md: &ModelDeployment) -> Vec<(Volume, VolumeMount)> {
    let secret = |name: &str, secret: String, dir: &str| {
        (
            Volume {
                name: name.into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
            VolumeMount {
                name: name.into(),
                mount_path: dir.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        )
    };
    let security = &md.spec.security;
    let mut volumes = Vec::new();
    if security.mode == SecurityMode::Enforced {
        volumes.push((
            Volume {
                name: "audit".into(),
                // Bounded: a trail that outgrows it (no archive, or a
                // flood) gets the pod evicted, never the node's disk full.
                empty_dir: Some(EmptyDirVolumeSource {
                    size_limit: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                        AUDIT_VOLUME_LIMIT.into(),
                    )),
                    ..EmptyDirVolumeSource::default()
                }),
                ..Volume::default()
            },
            VolumeMount {
                name: "audit".into(),
                mount_path: AUDIT_DIR.into(),
                ..VolumeMount::default()
            },
        ));
        // The token the key service reviews: bound to the pod, for the key
        // service only.
        volumes.push((
            Volume {
                name: "audit-key-token".into(),
                projected: Some(ProjectedVolumeSource {
                    sources: Some(vec![VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            audience: Some(aimass_audit::key_handover::AUDIENCE.into()),
                            expiration_seconds: Some(KEY_SERVICE_TOKEN_SECONDS),
                            path: "token".into(),
                        }),
                        ..VolumeProjection::default()
                    }]),
                    ..ProjectedVolumeSource::default()
                }),
                ..Volume::default()
            },
            VolumeMount {
                name: "audit-key-token".into(),
                mount_path: KEY_SERVICE_TOKEN_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ));
    }
    if let Some(tls) = &security.tls {
        volumes.push(secret("tls", tls.certificate_secret.name.clone(), TLS_DIR));
        if let Some(clients) = &tls.client_certificates {
            volumes.push(secret(
                "client-ca",
                clients.ca_secret.name.clone(),
                CLIENT_CA_DIR,
            ));
        }
    }
    volumes
}

/// The Service in front of every track.
pub fn service(md: &ModelDeployment) -> Service {
    let selector = selector_labels(md);
    Service {
        metadata: labels::owned_meta(md, md.name_any(), deployment_labels(md)),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: SERVICE_PORT,
                target_port: Some(IntOrString::String("http".into())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The NetworkPolicy of the servers: the API port is open (every call
/// there is authenticated), the admin port (probes, metrics, warm-up,
/// audit checkpoints) answers only the operator's namespace and the
/// namespaces of the metrics scrapers the cluster admin named. The node's
/// own traffic (the kubelet's probes) is always allowed.
pub fn network_policy(
    md: &ModelDeployment,
    operator_namespace: &str,
    scraper_namespaces: &[String],
) -> NetworkPolicy {
    let selector = selector_labels(md);
    let port = |name: &str| NetworkPolicyPort {
        port: Some(IntOrString::String(name.into())),
        ..NetworkPolicyPort::default()
    };
    let mut admins = vec![operator_namespace.to_owned()];
    admins.extend(scraper_namespaces.iter().cloned());
    NetworkPolicy {
        metadata: labels::owned_meta(md, md.name_any(), deployment_labels(md)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    ports: Some(vec![port("http")]),
                    from: None,
                },
                NetworkPolicyIngressRule {
                    ports: Some(vec![port("admin")]),
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector {
                            match_expressions: Some(vec![LabelSelectorRequirement {
                                key: "kubernetes.io/metadata.name".into(),
                                operator: "In".into(),
                                values: Some(admins),
                            }]),
                            ..LabelSelector::default()
                        }),
                        ..NetworkPolicyPeer::default()
                    }]),
                },
            ]),
            ..NetworkPolicySpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(ports(0), [IntOrString::String("http".into())]);
        assert!(rules[0].from.is_none(), "the API port is open");
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
        let md = md(
            "  security: {auditPayload: [{input: amount, policy: Bucket, buckets: [10, 100]}]}\n",
        );
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
            !env.contains_key("AIMASS_CLIENT_CA_FILE")
                && !env.contains_key("AIMASS_CLIENT_CRL_FILE")
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
}
