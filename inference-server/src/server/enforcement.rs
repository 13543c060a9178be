//! The security layer a server starts with: the gates in front of every
//! route (`--auth kubernetes`) and the audit trail behind them
//! (`--audit-log`), with the keys that chain and seal it.

use std::sync::Arc;

use tracing::{info, warn};

use crate::Error;
use crate::config::{AuditFailurePolicy, AuthMode, Config};
use crate::metrics::Metrics;
use crate::security::{ApiKeys, Authorizer, Enforcement, Guard, Limits, TokenAuthenticator};

/// The security layer the configuration asks for: gates with `--auth
/// kubernetes`, a trail with `--audit-log`, nothing otherwise.
pub(super) async fn enforcement(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> Result<Option<Enforcement>, Error> {
    let guard = match config.auth {
        AuthMode::None => {
            warn!("--auth none: anyone who reaches the port may call the model");
            None
        }
        AuthMode::Kubernetes => Some(guard(config).await?),
    };
    let Trail {
        audit,
        payload,
        warm_up_key,
    } = trail(config).await?;
    if guard.is_none() && audit.is_none() {
        return Ok(None);
    }
    Ok(Some(Enforcement {
        guard,
        audit,
        target: aimass_audit::Target {
            namespace: config.namespace.clone().unwrap_or_default(),
            model: config.model_name.clone(),
            version: config.model_version.clone(),
            artifact_sha256: config.model_sha256.clone().unwrap_or_default(),
            pod: config.pod_name.clone(),
            node: config.node_name.clone(),
        },
        fail_open: config.audit_failure_policy == AuditFailurePolicy::FailOpen,
        payload,
        metrics: Arc::clone(metrics),
        warm_up_key,
    }))
}

fn misconfigured(message: &str) -> Error {
    Error::Security(message.to_owned())
}

/// The gates of `--auth kubernetes`: tokens reviewed and calls authorised by
/// the API server, API keys of the namespace's ApiClients, rate limits.
async fn guard(config: &Config) -> Result<Guard, Error> {
    if config.admin_port.is_none_or(|p| p == config.port) {
        return Err(misconfigured(
            "--auth kubernetes needs --admin-port, a port other than --port, for probes and metrics",
        ));
    }
    let namespace = config
        .namespace
        .clone()
        .ok_or_else(|| misconfigured("--auth kubernetes needs --namespace (or POD_NAMESPACE)"))?;
    let client = kube::Client::try_default()
        .await
        .map_err(|e| Error::Security(format!("cannot reach the Kubernetes API: {e}")))?;
    let timeout = std::time::Duration::from_millis(config.auth_timeout_millis);
    let non_zero = |n: u32| std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN);
    let limits = config.rate_limit_per_second.map(|rate| {
        let burst = config.rate_limit_burst.unwrap_or(rate);
        Limits::new(non_zero(rate), non_zero(burst))
    });
    let per_address = config
        .rate_limit_per_address_per_second
        .map(|rate| Limits::new(non_zero(rate), non_zero(rate)));
    let api_keys = config.api_clients.then(|| {
        let keys = Arc::new(ApiKeys::default());
        tokio::spawn(Arc::clone(&keys).follow(kube::Api::namespaced(client.clone(), &namespace)));
        keys
    });
    Ok(Guard {
        api_keys,
        authn: TokenAuthenticator::new(client.clone(), config.auth_audience.clone(), timeout),
        authz: Authorizer::new(client, namespace, config.model_name.clone(), timeout),
        limits,
        per_address,
    })
}

/// The audit trail's parts.
#[derive(Default)]
struct Trail {
    audit: Option<aimass_audit::AuditLog>,
    payload: Option<aimass_audit::payload::PayloadPolicy>,
    /// Servers the operator runs (keys from its key service) take warm-ups
    /// only with its proof, made with the same key.
    warm_up_key: Option<Vec<u8>>,
}

/// The trail of `--audit-log`, chained (and sealed, with a signing key),
/// with the payload policy of `--audit-payload`.
async fn trail(config: &Config) -> Result<Trail, Error> {
    let Some(log) = &config.audit_log else {
        if config.audit_payload.is_some() {
            return Err(misconfigured("--audit-payload needs --audit-log"));
        }
        return Ok(Trail::default());
    };
    let Some((key, seed)) = audit_keys(config).await? else {
        return Err(misconfigured(
            "--audit-log needs --audit-key-file or --audit-key-service",
        ));
    };
    let warm_up_key = config.audit_key_service.is_some().then(|| key.clone());
    let payload = config
        .audit_payload
        .as_deref()
        .map(|policy| aimass_audit::payload::PayloadPolicy::parse(policy, key.clone()))
        .transpose()
        .map_err(Error::Security)?;
    // Rotated only when archived: segments are removed once shipped.
    let mut audit = match config.audit_archive {
        Some(_) => aimass_audit::AuditLog::open_rotating(log, key, config.audit_segment_bytes),
        None => aimass_audit::AuditLog::open(log, key),
    }
    .map_err(|e| Error::Security(e.to_string()))?;
    if let Some(seed) = seed {
        audit =
            audit.sealed_by(aimass_audit::seal::Sealer::from_seed(&seed).map_err(Error::Security)?);
    }
    Ok(Trail {
        audit: Some(audit),
        payload,
        warm_up_key,
    })
}

/// The audit chain's key and the signing seed, when set: from the key
/// service, else from files (a missing signing key file means unsigned
/// checkpoints, said in the log).
async fn audit_keys(config: &Config) -> Result<Option<(Vec<u8>, Option<Vec<u8>>)>, Error> {
    if let (Some(url), Some(public_key)) = (
        &config.audit_key_service,
        &config.audit_key_service_public_key,
    ) {
        let keys = aimass_audit::key_handover::fetch(
            url,
            public_key,
            &config.audit_key_service_token_file,
        )
        .await;
        info!(%url, "the audit keys were handed over");
        let chain = keys.chain_key().map_err(Error::Security)?;
        let seed = keys.signing_seed().map_err(Error::Security)?;
        return Ok(Some((chain, Some(seed))));
    }
    let Some(file) = &config.audit_key_file else {
        return Ok(None);
    };
    let chain = std::fs::read(file).map_err(|e| {
        Error::Security(format!("cannot read the audit key {}: {e}", file.display()))
    })?;
    let seed = match &config.audit_signing_key_file {
        None => None,
        Some(file) => match std::fs::read(file) {
            Ok(seed) => Some(seed),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                warn!(file = %file.display(), "no audit signing key: checkpoints are not sealed");
                None
            }
            Err(e) => {
                return Err(Error::Security(format!(
                    "cannot read the audit signing key {}: {e}",
                    file.display()
                )));
            }
        },
    };
    Ok(Some((chain, seed)))
}
