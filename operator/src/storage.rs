//! Artifact storage as the operator sees it: the store a URI names, opened
//! with the keys of the Secret the user referenced, and the layout of a
//! Model's registry in it (`<prefix>/<model>/<version>/model.onnx`, a
//! `version.json` record beside it, and `aliases.json`).

use std::collections::BTreeMap;

use aimass_crds::v1alpha1::{ArtifactStorage, SecretReference};
use aimass_inference_server::source::{self, Credentials, Location};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::error::{Error, is_not_found};

/// The artifact a trainer writes.
pub const MODEL_FILE: &str = "model.onnx";
/// The final metrics a trainer writes.
pub const METRICS_FILE: &str = "metrics.json";
/// The record of a version, written beside its artifact.
pub const VERSION_FILE: &str = "version.json";
/// The aliases of a Model, written at the root of its registry.
pub const ALIASES_FILE: &str = "aliases.json";

/// Opens `uri` with the credentials in `secret` (a Secret in `namespace`).
pub async fn open(
    client: &kube::Client,
    namespace: &str,
    uri: &str,
    secret: Option<&SecretReference>,
) -> Result<Location, Error> {
    let credentials = match secret {
        None => Credentials::Settings(BTreeMap::new()),
        Some(reference) => {
            Credentials::Settings(read_secret(client, namespace, &reference.name).await?)
        }
    };
    Ok(source::open(uri, &credentials)?)
}

async fn read_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api.get(name).await.map_err(|e| {
        if is_not_found(&e) {
            Error::NotFound {
                kind: "Secret",
                name: name.to_owned(),
                namespace: namespace.to_owned(),
            }
        } else {
            Error::kube(format!("reading Secret {name}"))(e)
        }
    })?;
    let mut settings = BTreeMap::new();
    for (key, value) in secret.data.unwrap_or_default() {
        if let Ok(text) = String::from_utf8(value.0) {
            settings.insert(key, text);
        }
    }
    settings.extend(secret.string_data.unwrap_or_default());
    Ok(settings)
}

/// Opens `model`'s registry in `storage`, with the credentials of its Secret.
pub async fn open_registry(
    client: &kube::Client,
    namespace: &str,
    storage: &ArtifactStorage,
    model: &str,
) -> Result<Location, Error> {
    let prefix = open(
        client,
        namespace,
        &storage.prefix,
        storage.secret_ref.as_ref(),
    )
    .await?;
    Ok(registry(&prefix, model))
}

/// Where `model`'s registry lives under a storage prefix.
pub fn registry(prefix: &Location, model: &str) -> Location {
    prefix.child(model)
}

/// Where version `version` of a registry is stored.
pub fn version_dir(registry: &Location, version: i64) -> Location {
    registry.child(&version.to_string())
}

/// The version numbers that have a `version.json` in a registry.
pub async fn recorded_versions(registry: &Location) -> Result<Vec<i64>, Error> {
    Ok(versions_in(&registry.list().await?))
}

/// The version numbers with a `version.json` among a registry's `names`.
pub fn versions_in(names: &[String]) -> Vec<i64> {
    let mut versions: Vec<i64> = names
        .iter()
        .filter_map(|name| {
            let (dir, file) = name.split_once('/')?;
            (file == VERSION_FILE).then(|| dir.parse().ok()).flatten()
        })
        .collect();
    versions.sort_unstable();
    versions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finds_recorded_versions_in_a_registry() {
        let dir = std::env::temp_dir().join(format!("aimass-registry-{}", std::process::id()));
        let prefix = source::open(
            &format!("file://{}", dir.display()),
            &Credentials::default(),
        )
        .unwrap();
        let fraud = registry(&prefix, "fraud");
        assert!(recorded_versions(&fraud).await.unwrap().is_empty());
        for (version, file) in [(1, VERSION_FILE), (2, MODEL_FILE), (10, VERSION_FILE)] {
            version_dir(&fraud, version)
                .child(file)
                .put(b"{}".to_vec())
                .await
                .unwrap();
        }
        fraud.child(ALIASES_FILE).put(b"{}".to_vec()).await.unwrap();
        assert_eq!(recorded_versions(&fraud).await.unwrap(), [1, 10]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
