//! The changes the console can make — pin an alias, approve a promotion —
//! each with the user's own token and a reason, so RBAC and the admission
//! policies judge them exactly as they judge kubectl.

use std::collections::HashMap;

use aimass_crds::v1alpha1::{
    Model, ModelApproval, ModelApprovalSpec, REASON_ANNOTATION, REASON_ANNOTATION_LIMIT,
    REASON_FOR_ANNOTATION, REQUESTED_BY_ANNOTATION,
};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{Viewer, name};
use crate::cluster::timed;
use crate::error::Error;

/// The field manager of the console's writes.
const MANAGER: &str = "aimass-console";

/// A submitted form's fields.
pub type Form = HashMap<String, String>;

fn field<'f>(form: &'f Form, key: &str) -> Result<&'f str, Error> {
    form.get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::BadRequest(format!("the form needs {key}")))
}

fn bounded<'f>(form: &'f Form, key: &str, limit: usize) -> Result<&'f str, Error> {
    let value = field(form, key)?;
    if value.chars().count() > limit {
        return Err(Error::BadRequest(format!(
            "{key} is longer than {limit} characters"
        )));
    }
    Ok(value)
}

/// Merges `spec` into Model `ns/model`'s spec with the user's token, the
/// user as requester and `reason` for the change `reason_for` names: the
/// annotations the operator records, and the admission policy holds to the
/// user's own name.
async fn change_spec(
    viewer: Viewer<'_>,
    ns: &str,
    model: &str,
    spec: serde_json::Value,
    reason: &str,
    reason_for: &str,
) -> Result<(), Error> {
    viewer.check("patch", "models", ns).await?;
    let patch = json!({
        "metadata": {"annotations": {
            REQUESTED_BY_ANNOTATION: viewer.session.user,
            REASON_ANNOTATION: reason,
            REASON_FOR_ANNOTATION: reason_for,
        }},
        "spec": spec,
    });
    let api: Api<Model> = Api::namespaced(viewer.cluster.as_user(viewer.session)?, ns);
    timed(api.patch(
        model,
        &PatchParams::apply(MANAGER).validation_strict(),
        &Patch::Merge(&patch),
    ))
    .await?;
    tracing::info!(
        user = viewer.session.user,
        ns,
        model,
        change = reason_for,
        "model changed"
    );
    Ok(())
}

/// Pins `alias` of Model `ns/model` to a version, with the user's token,
/// recording the user and the reason in the annotations the operator copies
/// into the alias history. Returns the page to go back to.
pub async fn pin(viewer: Viewer<'_>, ns: &str, model: &str, form: &Form) -> Result<String, Error> {
    let (ns, model) = (name(ns)?, name(model)?);
    let alias = field(form, "alias")?;
    let valid_alias = alias.len() <= 63
        && alias
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !alias.starts_with('-')
        && !alias.ends_with('-');
    if !valid_alias {
        return Err(Error::BadRequest(
            "an alias is a DNS label: a-z, 0-9 and '-'".into(),
        ));
    }
    let version: i64 = field(form, "version")?
        .parse()
        .map_err(|_| Error::BadRequest("version is a number".into()))?;
    let reason = bounded(form, "reason", REASON_ANNOTATION_LIMIT)?;
    let spec = json!({"aliases": {alias: version}});
    change_spec(
        viewer,
        ns,
        model,
        spec,
        reason,
        &format!("{alias}={version}"),
    )
    .await?;
    Ok(format!("/ns/{ns}/models/{model}"))
}

/// Pauses or resumes Model `ns/model`'s training schedule
/// (`spec.source.training.suspend`), with the user's token, recording the
/// user and the reason as a pin does.
pub async fn schedule(
    viewer: Viewer<'_>,
    ns: &str,
    model: &str,
    form: &Form,
) -> Result<String, Error> {
    let (ns, model) = (name(ns)?, name(model)?);
    let suspend = match field(form, "suspend")? {
        "true" => true,
        "false" => false,
        _ => return Err(Error::BadRequest("suspend is true or false".into())),
    };
    let reason = bounded(form, "reason", REASON_ANNOTATION_LIMIT)?;
    let spec = json!({"source": {"training": {"suspend": suspend}}});
    change_spec(
        viewer,
        ns,
        model,
        spec,
        reason,
        &format!("suspend={suspend}"),
    )
    .await?;
    Ok(format!("/ns/{ns}/models/{model}"))
}

/// Approves the artifact `ns/model` waits for, as the user (the admission
/// policy refuses any other `approvedBy`; the Model decides whether it
/// counts).
pub async fn approve(
    viewer: Viewer<'_>,
    ns: &str,
    model: &str,
    form: &Form,
) -> Result<String, Error> {
    let (ns, model) = (name(ns)?, name(model)?);
    let sha256 = field(form, "sha256")?;
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(Error::BadRequest(
            "sha256 is 64 lower-case hex digits".into(),
        ));
    }
    let comment = bounded(form, "comment", 1024)?;
    let source = form
        .get("source")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    if source.is_some_and(|s| s.len() > 600) {
        return Err(Error::BadRequest(
            "source is longer than 600 characters".into(),
        ));
    }
    viewer.check("create", "modelapprovals", ns).await?;
    let approval = ModelApproval {
        metadata: ObjectMeta {
            generate_name: Some(format!("{model}-")),
            ..ObjectMeta::default()
        },
        spec: ModelApprovalSpec {
            model: model.to_owned(),
            source: source.map(str::to_owned),
            sha256: sha256.to_owned(),
            approved_by: viewer.session.user.clone(),
            comment: Some(comment.to_owned()),
        },
        status: None,
    };
    let api: Api<ModelApproval> = Api::namespaced(viewer.cluster.as_user(viewer.session)?, ns);
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..PostParams::default()
    };
    timed(api.create(&params, &approval)).await?;
    tracing::info!(
        user = viewer.session.user,
        ns,
        model,
        sha256,
        "approval created"
    );
    Ok(format!("/ns/{ns}/models/{model}"))
}
