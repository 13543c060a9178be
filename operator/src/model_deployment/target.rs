//! Which version the stable track runs, decided without I/O from what the
//! reconcile observed: the resolved version when it can be served, else the
//! one already deployed (with the problem), else nothing.

use std::collections::BTreeSet;

use aimass_crds::v1alpha1::conditions::reasons;
use aimass_crds::v1alpha1::{Model, ModelDeployment, ModelVersion};
use aimass_crds::validation;
use kube::ResourceExt;

use super::{ALLOW_SIGNATURE_CHANGE, resolve};

/// Why the resolved version cannot be served as wanted, for the conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase reason.
    pub reason: &'static str,
    /// A sentence for humans.
    pub message: String,
}

/// The version to run and the Secret that reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The version record.
    pub version: ModelVersion,
    /// The alias it was resolved from, if any.
    pub alias: Option<String>,
    /// The Secret with the credentials to read it.
    pub secret: Option<String>,
}

/// What the stable track should run, and what is wrong, if anything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Choice {
    /// The version to run; `None`: nothing can run.
    pub target: Option<Target>,
    /// Why the resolved version is not the one running (or why nothing
    /// runs).
    pub problem: Option<Problem>,
}

/// The Secret that reads `model`'s artifacts, if any.
pub fn model_secret(model: &Model) -> Option<String> {
    model
        .spec
        .source
        .secret_ref
        .as_ref()
        .or(model
            .spec
            .storage
            .as_ref()
            .and_then(|s| s.secret_ref.as_ref()))
        .map(|s| s.name.clone())
}

/// Every Secret serving `md` from `model` needs, with what each holds.
pub fn needed_secrets(md: &ModelDeployment, model: Option<&Model>) -> Vec<(String, &'static str)> {
    let security = &md.spec.security;
    let mut secrets: Vec<(String, &'static str)> = model
        .and_then(model_secret)
        .map(|name| (name, "holds the credentials to read the model"))
        .into_iter()
        .collect();
    if let Some(tls) = &security.tls {
        secrets.push((
            tls.certificate_secret.name.clone(),
            "holds the servers' TLS certificate",
        ));
        if let Some(clients) = &tls.client_certificates {
            secrets.push((
                clients.ca_secret.name.clone(),
                "holds the CAs of client certificates",
            ));
        }
    }
    if let Some(secret) = security
        .audit_archive
        .as_ref()
        .and_then(|a| a.secret_ref.as_ref())
    {
        secrets.push((secret.name.clone(), "holds the audit archive's credentials"));
    }
    secrets
}

/// Decides the stable track's version from the spec, the Model, the
/// version deployed now (`current`) and the Secrets that are `missing`.
pub fn choose(
    md: &ModelDeployment,
    model: Option<&Model>,
    current: Option<i64>,
    missing: &BTreeSet<String>,
) -> Choice {
    let nothing = |reason, message| Choice {
        target: None,
        problem: Some(Problem { reason, message }),
    };
    if let Err(e) = validation::validate_model_deployment(&md.spec) {
        return nothing(reasons::INVALID_SPEC, e.to_string());
    }
    let Some(model) = model else {
        return nothing(
            reasons::REFERENCE_NOT_FOUND,
            format!(
                "Model {:?} does not exist in this namespace",
                md.spec.model.name
            ),
        );
    };
    let secret = model_secret(model);
    let versions = model.status.clone().unwrap_or_default().versions;
    let serving = current.and_then(|c| versions.iter().find(|v| v.version == c));
    let keep_current = |reason, message| Choice {
        target: serving.map(|record| Target {
            version: record.clone(),
            alias: None,
            secret: secret.clone(),
        }),
        problem: Some(Problem { reason, message }),
    };
    let resolved = match resolve::resolve(model, &md.spec.model) {
        Ok(resolved) => resolved,
        Err(unresolved) => return keep_current(unresolved.reason, unresolved.message),
    };
    if let Some((name, purpose)) = needed_secrets(md, Some(model))
        .into_iter()
        .find(|(name, _)| missing.contains(name))
    {
        return keep_current(
            reasons::REFERENCE_NOT_FOUND,
            format!("Secret {name:?}, which {purpose}, does not exist"),
        );
    }
    let allowed = md
        .annotations()
        .get(ALLOW_SIGNATURE_CHANGE)
        .is_some_and(|v| v == "true");
    if let Some(serving) = serving.filter(|s| s.version != resolved.version.version)
        && !allowed
        && let (Some(old), Some(new)) = (&serving.signature, &resolved.version.signature)
        && let Some(why) = resolve::incompatible(old, new)
    {
        return keep_current(
            reasons::SIGNATURE_CHANGED,
            format!(
                "version {} is not rolled out: {why}; callers would break. Annotate the ModelDeployment with {ALLOW_SIGNATURE_CHANGE}=true once they are updated",
                resolved.version.version
            ),
        );
    }
    Choice {
        target: Some(Target {
            version: resolved.version,
            alias: resolved.alias,
            secret,
        }),
        problem: None,
    }
}

#[cfg(test)]
mod tests;
