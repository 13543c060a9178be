//! Which version the stable track runs, decided without I/O from what the
//! reconcile observed: the resolved version (for an ensemble, the
//! combination of its members' resolved versions) when it can be served,
//! else the one already deployed (with the problem), else nothing.

use std::collections::{BTreeMap, BTreeSet};

use aimass_crds::v1alpha1::conditions::reasons;
use aimass_crds::v1alpha1::{
    CHALLENGER_ALIAS, Combination, Model, ModelDeployment, ModelSelector, ModelVersion,
};
use aimass_crds::validation;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::{ALLOW_SIGNATURE_CHANGE, ensemble, resolve};

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
    /// The version record (for an ensemble, its combination's).
    pub version: ModelVersion,
    /// The alias it was resolved from, if any.
    pub alias: Option<String>,
    /// The Secret with the credentials to read it.
    pub secret: Option<String>,
    /// For an ensemble, the combination: its members' versions, the rule
    /// and the weights.
    pub combination: Option<Combination>,
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

/// The Secret the servers read every served Model with: one server takes
/// one, so an ensemble whose members name different ones cannot be served.
fn artifact_secret(
    md: &ModelDeployment,
    models: &BTreeMap<String, Model>,
) -> Result<Option<String>, Problem> {
    let secrets: BTreeSet<String> = md
        .spec
        .models()
        .filter_map(|m| models.get(&m.name).and_then(model_secret))
        .collect();
    if secrets.len() > 1 {
        return Err(Problem {
            reason: reasons::MEMBER_INCOMPATIBLE,
            message: format!(
                "the members' Models read their artifacts with different Secrets ({}); one server reads with one",
                secrets.into_iter().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    Ok(secrets.into_iter().next())
}

/// Every Secret serving `md` from its `models` needs, with what each
/// holds.
pub fn needed_secrets(
    md: &ModelDeployment,
    models: &BTreeMap<String, Model>,
) -> Vec<(String, &'static str)> {
    let security = &md.spec.security;
    let mut secrets: Vec<(String, &'static str)> = Vec::new();
    for name in md
        .spec
        .models()
        .filter_map(|m| models.get(&m.name).and_then(model_secret))
    {
        if !secrets.iter().any(|(s, _)| *s == name) {
            secrets.push((name, "holds the credentials to read the model"));
        }
    }
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

/// What is deployed as `number`: the Model's version, or the ensemble's
/// recorded combination.
pub fn deployed(
    md: &ModelDeployment,
    models: &BTreeMap<String, Model>,
    number: i64,
) -> Option<Target> {
    let secret = artifact_secret(md, models).ok().flatten();
    if md.spec.ensemble.is_some() {
        let combination = md
            .status
            .as_ref()?
            .combinations
            .iter()
            .find(|c| c.revision == number)?;
        return Some(Target {
            version: ensemble::as_version(combination),
            alias: None,
            secret,
            combination: Some(combination.clone()),
        });
    }
    let model = models.get(&md.spec.model.as_ref()?.name)?;
    let versions = &model.status.as_ref()?.versions;
    Some(Target {
        version: versions.iter().find(|v| v.version == number)?.clone(),
        alias: None,
        secret,
        combination: None,
    })
}

/// What `md` wants served now, from its `models`.
fn wanted(
    md: &ModelDeployment,
    models: &BTreeMap<String, Model>,
    now: &Time,
) -> Result<Target, Problem> {
    if let Some(spec) = &md.spec.ensemble {
        let recorded = md
            .status
            .as_ref()
            .map(|s| s.combinations.as_slice())
            .unwrap_or_default();
        let combination = ensemble::combination(spec, models, recorded, now)?;
        return Ok(Target {
            version: ensemble::as_version(&combination),
            alias: None,
            secret: artifact_secret(md, models)?,
            combination: Some(combination),
        });
    }
    let selector = md.spec.model.as_ref().ok_or_else(|| Problem {
        reason: reasons::INVALID_SPEC,
        message: "set spec.model or spec.ensemble".into(),
    })?;
    let Some(model) = models.get(&selector.name) else {
        return Err(Problem {
            reason: reasons::REFERENCE_NOT_FOUND,
            message: format!("Model {:?} does not exist in this namespace", selector.name),
        });
    };
    let resolved = resolve::resolve(model, selector).map_err(|u| Problem {
        reason: u.reason,
        message: u.message,
    })?;
    Ok(Target {
        version: resolved.version,
        alias: resolved.alias,
        secret: artifact_secret(md, models)?,
        combination: None,
    })
}

/// The version `md` shadows beside `serving` (`spec.shadow`: an alias of
/// its Model, default `challenger`, or a pinned version); `None` when it
/// has no shadow or the shadow is the version served. It must take the
/// served version's inputs.
pub fn shadow(
    md: &ModelDeployment,
    models: &BTreeMap<String, Model>,
    serving: Option<&ModelVersion>,
) -> Result<Option<ModelVersion>, Problem> {
    let (Some(spec), Some(selector)) = (&md.spec.shadow, &md.spec.model) else {
        return Ok(None);
    };
    let unavailable = |message| Problem {
        reason: reasons::SHADOW_UNAVAILABLE,
        message,
    };
    let model = models.get(&selector.name).ok_or_else(|| {
        unavailable(format!(
            "Model {:?} does not exist in this namespace",
            selector.name
        ))
    })?;
    let wanted = ModelSelector {
        name: selector.name.clone(),
        alias: match spec.version {
            Some(_) => None,
            None => Some(
                spec.alias
                    .clone()
                    .unwrap_or_else(|| CHALLENGER_ALIAS.into()),
            ),
        },
        version: spec.version,
    };
    let shadow = resolve::resolve(model, &wanted)
        .map_err(|u| unavailable(u.message))?
        .version;
    let Some(serving) = serving.filter(|s| s.version != shadow.version) else {
        return Ok(None);
    };
    if let (Some(served), Some(theirs)) = (&serving.signature, &shadow.signature)
        && served.inputs != theirs.inputs
    {
        return Err(unavailable(format!(
            "version {} takes other inputs than version {}: it cannot score the same requests",
            shadow.version, serving.version
        )));
    }
    Ok(Some(shadow))
}

/// Decides the stable track's version from the spec, the served `models`
/// (by name), the version deployed now (`current`) and the Secrets that
/// are `missing`.
pub fn choose(
    md: &ModelDeployment,
    models: &BTreeMap<String, Model>,
    current: Option<i64>,
    missing: &BTreeSet<String>,
    now: &Time,
) -> Choice {
    if let Err(e) = validation::validate_model_deployment(&md.spec) {
        return Choice {
            target: None,
            problem: Some(Problem {
                reason: reasons::INVALID_SPEC,
                message: e.to_string(),
            }),
        };
    }
    let serving = current.and_then(|c| deployed(md, models, c));
    let keep_current = |problem| Choice {
        target: serving.clone(),
        problem: Some(problem),
    };
    let wanted = match wanted(md, models, now) {
        Ok(wanted) => wanted,
        Err(problem) => return keep_current(problem),
    };
    if let Some((name, purpose)) = needed_secrets(md, models)
        .into_iter()
        .find(|(name, _)| missing.contains(name))
    {
        return keep_current(Problem {
            reason: reasons::REFERENCE_NOT_FOUND,
            message: format!("Secret {name:?}, which {purpose}, does not exist"),
        });
    }
    let allowed = md
        .annotations()
        .get(ALLOW_SIGNATURE_CHANGE)
        .is_some_and(|v| v == "true");
    if let Some(serving) = serving
        .as_ref()
        .filter(|s| s.version.version != wanted.version.version)
        && !allowed
        && let (Some(old), Some(new)) = (&serving.version.signature, &wanted.version.signature)
        && let Some(why) = resolve::incompatible(old, new)
    {
        return keep_current(Problem {
            reason: reasons::SIGNATURE_CHANGED,
            message: format!(
                "version {} is not rolled out: {why}; callers would break. Annotate the ModelDeployment with {ALLOW_SIGNATURE_CHANGE}=true once they are updated",
                wanted.version.version
            ),
        });
    }
    Choice {
        target: Some(wanted),
        problem: None,
    }
}

#[cfg(test)]
mod tests;
