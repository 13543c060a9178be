//! A server pod's container: its environment and volumes, what secures it
//! (audience, audit trail and key service, TLS and client CAs), the Secrets
//! it reads, and where it writes.

use aimass_crds::v1alpha1::{
    AuditFailurePolicy, Combination, ModelDeployment, SecurityMode, TlsSpec,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, Lifecycle,
    LifecycleHandler, ObjectFieldSelector, ProjectedVolumeSource, SecretVolumeSource,
    ServiceAccountTokenProjection, SleepAction, Volume, VolumeMount, VolumeProjection,
};
use kube::ResourceExt;

use super::{
    ADMIN_PORT, AUDIT_DIR, AUDIT_VOLUME_LIMIT, CANARY_FAULT_ANNOTATION, CLIENT_CA_DIR,
    DEFAULT_PER_ADDRESS, GRPC_PORT, KEY_SERVICE_TOKEN_DIR, KEY_SERVICE_TOKEN_SECONDS,
    LATENCY_FAULT_ANNOTATION, PRE_STOP_SECONDS, SERVER_PORT, SIGNAL_LATENCY_FAULT_ANNOTATION,
    TLS_DIR, Track, Workload, drain_seconds, http_probe,
};
use crate::env_var::env;
use crate::security;

/// The inference server's container, and the volumes it mounts.
pub(super) fn server_container(w: &Workload<'_>) -> (Container, Vec<Volume>) {
    let spec = &w.md.spec;
    let (volumes, volume_mounts): (Vec<_>, Vec<_>) = volumes(w.md).into_iter().unzip();
    let container = Container {
        name: "server".into(),
        image: Some(
            spec.server
                .image
                .clone()
                .unwrap_or_else(|| w.default_image.to_owned()),
        ),
        env: Some(server_env(w)),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: SERVER_PORT,
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("grpc".into()),
                container_port: GRPC_PORT,
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
    (container, volumes)
}

/// The server's settings: what to serve and how, then security, TLS,
/// credentials and the spec's own variables last so they win.
fn server_env(w: &Workload<'_>) -> Vec<EnvVar> {
    let md = w.md;
    let spec = &md.spec;
    let mut vars = Vec::new();
    match w.combination {
        Some(combination) => vars.push(env("AIMASS_ENSEMBLE", ensemble_plan(combination))),
        None => {
            vars.push(env("AIMASS_MODEL_URI", &w.version.uri));
            if let Some(sha) = &w.version.sha256 {
                vars.push(env("AIMASS_MODEL_SHA256", sha));
            }
        }
    }
    vars.extend([
        env("AIMASS_MODEL_NAME", md.served_name()),
        env("AIMASS_MODEL_VERSION", w.version.version),
        env("AIMASS_PORT", SERVER_PORT),
        env("AIMASS_ADMIN_PORT", ADMIN_PORT),
        env("AIMASS_GRPC_PORT", GRPC_PORT),
        env("AIMASS_MAX_BATCH_SIZE", spec.batching.max_batch_size),
        env(
            "AIMASS_MAX_QUEUE_DELAY_MICROS",
            spec.batching.max_queue_delay_micros,
        ),
        env("AIMASS_QUEUE_CAPACITY", spec.batching.queue_capacity),
        env("AIMASS_DRAIN_TIMEOUT_SECONDS", drain_seconds(md)),
    ]);
    if spec.drift.enabled
        && let Some(baseline) = &w.version.baseline
    {
        vars.push(env("AIMASS_BASELINE_URI", &baseline.uri));
        vars.push(env(super::BASELINE_SHA256_VAR, &baseline.sha256));
        if !spec.drift.rules.is_empty() {
            let rules: Vec<String> = spec
                .drift
                .rules
                .iter()
                .map(|r| format!("{}={}", r.feature, r.action.as_str()))
                .collect();
            vars.push(env("AIMASS_FEATURE_RULES", rules.join(",")));
        }
    }
    if let Some((shadow, percent)) = w.shadow {
        vars.push(env("AIMASS_SHADOW_URI", &shadow.uri));
        vars.push(env("AIMASS_SHADOW_VERSION", shadow.version));
        vars.push(env("AIMASS_SHADOW_PERCENT", percent));
        if let Some(sha) = &shadow.sha256 {
            vars.push(env("AIMASS_SHADOW_SHA256", sha));
        }
    }
    if let Some(timeout) = spec.server.request_timeout_millis {
        vars.push(env("AIMASS_REQUEST_TIMEOUT_MILLIS", timeout));
    }
    vars.extend(fault_env(w));
    if spec.security.mode == SecurityMode::Enforced {
        vars.extend(security_env(md, w.key_service));
    }
    if let Some(tls) = &spec.security.tls {
        vars.extend(tls_env(tls));
    }
    vars.extend(secret_env(md, w.secret));
    vars.extend(spec.server.env.iter().cloned());
    vars
}

/// An ensemble as the server takes it (`AIMASS_ENSEMBLE`): each member's
/// artifact, digest and weight, and the rule. In the environment, not in
/// arguments: the key service gives audit keys only to servers that run
/// the image's own command line.
fn ensemble_plan(combination: &Combination) -> String {
    let members: Vec<serde_json::Value> = combination
        .members
        .iter()
        .map(|m| {
            let mut member = serde_json::json!({"name": m.name, "uri": m.uri, "weight": m.weight});
            if let Some(sha) = &m.sha256 {
                member["sha256"] = sha.clone().into();
            }
            member
        })
        .collect();
    let mut plan = serde_json::json!({
        "combine": combination.combine.as_flag(),
        "output": combination.output,
        "members": members,
    });
    if let Some(meta) = &combination.meta {
        plan["meta"] =
            serde_json::json!({"name": meta.name, "uri": meta.uri, "sha256": meta.sha256});
    }
    plan.to_string()
}

/// Faults the end-to-end tests inject through annotations.
fn fault_env(w: &Workload<'_>) -> Vec<EnvVar> {
    let annotation = |name: &str| {
        w.md.annotations()
            .get(name)
            .and_then(|v| v.parse::<u64>().ok())
    };
    let mut vars = Vec::new();
    if let Some(millis) = annotation(LATENCY_FAULT_ANNOTATION) {
        vars.push(env("AIMASS_FAULT_LATENCY_MILLIS", millis));
    }
    if let Some(millis) = annotation(SIGNAL_LATENCY_FAULT_ANNOTATION) {
        vars.push(env("AIMASS_FAULT_LATENCY_ON_SIGNAL_MILLIS", millis));
    }
    if w.track == Track::Canary
        && let Some(every) = annotation(CANARY_FAULT_ANNOTATION)
    {
        vars.push(env("AIMASS_FAULT_ERROR_EVERY", every));
    }
    vars
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

/// Environment from Secrets: the allow-listed keys of the Model's storage
/// Secret, and the audit archive's under `AIMASS_AUDIT_ARCHIVE_`, so the
/// two stores' settings cannot mix.
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
