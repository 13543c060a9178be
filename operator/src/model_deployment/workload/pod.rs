//! A server pod's environment and volumes: what secures it (audience,
//! audit trail and key service, TLS and client CAs), the Secrets it reads,
//! and where it writes.

use super::*;

/// The server's settings for checking callers and recording calls.
pub(super) fn security_env(
    md: &ModelDeployment,
    key_service: &crate::key_service::Endpoint,
) -> Vec<EnvVar> {
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
pub(super) fn secret_env(md: &ModelDeployment, storage: Option<&str>) -> Vec<EnvVar> {
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
pub(super) fn tls_env(tls: &TlsSpec) -> Vec<EnvVar> {
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
pub(super) fn volumes(md: &ModelDeployment) -> Vec<(Volume, VolumeMount)> {
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
