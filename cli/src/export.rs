//! `kubectl aimass export`: one version of a Model as a manifest for
//! another cluster.

use aimass_crds::v1alpha1::{Model, ModelVersion, VersionPhase};
use kube::{Api, ResourceExt};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster could not be reached or refused the read.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// The kubeconfig could not be read.
    #[error("reading the kubeconfig: {0}")]
    Config(#[from] kube::config::KubeconfigError),
    /// The version asked for cannot be exported; why.
    #[error("{0}")]
    Refused(String),
    /// The manifest could not be written.
    #[error("writing the manifest: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
}

/// `kubectl aimass export`'s arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Model to export from.
    model: String,
    /// Its namespace (the kubeconfig's when unset).
    #[arg(short, long)]
    namespace: Option<String>,
    /// The version to export; the alias `--alias` points at when unset.
    #[arg(long)]
    version: Option<i64>,
    /// The alias whose version is exported.
    #[arg(long, default_value = "champion")]
    alias: String,
    /// Name of the Model in the manifest (the exported Model's by default).
    #[arg(long)]
    name: Option<String>,
}

/// Reads the Model and prints the manifest.
pub async fn run(args: Args) -> Result<String, Error> {
    // object_store is not linked here, but kube needs one TLS provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::infer()
        .await
        .map_err(|e| Error::Refused(format!("no cluster to read from: {e}")))?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)?;
    let model = Api::<Model>::namespaced(client, &namespace)
        .get(&args.model)
        .await?;
    manifest(&model, &args)
}

/// The manifest exporting `args`' version of `model`.
fn manifest(model: &Model, args: &Args) -> Result<String, Error> {
    let version = chosen(model, args)?;
    let sha256 = version.sha256.clone().ok_or_else(|| {
        Error::Refused(format!(
            "version {} has no recorded sha256",
            version.version
        ))
    })?;
    let mut provenance = version.provenance.clone().unwrap_or_default();
    if provenance.steps.is_empty() {
        return Err(Error::Refused(format!(
            "version {} has no provenance to carry (it was imported, not trained or promoted here)",
            version.version
        )));
    }
    // The exporting cluster's record is what travels; the importing
    // cluster marks it declared.
    provenance.declared = false;
    let name = args.name.clone().unwrap_or_else(|| model.name_any());
    let document = serde_json::json!({
        "apiVersion": "aimass.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {
            "source": {"uri": version.uri, "sha256": sha256, "provenance": provenance},
            "storage": model.spec.storage,
        }
    });
    let origin = provenance
        .steps
        .iter()
        .map(|s| format!("{}/{}:{}", s.namespace, s.model, s.version))
        .collect::<Vec<_>>()
        .join(" -> ");
    Ok(format!(
        "# Exported by `kubectl aimass export` from {}/{} version {}: {origin}.\n# The artifact is pinned by its sha256; the provenance is recorded as declared.\n{}",
        model.namespace().unwrap_or_default(),
        model.name_any(),
        version.version,
        serde_yaml_ng::to_string(&document)?
    ))
}

/// The Ready version `args` names.
fn chosen<'a>(model: &'a Model, args: &Args) -> Result<&'a ModelVersion, Error> {
    let status = model.status.as_ref();
    let number = match args.version {
        Some(n) => n,
        None => *status
            .and_then(|s| s.aliases.get(&args.alias))
            .ok_or_else(|| Error::Refused(format!("alias {} is not set", args.alias)))?,
    };
    status
        .and_then(|s| s.versions.iter().find(|v| v.version == number))
        .filter(|v| v.phase == VersionPhase::Ready)
        .ok_or_else(|| Error::Refused(format!("version {number} is not a Ready version")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(version: Option<i64>) -> Args {
        Args {
            model: "fraud".into(),
            namespace: None,
            version,
            alias: "champion".into(),
            name: None,
        }
    }

    fn model() -> Model {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "aimass.io/v1alpha1", "kind": "Model",
            "metadata": {"name": "fraud", "namespace": "risk-prod"},
            "spec": {"source": {"promotedFrom": {"namespace": "risk-preview", "model": "fraud", "alias": "champion"}}},
            "status": {"aliases": {"champion": 2}, "versions": [
                {"version": 1, "phase": "Rejected", "uri": "s3://t/1.onnx", "created": "2026-12-01T00:00:00Z"},
                {"version": 2, "phase": "Ready", "uri": "s3://t/2.onnx", "sha256": "ab",
                 "created": "2026-12-01T00:00:00Z",
                 "provenance": {"steps": [
                    {"namespace": "risk-test", "model": "fraud", "version": 5, "requestedBy": "alice", "time": "2026-12-01T00:00:00Z"},
                    {"namespace": "risk-prod", "model": "fraud", "version": 2, "time": "2026-12-01T00:00:00Z",
                     "approvals": [{"name": "a", "approvedBy": "bob", "time": "2026-12-01T00:00:00Z"}]}]}}
            ]}
        }))
        .unwrap()
    }

    #[test]
    fn the_manifest_pins_the_artifact_and_carries_the_provenance() {
        let text = manifest(&model(), &args(None)).unwrap();
        assert!(
            text.contains("risk-test/fraud:5 -> risk-prod/fraud:2"),
            "{text}"
        );
        let parsed: Model = serde_yaml_ng::from_str(&text).unwrap();
        let source = &parsed.spec.source;
        assert_eq!(source.uri.as_deref(), Some("s3://t/2.onnx"));
        assert_eq!(source.sha256.as_deref(), Some("ab"));
        let steps = &source.provenance.as_ref().unwrap().steps;
        assert_eq!(steps[0].requested_by.as_deref(), Some("alice"));
        assert_eq!(steps[1].approvals[0].approved_by, "bob");
        assert!(source.promoted_from.is_none());
    }

    #[test]
    fn only_ready_versions_with_a_history_are_exported() {
        let err = manifest(&model(), &args(Some(1))).unwrap_err();
        assert!(err.to_string().contains("not a Ready version"), "{err}");
        let err = manifest(&model(), &args(Some(9))).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
        let mut bare = model();
        if let Some(s) = bare.status.as_mut() {
            s.versions[1].provenance = None;
        }
        let err = manifest(&bare, &args(None)).unwrap_err();
        assert!(err.to_string().contains("no provenance"), "{err}");
    }
}
