//! The objects that serve a ModelDeployment: an `apps/v1` Deployment of
//! inference servers per track (the stable one, and a canary during a canary
//! rollout) and one Service in front of both. Pure.

use std::collections::BTreeMap;

use aimass_crds::v1alpha1::{Combination, ModelDeployment, ModelVersion, SecurityMode};
pub use aimass_crds::v1alpha1::{DEPLOYMENT_LABEL, TRACK_LABEL, VERSION_LABEL};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, HTTPGetAction, Pod, PodAffinityTerm, PodSpec, PodTemplateSpec, Probe, Service,
    ServicePort, ServiceSpec, WeightedPodAffinityTerm,
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
use crate::{labels, security};

mod pod;
use pod::server_container;

/// Port the inference server answers the Open Inference Protocol on.
pub const SERVER_PORT: i32 = 8080;
/// Port the inference server answers the protocol's gRPC service on (on
/// the pods and on the Service): Triton's.
pub const GRPC_PORT: i32 = 8001;
/// Port of the server's probes and metrics, apart from the API so they
/// need no caller credentials.
pub const ADMIN_PORT: i32 = 8081;
/// Where the audit trail is written, on a volume of its own.
const AUDIT_DIR: &str = "/var/log/aimass";
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
/// The server variable holding the digest of the baseline it counts drift
/// against; the monitor reads it back from the pod's spec.
pub const BASELINE_SHA256_VAR: &str = "AIMASS_BASELINE_SHA256";
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
    /// Its label value.
    pub fn as_str(self) -> &'static str {
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
    /// The version to serve (for an ensemble, its combination's record).
    pub version: &'a ModelVersion,
    /// For an ensemble, the combination: the members' artifacts, the rule
    /// and the weights.
    pub combination: Option<&'a Combination>,
    /// The version scored in the shadow, and the share of requests in
    /// percent.
    pub shadow: Option<(&'a ModelVersion, i32)>,
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

/// The in-cluster address of the Open Inference Protocol's gRPC service.
pub fn grpc_address(md: &ModelDeployment) -> String {
    format!(
        "{}.{}.svc:{GRPC_PORT}",
        md.name_any(),
        md.namespace().unwrap_or_default()
    )
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
        md.served_name()
    )
}

pub(super) fn deployment_labels(md: &ModelDeployment) -> BTreeMap<String, String> {
    let mut labels = labels::common("aimass-inference-server", &md.served_name());
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
    let mut selector = selector_labels(md);
    selector.insert(TRACK_LABEL.into(), w.track.as_str().into());
    let mut pod_labels = deployment_labels(md);
    pod_labels.extend(selector.clone());
    pod_labels.insert(VERSION_LABEL.into(), w.version.version.to_string());
    let (container, volumes) = server_container(w);
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
                    termination_grace_period_seconds: Some(
                        PRE_STOP_SECONDS + i64::from(drain_seconds(md)) + 5,
                    ),
                    service_account_name: if spec.security.mode == SecurityMode::Enforced {
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

/// How long a stopping server drains.
fn drain_seconds(md: &ModelDeployment) -> i32 {
    md.spec
        .server
        .drain_timeout_seconds
        .unwrap_or(DEFAULT_DRAIN_SECONDS)
}

/// The Service in front of every track.
pub fn service(md: &ModelDeployment) -> Service {
    let selector = selector_labels(md);
    Service {
        metadata: labels::owned_meta(md, md.name_any(), deployment_labels(md)),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![
                ServicePort {
                    name: Some("http".into()),
                    port: SERVICE_PORT,
                    target_port: Some(IntOrString::String("http".into())),
                    ..ServicePort::default()
                },
                ServicePort {
                    name: Some("grpc".into()),
                    port: GRPC_PORT,
                    target_port: Some(IntOrString::String("grpc".into())),
                    ..ServicePort::default()
                },
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The NetworkPolicy of the servers: the API ports (REST and gRPC) are
/// open (every call there is authenticated), the admin port (probes, metrics, warm-up,
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
                    ports: Some(vec![port("http"), port("grpc")]),
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
mod tests;
