//! Artifact storage as the operator sees it: the registry of a Model
//! (`<prefix>/<model>/<version>/model.onnx`, a `version.json` record beside
//! it, and `aliases.json`), opened with the static keys of the Secret the
//! tenant named, and nothing else.
//!
//! The operator reads and writes only the registry's small records, each
//! bounded in size and time. It never fetches an artifact or a `source.uri`
//! (a validation Job in the tenant's namespace does), never reads `http(s)://`
//! for a tenant, never uses its own or the node's identity (the static keys
//! are allow-listed, and without keys a store is read anonymously), and
//! reads `file://` only below the roots the cluster admin allowed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aimass_crds::v1alpha1::ArtifactStorage;
use aimass_storage::{Credentials, Location};
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
/// The most bytes the operator reads of one record (`version.json`,
/// `metrics.json`, `aliases.json`): they are tenant-controlled.
pub const RECORD_LIMIT: usize = 1024 * 1024;

/// What the cluster admin lets the operator open for tenants.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Directories under which `file://` registries may live (single-node
    /// and development clusters). Empty: `file://` is refused.
    pub file_roots: Vec<PathBuf>,
}

impl Policy {
    /// Refuses a registry location the operator must not open for a tenant:
    /// `http(s)://`, `pvc://`, and `file://` outside the allowed roots (after
    /// resolving symbolic links of what exists).
    pub fn check(&self, uri: &str) -> Result<(), Error> {
        let url = url::Url::parse(uri)
            .map_err(|e| Error::InvalidSpec(format!("storage prefix {uri:?}: {e}")))?;
        match url.scheme() {
            "s3" | "gs" | "az" | "azure" | "abfs" | "abfss" => Ok(()),
            "file" => {
                let path = url.to_file_path().map_err(|()| {
                    Error::InvalidSpec(format!("storage prefix {uri:?} is not a local path"))
                })?;
                if self.file_roots.iter().any(|root| within(&path, root)) {
                    Ok(())
                } else if self.file_roots.is_empty() {
                    Err(Error::InvalidSpec(format!(
                        "storage prefix {uri:?}: file:// storage is not enabled in this cluster (the operator's --file-storage-roots is empty); use s3://, gs:// or az://"
                    )))
                } else {
                    Err(Error::InvalidSpec(format!(
                        "storage prefix {uri:?} is outside the file:// roots this cluster allows ({})",
                        self.file_roots
                            .iter()
                            .map(|r| r.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
            other => Err(Error::InvalidSpec(format!(
                "storage prefix {uri:?}: {other}:// cannot hold a registry; use s3://, gs:// or az://"
            ))),
        }
    }
}

/// Whether `path`, with the symbolic links of its existing part resolved,
/// lies below `root` (resolved likewise).
fn within(path: &Path, root: &Path) -> bool {
    let Ok(root) = root.canonicalize() else {
        return false;
    };
    // The deepest part that exists, resolved; the rest appended as written
    // (the URL parser has already removed `..`).
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                existing = parent.to_path_buf();
            }
            _ => return false,
        }
    }
    let Ok(mut resolved) = existing.canonicalize() else {
        return false;
    };
    resolved.extend(rest.iter().rev());
    resolved.starts_with(root)
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
        let text = String::from_utf8(value.0).map_err(|_| {
            Error::InvalidSpec(format!(
                "Secret {name:?}: the value of {key} is not UTF-8 text"
            ))
        })?;
        settings.insert(key, text);
    }
    settings.extend(secret.string_data.unwrap_or_default());
    Ok(settings)
}

/// Whether a Secret a tenant named exists (its metadata only: the operator
/// never reads what a pod alone uses). A pod started without it would fetch
/// without credentials, or wait for it without saying so; a missing one is
/// an error that names it and is retried until it exists.
pub async fn secret_exists(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(), Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let found = secrets
        .get_metadata_opt(name)
        .await
        .map_err(Error::kube(format!("reading Secret {name}")))?;
    match found {
        Some(_) => Ok(()),
        None => Err(Error::NotFound {
            kind: "Secret",
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        }),
    }
}

/// The environment a pod gets from a tenant's storage Secret: only the
/// static keys the operator accepts ([`source::STATIC_KEYS`]), each read
/// from the Secret if it has it, named with `prefix`. Never the whole Secret
/// (`envFrom`): a Secret holding `AIMASS_*` or `POD_NAME` would otherwise
/// reconfigure the server.
pub fn secret_env(secret: &str, prefix: &str) -> Vec<k8s_openapi::api::core::v1::EnvVar> {
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
    aimass_storage::STATIC_KEYS
        .iter()
        .map(|key| EnvVar {
            name: format!("{prefix}{key}"),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.to_owned(),
                    key: (*key).to_owned(),
                    optional: Some(true),
                }),
                ..EnvVarSource::default()
            }),
        })
        .collect()
}

/// Opens `model`'s registry in `storage`, with the static keys of its
/// Secret. A location (the registry's own folder, symbolic links resolved)
/// or a key the operator must not use is `InvalidSpec`, naming it.
pub async fn open_registry(
    client: &kube::Client,
    policy: &Policy,
    namespace: &str,
    storage: &ArtifactStorage,
    model: &str,
) -> Result<Location, Error> {
    let uri = &storage.prefix;
    policy.check(&format!("{}/{model}", uri.trim_end_matches('/')))?;
    let secret = storage.secret_ref.as_ref();
    let settings = match secret {
        None => Default::default(),
        Some(reference) => read_secret(client, namespace, &reference.name).await?,
    };
    let prefix =
        aimass_storage::open(uri, &Credentials::Static(settings)).map_err(|e| match e {
            aimass_storage::Error::Setting { .. } => Error::InvalidSpec(match secret {
                Some(reference) => format!("Secret {:?}: {e}", reference.name),
                None => e.to_string(),
            }),
            other => Error::Storage(other),
        })?;
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
        let prefix = aimass_storage::open(
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

    #[test]
    fn the_operator_opens_only_object_stores_and_allowed_file_roots() {
        let root = std::env::temp_dir().join(format!("aimass-roots-{}", std::process::id()));
        let outside = std::env::temp_dir().join(format!("aimass-outside-{}", std::process::id()));
        std::fs::create_dir_all(root.join("registry")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // A tenant who can write below the root links out of it.
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        let policy = Policy {
            file_roots: vec![root.clone()],
        };
        let r = root.display();
        for (uri, allowed) in [
            ("s3://bucket/models".to_owned(), true),
            ("gs://bucket/models".to_owned(), true),
            ("az://container/models".to_owned(), true),
            (format!("file://{r}/registry"), true),
            (format!("file://{r}/not-yet/created"), true),
            (format!("file://{r}/../etc"), false),
            (format!("file://{r}/escape/models"), false),
            (
                "file:///var/run/secrets/kubernetes.io/serviceaccount".to_owned(),
                false,
            ),
            ("http://169.254.169.254/latest".to_owned(), false),
            ("https://10.96.0.1/api".to_owned(), false),
            ("pvc://claim/models".to_owned(), false),
        ] {
            let checked = policy.check(&uri);
            assert_eq!(checked.is_ok(), allowed, "{uri}: {checked:?}");
            if let Err(e) = checked {
                assert_eq!(e.category(), "InvalidSpec", "{uri}");
            }
        }
        let err = Policy::default()
            .check(&format!("file://{r}/registry"))
            .unwrap_err();
        assert!(err.to_string().contains("not enabled"), "{err}");
        std::fs::remove_dir_all(root).unwrap();
        std::fs::remove_dir_all(outside).unwrap();
    }
}
