//! Importing `spec.source.uri` as a version: validated in the tenant's
//! namespace by a Job, recorded once.

use std::collections::BTreeMap;

use aimass_crds::artifact::Artifact;
use aimass_crds::v1alpha1::{
    ApprovalRecord, Model, ModelStatus, ModelVersion, ProvenanceStep, REQUESTED_BY_ANNOTATION,
    VersionLineage, VersionPhase,
};
use aimass_storage::Location;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use crate::context::Context;
use crate::error::Error;
use crate::{artifact, storage};

/// Where importing an artifact stands.
pub(super) enum Import {
    /// Its validation Job runs in the tenant's namespace.
    Validating,
    /// Its validation Job cannot start its pod; why.
    Blocked(String),
    /// Validated (or refused) and recorded now.
    Recorded(Box<ModelVersion>),
}

/// An artifact to record as a version.
pub(super) struct Source<'a> {
    /// Where it is.
    pub uri: &'a str,
    /// The digest the validation Job must find, if any.
    pub sha256: Option<&'a str>,
    /// The tenant's Secret to read it with.
    pub secret: Option<&'a str>,
}

/// What the validation said, turned into the version's record by the caller.
pub(super) type Recorder<'a> =
    Box<dyn FnOnce(i64, Result<Artifact, String>) -> ModelVersion + Send + 'a>;

/// The Secret `spec.source.secretRef` names, to read artifacts with.
pub(super) fn source_secret(model: &Model) -> Option<&str> {
    model
        .spec
        .source
        .secret_ref
        .as_ref()
        .map(|s| s.name.as_str())
}

/// The step of a version's provenance that this Model records: who asked
/// for it here (the admission-checked annotation) and the approvals counted;
/// numbered when the version gets its number.
pub(super) fn step_here(
    model: &Model,
    approvals: Vec<ApprovalRecord>,
    now: &Time,
) -> ProvenanceStep {
    ProvenanceStep {
        namespace: model.namespace().unwrap_or_default(),
        model: model.name_any(),
        version: 0,
        requested_by: model.annotations().get(REQUESTED_BY_ANNOTATION).cloned(),
        training_job: None,
        evidence: None,
        approvals,
        time: now.clone(),
    }
}

/// Records `source.uri` unless a version already records it.
pub(super) async fn import_source_uri(
    ctx: &Context,
    model: &Model,
    status: &ModelStatus,
    registry: Option<&Location>,
    uri: &str,
    arrived: &[ModelVersion],
) -> Result<Option<Import>, Error> {
    let expected = model.spec.source.sha256.clone();
    let matches = |v: &ModelVersion| {
        v.lineage.as_ref().and_then(|l| l.imported_from.as_deref()) == Some(uri)
            && (expected.is_none() || v.sha256 == expected || v.phase == VersionPhase::Rejected)
    };
    if status.versions.iter().chain(arrived).any(matches) {
        return Ok(None);
    }
    let wanted = Source {
        uri,
        sha256: expected.as_deref(),
        secret: source_secret(model),
    };
    let declared = model.spec.source.provenance.clone().map(|mut provenance| {
        provenance
            .steps
            .push(step_here(model, Vec::new(), &Time(jiff::Timestamp::now())));
        provenance.declared = true;
        provenance
    });
    let record = Box::new(move |version, outcome| {
        let mut record = imported(uri, version);
        record.provenance = declared.map(|provenance| provenance.numbered(version));
        artifact::record_outcome(&mut record, outcome);
        record
    });
    import(ctx, model, status, registry, &wanted, arrived, record)
        .await
        .map(Some)
}

/// Records the artifact `wanted` names as a version. The artifact is
/// fetched and validated by a Job in the tenant's namespace, never by the
/// operator; `record` makes the version's record (a refused artifact is
/// recorded as a Rejected version), which is written to the registry.
pub(super) async fn import(
    ctx: &Context,
    model: &Model,
    status: &ModelStatus,
    registry: Option<&Location>,
    wanted: &Source<'_>,
    arrived: &[ModelVersion],
    record: Recorder<'_>,
) -> Result<Import, Error> {
    let namespace = model.namespace().unwrap_or_default();
    if let Some(secret) = wanted.secret {
        storage::secret_exists(&ctx.client, &namespace, secret).await?;
    }
    let check = artifact::Check {
        job_name: import_job_name(&model.name_any(), wanted.uri, wanted.sha256),
        model: &model.name_any(),
        uri: wanted.uri,
        sha256: wanted.sha256,
        secret: wanted.secret,
        service_account: None,
        baseline_plan: None,
    };
    let outcome = match artifact::ensure(ctx, model, &check).await? {
        artifact::Progress::Running(message) => {
            debug!(%message, "importing an artifact");
            return Ok(Import::Validating);
        }
        artifact::Progress::Blocked(message) => {
            warn!(%message, "importing an artifact is blocked");
            return Ok(Import::Blocked(message));
        }
        artifact::Progress::Done(outcome) => outcome,
    };
    let Some(version) = next_version(ctx, model, status, registry, arrived).await? else {
        return Ok(Import::Validating);
    };
    let record = record(version, outcome);
    if let Some(registry) = registry {
        let bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
        storage::version_dir(registry, version)
            .child(storage::VERSION_FILE)
            .put(bytes)
            .await?;
    }
    artifact::remove(ctx, &namespace, &check.job_name).await?;
    info!(version, uri = wanted.uri, "imported an artifact");
    Ok(Import::Recorded(Box::new(record)))
}

/// The number of the imported version; `None` when the registry has none to
/// give yet. Training runs reserve numbers while their Job runs: the import
/// reserves its own the same way before it writes a record.
async fn next_version(
    ctx: &Context,
    model: &Model,
    status: &ModelStatus,
    registry: Option<&Location>,
    arrived: &[ModelVersion],
) -> Result<Option<i64>, Error> {
    let Some(registry) = registry else {
        let highest = status
            .versions
            .iter()
            .chain(arrived)
            .map(|v| v.version)
            .chain(status.latest_version)
            .max()
            .unwrap_or(0);
        return Ok(Some(highest + 1));
    };
    let models: Api<Model> =
        Api::namespaced(ctx.client.clone(), &model.namespace().unwrap_or_default());
    crate::training_job::reserve_version(&models, model, registry).await
}

/// A Ready record of `uri` imported as `version`, before its validation's
/// outcome is added.
fn imported(uri: &str, version: i64) -> ModelVersion {
    ModelVersion {
        version,
        phase: VersionPhase::Ready,
        reason: None,
        message: None,
        uri: aimass_storage::redact(uri),
        sha256: None,
        size_bytes: None,
        signature: None,
        metrics: BTreeMap::new(),
        lineage: Some(VersionLineage {
            imported_from: Some(uri.to_owned()),
            ..VersionLineage::default()
        }),
        provenance: None,
        created: Time(jiff::Timestamp::now()),
        baseline: None,
    }
}

/// The validation Job of an import: one per (Model, uri, sha256), so a
/// changed source starts a new one.
fn import_job_name(model: &str, uri: &str, sha256: Option<&str>) -> String {
    let digest =
        aimass_storage::sha256_hex(format!("{uri}\n{}", sha256.unwrap_or_default()).as_bytes());
    format!(
        "{}-import-{}",
        crate::labels::fit(model, 44),
        digest.get(..8).unwrap_or_default()
    )
}
