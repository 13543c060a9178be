//! Read-only YAML of one object, without its managed fields.

use aimass_crds::v1alpha1::{Model, ModelDeployment, ScoringJob, TrainingJob};
use minijinja::context;

use super::{Page, Viewer, name};
use crate::error::Error;

/// `/ns/{ns}/{kind}/{name}/yaml` for models, trainingjobs, scoringjobs and
/// deployments.
pub async fn yaml(viewer: Viewer<'_>, ns: &str, kind: &str, object: &str) -> Result<Page, Error> {
    let (ns, object) = (name(ns)?, name(object)?);
    let (label, nav, mut value) = match kind {
        "models" => (
            "Model",
            "models",
            to_value(viewer.get::<Model>("models", ns, object).await?)?,
        ),
        "trainingjobs" => (
            "TrainingJob",
            "training",
            to_value(
                viewer
                    .get::<TrainingJob>("trainingjobs", ns, object)
                    .await?,
            )?,
        ),
        "scoringjobs" => (
            "ScoringJob",
            "scoring",
            to_value(viewer.get::<ScoringJob>("scoringjobs", ns, object).await?)?,
        ),
        "deployments" => (
            "ModelDeployment",
            "deployments",
            to_value(
                viewer
                    .get::<ModelDeployment>("modeldeployments", ns, object)
                    .await?,
            )?,
        ),
        _ => return Err(Error::NotFound("no such kind".into())),
    };
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("managedFields");
    }
    let text = serde_yaml_ng::to_string(&value)
        .map_err(|e| Error::BadRequest(format!("cannot show it as YAML: {e}")))?;
    Ok(Page {
        template: "yaml.html",
        context: context! {ns, name => object, kind => label, text},
        nav,
        scope: vec![ns.to_owned()],
    })
}

fn to_value(object: impl serde::Serialize) -> Result<serde_json::Value, Error> {
    serde_json::to_value(object).map_err(|e| Error::BadRequest(format!("cannot show it: {e}")))
}
