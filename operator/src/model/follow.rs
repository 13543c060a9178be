//! Following a Model of another namespace (`spec.source.promotedFrom`):
//! which version it names, whether that version carries the evidence and
//! the approvals this Model requires (`plan`, pure), and recording it here,
//! artifact referenced where it lies and pinned by its sha256, with its
//! provenance.
//!
//! The operator reads the source Model with its own rights: the chart's
//! admission policy has already checked that whoever set `promotedFrom` may
//! `promote` models in the source namespace. It never reads the artifact: the
//! validation Job runs in this namespace, under this namespace's identity.

use std::collections::BTreeSet;

use aimass_crds::artifact::Artifact;
use aimass_crds::v1alpha1::conditions::{reasons, types};
use aimass_crds::v1alpha1::{
    ApprovalRecord, FollowStatus, Model, ModelApproval, ModelStatus, ModelVersion, PromotedFrom,
    Provenance, ProvenanceStep, REQUESTED_BY_ANNOTATION, VersionPhase,
};
use aimass_storage::Location;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};

use super::import::{Import, Recorder, Source, import, source_secret, step_here};
use crate::conditions::{self, Wanted};
use crate::context::Context;
use crate::error::{Error, is_forbidden, is_not_found};

/// The most ModelApprovals of a namespace read in one reconcile.
const APPROVALS_READ: u32 = 1000;

/// What following decides.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Nothing is recorded now: a reason from `conditions::reasons` and why.
    Wait {
        /// Why, as a condition reason.
        reason: &'static str,
        /// Why, in a sentence.
        message: String,
    },
    /// The version followed is recorded here as this version.
    Done(i64),
    /// Record the version: validate the artifact, expect this digest.
    Record(Box<Promotion>),
}

/// A version to record here, and what it carries.
#[derive(Clone, Debug, PartialEq)]
pub struct Promotion {
    /// `namespace/model:version` of the source.
    pub source: String,
    /// The source's record.
    pub from: ModelVersion,
    /// The digest proven and approved.
    pub sha256: String,
    /// The provenance up to the source, this environment's step last
    /// (its version number filled in when recorded).
    pub provenance: Provenance,
}

impl Plan {
    fn wait(reason: &'static str, message: impl Into<String>) -> Self {
        Plan::Wait {
            reason,
            message: message.into(),
        }
    }
}

/// What the Model made of one approval of the version followed now.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// The ModelApproval.
    pub name: String,
    /// Its `Counted` condition.
    pub counted: bool,
    /// The condition's reason.
    pub reason: &'static str,
    /// The condition's message.
    pub message: String,
}

/// `namespace/model:version`, how a version in another environment is named.
pub fn source_name(from: &PromotedFrom, version: i64) -> String {
    format!("{}/{}:{version}", from.namespace, from.model)
}

/// Decides what following `from` means now for `target`, given the source
/// Model (`None`: not found) and the approvals in the target's namespace,
/// and what it made of the approvals of the version followed.
pub fn plan(
    target: &Model,
    from: &PromotedFrom,
    source: Option<&Model>,
    approvals: &[ModelApproval],
    now: &Time,
) -> (Plan, Vec<Verdict>) {
    let mut verdicts = Vec::new();
    let plan = decide(target, from, source, approvals, now, &mut verdicts);
    (plan, verdicts)
}

fn decide(
    target: &Model,
    from: &PromotedFrom,
    source: Option<&Model>,
    approvals: &[ModelApproval],
    now: &Time,
    verdicts: &mut Vec<Verdict>,
) -> Plan {
    let namespace = target.namespace().unwrap_or_default();
    if from.namespace == namespace {
        return Plan::wait(
            reasons::SOURCE_NOT_FOUND,
            "promotedFrom names this Model's own namespace: environments are namespaces, follow a Model of another one",
        );
    }
    let Some(source) = source else {
        return Plan::wait(
            reasons::SOURCE_NOT_FOUND,
            format!(
                "Model {}/{} does not exist (or the operator does not watch {})",
                from.namespace, from.model, from.namespace
            ),
        );
    };
    let status = source.status.clone().unwrap_or_default();
    let wanted = match (&from.alias, from.version) {
        (Some(alias), _) => match status.aliases.get(alias) {
            Some(v) => *v,
            None => {
                return Plan::wait(
                    reasons::SOURCE_NOT_FOUND,
                    format!(
                        "Model {}/{} has no alias {alias} yet",
                        from.namespace, from.model
                    ),
                );
            }
        },
        (None, Some(version)) => version,
        (None, None) => {
            return Plan::wait(reasons::SOURCE_NOT_FOUND, "promotedFrom names no version");
        }
    };
    let name = source_name(from, wanted);
    let Some(version) = status
        .versions
        .iter()
        .find(|v| v.version == wanted && v.phase == VersionPhase::Ready)
    else {
        return Plan::wait(
            reasons::SOURCE_NOT_FOUND,
            format!("{name} is not a Ready version"),
        );
    };
    let Some(sha256) = version.sha256.clone() else {
        return Plan::wait(
            reasons::SOURCE_NOT_FOUND,
            format!("{name} has no recorded sha256"),
        );
    };
    let recorded = target.status.as_ref().map(|s| s.versions.as_slice());
    // Recorded already, or refused (a changed artifact stays refused).
    if let Some(done) = recorded.unwrap_or_default().iter().find(|v| {
        came_from(v, &from.namespace, &from.model, wanted)
            && (v.sha256.as_deref() == Some(&sha256) || v.phase == VersionPhase::Rejected)
    }) {
        return Plan::Done(done.version);
    }
    let mut provenance = history(source, version);
    // The source's own evidence for this version, if it was proven there.
    if let Some(last) = provenance.steps.last_mut() {
        last.evidence = status
            .evidence
            .iter()
            .rev()
            .find(|e| e.version == wanted && e.sha256.as_deref() == Some(&sha256))
            .cloned();
    }
    let requires = target.spec.promotion.requires.clone().unwrap_or_default();
    let proven: BTreeSet<&str> = provenance.proven_in().collect();
    let missing: Vec<&str> = requires
        .evidence_from
        .iter()
        .map(String::as_str)
        .filter(|ns| !proven.contains(ns))
        .collect();
    if !missing.is_empty() {
        let had = if proven.is_empty() {
            "none".to_owned()
        } else {
            proven.iter().copied().collect::<Vec<_>>().join(", ")
        };
        return Plan::wait(
            reasons::EVIDENCE_MISSING,
            format!(
                "{name} has no evidence from {} (proven in: {had}); this Model requires it: promote the version through {} first",
                missing.join(", "),
                missing.join(", ")
            ),
        );
    }
    let requester = target.annotations().get(REQUESTED_BY_ANNOTATION).cloned();
    let counted = match judge_approvals(
        target,
        (&sha256, &name),
        &provenance,
        requester.as_deref(),
        approvals,
        verdicts,
    ) {
        Ok(counted) => counted,
        Err(wait) => return wait,
    };
    provenance.steps.push(step_here(target, counted, now));
    Plan::Record(Box::new(Promotion {
        source: name,
        from: version.clone(),
        sha256,
        provenance,
    }))
}

/// Whether `version` was recorded from version `number` of `namespace/model`.
fn came_from(version: &ModelVersion, namespace: &str, model: &str, number: i64) -> bool {
    version
        .provenance
        .as_ref()
        .and_then(|p| p.steps.iter().rev().nth(1))
        .is_some_and(|s| s.namespace == namespace && s.model == model && s.version == number)
}

/// The provenance of `version` of `source`, up to the source itself: its
/// own record's, or a first step made from its lineage.
fn history(source: &Model, version: &ModelVersion) -> Provenance {
    let mut provenance = version.provenance.clone().unwrap_or_default();
    let namespace = source.namespace().unwrap_or_default();
    let here = |s: &ProvenanceStep| s.namespace == namespace && s.model == source.name_any();
    if !provenance.steps.last().is_some_and(here) {
        provenance.steps.push(ProvenanceStep {
            namespace,
            model: source.name_any(),
            version: version.version,
            requested_by: None,
            training_job: version
                .lineage
                .as_ref()
                .and_then(|l| l.training_job.clone()),
            evidence: None,
            approvals: Vec::new(),
            time: version.created.clone(),
        });
    }
    provenance
}

/// The approvals that count for promoting `sha256` into `target`, or why
/// the promotion waits. Approvals by whoever asked for the version's
/// training, for its promotion into an environment on its way, or for this
/// promotion do not count.
fn judge_approvals(
    target: &Model,
    (sha256, name): (&str, &str),
    provenance: &Provenance,
    requester: Option<&str>,
    approvals: &[ModelApproval],
    verdicts: &mut Vec<Verdict>,
) -> Result<Vec<ApprovalRecord>, Plan> {
    let needed = usize::try_from(
        target
            .spec
            .promotion
            .requires
            .as_ref()
            .map_or(0, |r| r.approvals),
    )
    .unwrap_or(0);
    if needed == 0 {
        return Ok(Vec::new());
    }
    let trainer = provenance.origin().and_then(|o| o.requested_by.as_deref());
    let (Some(requester), Some(trainer)) = (requester, trainer) else {
        let whose = if requester.is_none() {
            format!("this Model (annotation {REQUESTED_BY_ANNOTATION})")
        } else {
            format!("the run that trained {name}")
        };
        return Err(Plan::wait(
            reasons::REQUESTER_UNKNOWN,
            format!(
                "{name} needs {needed} approval(s), but who asked for {whose} is not known, so no approval can be told apart from it; set {REQUESTED_BY_ANNOTATION} to your own user name"
            ),
        ));
    };
    // Everyone who asked for the version on its way here, and what for.
    let mut askers: Vec<(&str, String)> = vec![(trainer, "asked for its training".to_owned())];
    askers.extend(provenance.steps.iter().skip(1).filter_map(|s| {
        Some((
            s.requested_by.as_deref()?,
            format!("asked for its promotion into {}", s.namespace),
        ))
    }));
    askers.push((requester, "asked for this promotion".to_owned()));
    let mut counted: Vec<ApprovalRecord> = Vec::new();
    let mut refused = Vec::new();
    let mut relevant: Vec<&ModelApproval> = approvals
        .iter()
        .filter(|a| a.spec.model == target.name_any() && a.spec.sha256 == sha256)
        .collect();
    relevant.sort_by_key(|a| a.creation_timestamp().map(|t| t.0));
    for approval in relevant {
        let by = approval.spec.approved_by.as_str();
        if let Some((_, role)) = askers.iter().find(|(who, _)| *who == by) {
            let message = format!(
                "{} by {by} does not count: {by} {role}",
                approval.name_any()
            );
            verdicts.push(Verdict {
                name: approval.name_any(),
                counted: false,
                reason: reasons::SAME_IDENTITY,
                message: message.clone(),
            });
            refused.push(message);
        } else if counted.len() < needed && counted.iter().all(|c| c.approved_by != by) {
            verdicts.push(Verdict {
                name: approval.name_any(),
                counted: true,
                reason: reasons::COUNTED,
                message: format!("counted for promoting {name} into {}", target.name_any()),
            });
            counted.push(ApprovalRecord {
                name: approval.name_any(),
                approved_by: by.to_owned(),
                time: approval
                    .creation_timestamp()
                    .unwrap_or(Time(jiff::Timestamp::UNIX_EPOCH)),
                comment: approval.spec.comment.clone(),
            });
        }
    }
    if counted.len() >= needed {
        return Ok(counted);
    }
    let still = needed - counted.len();
    let mut names: Vec<&str> = askers.iter().map(|(who, _)| *who).collect();
    names.dedup();
    let how = format!(
        "{still} more approval(s) by someone other than {} needed: a ModelApproval with model {}, sha256 {sha256} and approvedBy set to the approver's own user name",
        names.join(", "),
        target.name_any()
    );
    Err(if refused.is_empty() {
        Plan::wait(
            reasons::AWAITING_APPROVAL,
            format!("{name} waits for approval; {how}"),
        )
    } else {
        Plan::wait(
            reasons::SAME_IDENTITY,
            format!("{name}: {}; {how}", refused.join("; ")),
        )
    })
}

/// `namespace/model:version` of the environment the promoted alias's
/// version came from, if it came from one.
pub fn champion_from(model: &Model, status: &ModelStatus) -> Option<String> {
    let number = status.aliases.get(&model.spec.promotion.alias)?;
    let version = status.versions.iter().find(|v| v.version == *number)?;
    let step = version.provenance.as_ref()?.steps.iter().rev().nth(1)?;
    Some(format!(
        "{}/{}:{}",
        step.namespace, step.model, step.version
    ))
}

/// `Promoted`: whether the version followed now is recorded here.
pub fn promoted_condition(follow: &FollowStatus) -> Wanted<'static> {
    let reason = match follow.reason.as_deref() {
        Some(reasons::PROMOTED) => reasons::AS_EXPECTED,
        Some(reasons::SOURCE_NOT_FOUND) => reasons::SOURCE_NOT_FOUND,
        Some(reasons::EVIDENCE_MISSING) => reasons::EVIDENCE_MISSING,
        Some(reasons::AWAITING_APPROVAL) => reasons::AWAITING_APPROVAL,
        Some(reasons::SAME_IDENTITY) => reasons::SAME_IDENTITY,
        Some(reasons::REQUESTER_UNKNOWN) => reasons::REQUESTER_UNKNOWN,
        Some(reasons::DIGEST_MISMATCH) => reasons::DIGEST_MISMATCH,
        Some(reasons::ARTIFACT_INVALID) => reasons::ARTIFACT_INVALID,
        _ => reasons::VALIDATING,
    };
    Wanted {
        type_: types::PROMOTED,
        status: reason == reasons::AS_EXPECTED,
        reason,
        message: follow.message.clone().unwrap_or_default(),
    }
}

/// Where following stands after a reconcile, for status.
pub struct Followed {
    /// For `status.follow`.
    pub status: FollowStatus,
    /// Importing the version followed: recorded now, validating, or
    /// blocked; `None` when nothing is imported.
    pub progress: Option<Import>,
}

/// Follows `spec.source.promotedFrom`: reads the source Model and the
/// approvals, and records the version when the plan says so.
pub async fn follow(
    ctx: &Context,
    model: &Model,
    status: &ModelStatus,
    registry: Option<&Location>,
    arrived: &[ModelVersion],
    now: &Time,
) -> Result<Option<Followed>, Error> {
    let Some(from) = model.spec.source.promoted_from.clone() else {
        return Ok(None);
    };
    let namespace = model.namespace().unwrap_or_default();
    let source = match Api::<Model>::namespaced(ctx.client.clone(), &from.namespace)
        .get(&from.model)
        .await
    {
        Ok(source) => Some(source),
        Err(e) if is_not_found(&e) || is_forbidden(&e) => None,
        Err(e) => return Err(Error::kube("reading the Model followed")(e)),
    };
    // Tenant objects, read only when approvals are required: the first
    // APPROVALS_READ of them.
    let required = model
        .spec
        .promotion
        .requires
        .as_ref()
        .is_some_and(|r| r.approvals > 0);
    let approvals = if required {
        Api::<ModelApproval>::namespaced(ctx.client.clone(), &namespace)
            .list(&ListParams::default().limit(APPROVALS_READ))
            .await
            .map_err(Error::kube("listing ModelApprovals"))?
            .items
    } else {
        Vec::new()
    };
    // What storage holds counts as recorded too: the cached status may not
    // show this reconcile's predecessor's record yet.
    let recorded = super::registry::merge(&status.versions, arrived.to_vec());
    let mut current = model.clone();
    current.status = Some(ModelStatus {
        versions: recorded.clone(),
        ..status.clone()
    });
    let mut follow = FollowStatus::default();
    let (plan, verdicts) = plan(&current, &from, source.as_ref(), &approvals, now);
    record_verdicts(ctx, &namespace, &approvals, verdicts, now).await?;
    let promotion = match plan {
        Plan::Wait { reason, message } => {
            follow.reason = Some(reason.to_owned());
            follow.message = Some(message);
            if let Some(s) = source.as_ref().and_then(|s| followed(s, &from)) {
                follow.source = Some(source_name(&from, s.version));
                follow.sha256 = s.sha256.clone();
            }
            return Ok(Some(Followed {
                status: follow,
                progress: None,
            }));
        }
        Plan::Done(version) => {
            follow.source = source
                .as_ref()
                .and_then(|s| followed(s, &from))
                .map(|s| source_name(&from, s.version));
            if let Some(record) = recorded.iter().find(|v| v.version == version) {
                follow.sha256 = record.sha256.clone();
                settled(&mut follow, record);
            }
            return Ok(Some(Followed {
                status: follow,
                progress: None,
            }));
        }
        Plan::Record(promotion) => promotion,
    };
    follow.source = Some(promotion.source.clone());
    follow.sha256 = Some(promotion.sha256.clone());
    let wanted = Source {
        uri: &promotion.from.uri,
        sha256: None,
        secret: source_secret(model),
    };
    let record: Recorder<'_> = {
        let promotion = promotion.clone();
        Box::new(move |version, outcome| promoted(&promotion, version, outcome))
    };
    let progress = import(ctx, model, status, registry, &wanted, arrived, record).await?;
    match &progress {
        Import::Recorded(version) => settled(&mut follow, version),
        _ => {
            follow.reason = Some(reasons::VALIDATING.to_owned());
            follow.message = Some(format!("validating {} in this namespace", promotion.source));
        }
    }
    Ok(Some(Followed {
        status: follow,
        progress: Some(progress),
    }))
}

/// `follow` for a version recorded here: `Promoted`, or the reason it was
/// refused (`DigestMismatch`, `ArtifactInvalid`).
fn settled(follow: &mut FollowStatus, record: &ModelVersion) {
    follow.version = Some(record.version);
    if record.phase == VersionPhase::Ready {
        follow.reason = Some(reasons::PROMOTED.to_owned());
        follow.message = Some(format!("recorded as version {}", record.version));
    } else {
        follow.reason = record.reason.clone();
        follow.message = record.message.clone();
    }
}

/// Writes each approval's `Counted` condition when it changed.
async fn record_verdicts(
    ctx: &Context,
    namespace: &str,
    approvals: &[ModelApproval],
    verdicts: Vec<Verdict>,
    now: &Time,
) -> Result<(), Error> {
    let api = Api::<ModelApproval>::namespaced(ctx.client.clone(), namespace);
    for verdict in verdicts {
        let Some(approval) = approvals.iter().find(|a| a.name_any() == verdict.name) else {
            continue;
        };
        let old = approval.status.clone().unwrap_or_default();
        let mut status = old.clone();
        let wanted = Wanted {
            type_: types::COUNTED,
            status: verdict.counted,
            reason: verdict.reason,
            message: verdict.message,
        };
        conditions::set(
            &mut status.conditions,
            wanted,
            approval.metadata.generation,
            now,
        );
        if status != old {
            api.patch_status(
                &verdict.name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": status })),
            )
            .await
            .map_err(Error::kube(format!(
                "writing the status of ModelApproval {}",
                verdict.name
            )))?;
        }
    }
    Ok(())
}

/// The version of `source` that `from` names now, if any.
fn followed<'a>(source: &'a Model, from: &PromotedFrom) -> Option<&'a ModelVersion> {
    let status = source.status.as_ref()?;
    let number = match &from.alias {
        Some(alias) => *status.aliases.get(alias)?,
        None => from.version?,
    };
    status.versions.iter().find(|v| v.version == number)
}

/// The record of `promotion` as version `version` here, from what the
/// validation found: Rejected (`DigestMismatch`) when the artifact is not
/// the one proven and approved.
pub fn promoted(
    promotion: &Promotion,
    version: i64,
    outcome: Result<Artifact, String>,
) -> ModelVersion {
    let from = &promotion.from;
    let mut record = ModelVersion {
        version,
        phase: VersionPhase::Ready,
        reason: None,
        message: None,
        uri: from.uri.clone(),
        sha256: Some(promotion.sha256.clone()),
        size_bytes: from.size_bytes,
        signature: None,
        metrics: from.metrics.clone(),
        lineage: from.lineage.clone(),
        provenance: Some(promotion.provenance.clone().numbered(version)),
        created: Time(jiff::Timestamp::now()),
        baseline: None,
    };
    match outcome {
        Ok(artifact) if artifact.sha256 == promotion.sha256 => {
            record.size_bytes = Some(artifact.size_bytes);
            record.signature = Some(artifact.signature);
            // The baseline travels with the version when it is still the
            // one recorded where the version was proven.
            record.baseline = artifact
                .baseline
                .filter(|b| from.baseline.as_ref().is_some_and(|f| f.sha256 == b.sha256));
        }
        Ok(artifact) => {
            record.phase = VersionPhase::Rejected;
            record.reason = Some(reasons::DIGEST_MISMATCH.into());
            record.message = Some(format!(
                "the artifact at {} now has sha256 {}, not {} as proven and approved in {}: it changed after approval and is refused",
                from.uri, artifact.sha256, promotion.sha256, promotion.source
            ));
        }
        Err(message) => {
            record.phase = VersionPhase::Rejected;
            record.reason = Some(reasons::ARTIFACT_INVALID.into());
            record.message = Some(message);
        }
    }
    record
}

#[cfg(test)]
mod tests;
