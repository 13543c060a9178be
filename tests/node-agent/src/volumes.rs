//! Pod volumes, materialised as directories under the pod's state directory
//! and bind-mounted into its containers: emptyDir, hostPath, Secret,
//! ConfigMap, downwardAPI and projected (service-account token, CA bundle,
//! namespace) volumes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, KeyToPath, Pod, ServiceAccount,
};
use kube::api::{Api, PostParams};

use crate::env::{self, PodFacts};
use crate::error::{Error, Result};
use crate::sandbox::BindMount;

/// Creates every volume of the pod under `dir` and returns volume name → host
/// path.
pub async fn materialize(
    client: &kube::Client,
    facts: &PodFacts<'_>,
    dir: &Path,
) -> Result<HashMap<String, PathBuf>> {
    let pod = facts.pod;
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut paths = HashMap::new();
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let path = dir.join(&volume.name);
        let host_path = if let Some(h) = &volume.host_path {
            let p = PathBuf::from(&h.path);
            match h.type_.as_deref() {
                Some("DirectoryOrCreate") => mkdir(&p).await?,
                Some("FileOrCreate") if !p.exists() => write(&p, b"").await?,
                _ => {}
            }
            p
        } else if volume.empty_dir.is_some() {
            mkdir(&path).await?;
            path
        } else if let Some(s) = &volume.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            mkdir(&path).await?;
            if let Some(data) =
                env::secret_bytes(client, &namespace, &name, s.optional.unwrap_or(false)).await?
            {
                let data = data.into_iter().map(|(k, v)| (k, v.0)).collect();
                write_keys(&path, data, s.items.as_deref()).await?;
            }
            path
        } else if let Some(c) = &volume.config_map {
            mkdir(&path).await?;
            if let Some(data) =
                env::config_map(client, &namespace, &c.name, c.optional.unwrap_or(false)).await?
            {
                let data = data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
                write_keys(&path, data, c.items.as_deref()).await?;
            }
            path
        } else if let Some(d) = &volume.downward_api {
            mkdir(&path).await?;
            write_downward(&path, facts, d.items.as_deref().unwrap_or_default())?;
            path
        } else if let Some(p) = &volume.projected {
            mkdir(&path).await?;
            for source in p.sources.iter().flatten() {
                if let Some(t) = &source.service_account_token {
                    let token =
                        request_token(client, pod, t.audience.clone(), t.expiration_seconds)
                            .await?;
                    write(&path.join(&t.path), token.as_bytes()).await?;
                }
                if let Some(c) = &source.config_map
                    && let Some(data) =
                        env::config_map(client, &namespace, &c.name, c.optional.unwrap_or(false))
                            .await?
                {
                    let data = data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
                    write_keys(&path, data, c.items.as_deref()).await?;
                }
                if let Some(s) = &source.secret
                    && let Some(data) =
                        env::secret_bytes(client, &namespace, &s.name, s.optional.unwrap_or(false))
                            .await?
                {
                    let data = data.into_iter().map(|(k, v)| (k, v.0)).collect();
                    write_keys(&path, data, s.items.as_deref()).await?;
                }
                if let Some(d) = &source.downward_api {
                    write_downward(&path, facts, d.items.as_deref().unwrap_or_default())?;
                }
            }
            path
        } else {
            return Err(Error::Unsupported {
                reason: "VolumeTypeUnsupported",
                message: format!(
                    "volume {:?}: only emptyDir, hostPath, secret, configMap, downwardAPI and projected volumes are supported by the local node agent",
                    volume.name
                ),
            });
        };
        paths.insert(volume.name.clone(), host_path);
    }
    Ok(paths)
}

/// The bind mounts of a container, from its `volumeMounts`.
pub fn mounts(container: &Container, volumes: &HashMap<String, PathBuf>) -> Result<Vec<BindMount>> {
    container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            let source = volumes.get(&m.name).ok_or_else(|| Error::Unsupported {
                reason: "CreateContainerConfigError",
                message: format!("volume mount {:?} names no volume of the pod", m.name),
            })?;
            let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => source.join(sub),
                None => source.clone(),
            };
            Ok(BindMount {
                source,
                target: PathBuf::from(&m.mount_path),
                read_only: m.read_only.unwrap_or(false),
            })
        })
        .collect()
}

async fn request_token(
    client: &kube::Client,
    pod: &Pod,
    audience: Option<String>,
    expiration: Option<i64>,
) -> Result<String> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.into_iter().filter(|a| !a.is_empty()).collect(),
            expiration_seconds: expiration,
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let response = api
        .create_token_request(&sa, &PostParams::default(), &request)
        .await
        .map_err(Error::kube(format!(
            "requesting a token for ServiceAccount {sa}"
        )))?;
    Ok(response.status.map(|s| s.token).unwrap_or_default())
}

async fn write_keys(
    dir: &Path,
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
) -> Result<()> {
    match items {
        Some(items) => {
            for item in items {
                if let Some(value) = data.get(&item.key) {
                    write(&dir.join(&item.path), value).await?;
                }
            }
        }
        None => {
            for (key, value) in data {
                write(&dir.join(key), &value).await?;
            }
        }
    }
    Ok(())
}

fn write_downward(dir: &Path, facts: &PodFacts<'_>, items: &[DownwardAPIVolumeFile]) -> Result<()> {
    for item in items {
        let value = match &item.field_ref {
            Some(f)
                if f.field_path == "metadata.labels" || f.field_path == "metadata.annotations" =>
            {
                let map = if f.field_path == "metadata.labels" {
                    facts.pod.metadata.labels.clone()
                } else {
                    facts.pod.metadata.annotations.clone()
                };
                map.unwrap_or_default()
                    .iter()
                    .map(|(k, v)| format!("{k}={v:?}\n"))
                    .collect::<String>()
            }
            Some(f) => env::field_value(facts, &f.field_path)?,
            None => String::new(),
        };
        let path = dir.join(&item.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(Error::io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, value).map_err(Error::io(format!("writing {}", path.display())))?;
    }
    Ok(())
}

async fn mkdir(path: &Path) -> Result<()> {
    tokio::fs::create_dir_all(path)
        .await
        .map_err(Error::io(format!("creating {}", path.display())))
}

async fn write(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        mkdir(parent).await?;
    }
    tokio::fs::write(path, data)
        .await
        .map_err(Error::io(format!("writing {}", path.display())))
}
