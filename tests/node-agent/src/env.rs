//! A container's environment, built as the kubelet builds it: the image's
//! variables, Service links, `envFrom`, then `env` with `valueFrom`
//! (downward API, Secret and ConfigMap keys) and `$(VAR)` expansion.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::{Api, ListParams};

use crate::error::{Error, Result};
use crate::quantity;

/// What the environment needs to know about the pod beyond its spec.
pub struct PodFacts<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Its address.
    pub pod_ip: String,
    /// The node's address.
    pub host_ip: String,
    /// The node's CPU capacity in cores, the default for CPU limits.
    pub node_cpu: f64,
    /// The node's memory capacity in bytes, the default for memory limits.
    pub node_memory: f64,
}

/// Builds the environment of `container`, in the order variables are set.
pub async fn build(
    client: &kube::Client,
    facts: &PodFacts<'_>,
    container: &Container,
    image_env: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>> {
    let pod = facts.pod;
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        ),
        ("HOME".into(), "/root".into()),
        (
            "HOSTNAME".into(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
    ];
    env.extend(image_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let links = spec.and_then(|s| s.enable_service_links).unwrap_or(true);
    env.extend(service_links(client, &namespace, links).await?);

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref
            && let Some(data) =
                config_map(client, &namespace, &r.name, r.optional.unwrap_or(false)).await?
        {
            env.extend(data.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
        }
        if let Some(r) = &from.secret_ref
            && let Some(data) =
                secret(client, &namespace, &r.name, r.optional.unwrap_or(false)).await?
        {
            env.extend(data.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)));
        }
    }

    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => Some(expand(v, &env)),
            (None, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    Some(field_value(facts, &f.field_path)?)
                } else if let Some(r) = &from.resource_field_ref {
                    Some(resource(
                        facts,
                        container,
                        &r.resource,
                        r.divisor.as_ref().map(|d| d.0.as_str()),
                    )?)
                } else if let Some(k) = &from.secret_key_ref {
                    let data =
                        secret(client, &namespace, &k.name, k.optional.unwrap_or(false)).await?;
                    key(data, &k.key, "Secret", &k.name, k.optional.unwrap_or(false))?
                } else if let Some(k) = &from.config_map_key_ref {
                    let data = config_map(client, &namespace, &k.name, k.optional.unwrap_or(false))
                        .await?;
                    key(
                        data,
                        &k.key,
                        "ConfigMap",
                        &k.name,
                        k.optional.unwrap_or(false),
                    )?
                } else {
                    None
                }
            }
            (None, None) => Some(String::new()),
        };
        if let Some(value) = value {
            env.push((var.name.clone(), value));
        }
    }
    // Later definitions win, as in a real container runtime.
    let mut seen = std::collections::HashSet::new();
    let mut deduped: Vec<(String, String)> = env
        .into_iter()
        .rev()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect();
    deduped.reverse();
    Ok(deduped)
}

/// Expands `$(NAME)` references to variables defined so far; `$$(NAME)`
/// escapes a reference, and unknown references stay as written.
pub fn expand(value: &str, env: &[(String, String)]) -> String {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match lookup(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The value of a downward-API field path such as `metadata.name`.
pub fn field_value(facts: &PodFacts<'_>, path: &str) -> Result<String> {
    let meta = &facts.pod.metadata;
    let spec = facts.pod.spec.as_ref();
    let map_key = |prefix: &str| path.strip_prefix(prefix).and_then(|r| r.strip_suffix("']"));
    let value = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" | "status.podIPs" => Some(facts.pod_ip.clone()),
        "status.hostIP" | "status.hostIPs" => Some(facts.host_ip.clone()),
        _ => {
            if let Some(k) = map_key("metadata.labels['") {
                meta.labels.as_ref().and_then(|l| l.get(k).cloned())
            } else if let Some(k) = map_key("metadata.annotations['") {
                meta.annotations.as_ref().and_then(|a| a.get(k).cloned())
            } else {
                return Err(Error::Unsupported {
                    reason: "CreateContainerConfigError",
                    message: format!("field path {path:?} is not supported"),
                });
            }
        }
    };
    Ok(value.unwrap_or_default())
}

fn resource(
    facts: &PodFacts<'_>,
    container: &Container,
    name: &str,
    divisor: Option<&str>,
) -> Result<String> {
    let resources = container.resources.as_ref();
    let (kind, resource) = name.split_once('.').unwrap_or(("limits", name));
    let set = match kind {
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => resources.and_then(|r| r.limits.as_ref()),
    };
    let given = set
        .and_then(|m| m.get(resource))
        .and_then(|q| quantity::parse(&q.0));
    let value = match (given, resource) {
        (Some(v), _) => v,
        (None, "cpu") if kind == "limits" => facts.node_cpu,
        (None, "memory") if kind == "limits" => facts.node_memory,
        (None, _) => 0.0,
    };
    let divisor = divisor
        .and_then(quantity::parse)
        .filter(|d| *d > 0.0)
        .unwrap_or(1.0);
    Ok(format!("{}", (value / divisor).ceil() as i64))
}

fn key(
    data: Option<BTreeMap<String, String>>,
    key: &str,
    kind: &str,
    name: &str,
    optional: bool,
) -> Result<Option<String>> {
    match data.and_then(|d| d.get(key).cloned()) {
        Some(v) => Ok(Some(v)),
        None if optional => Ok(None),
        None => Err(Error::Unsupported {
            reason: "CreateContainerConfigError",
            message: format!("couldn't find key {key} in {kind} {name}"),
        }),
    }
}

/// An object's data, `None` when it is missing and `optional`.
async fn fetch<K, T>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    optional: bool,
    data: impl FnOnce(K) -> T,
) -> Result<Option<T>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api
        .get_opt(name)
        .await
        .map_err(Error::kube(format!("reading {kind} {name}")))?
    {
        Some(object) => Ok(Some(data(object))),
        None if optional => Ok(None),
        None => Err(Error::Unsupported {
            reason: "CreateContainerConfigError",
            message: format!("{} {name:?} not found", kind.to_lowercase()),
        }),
    }
}

/// A ConfigMap's data, `None` when it is missing and optional.
pub async fn config_map(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    optional: bool,
) -> Result<Option<BTreeMap<String, String>>> {
    fetch(client, namespace, name, optional, |cm: ConfigMap| {
        cm.data.unwrap_or_default()
    })
    .await
}

/// A Secret's data as text, `None` when it is missing and optional.
pub async fn secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    optional: bool,
) -> Result<Option<BTreeMap<String, String>>> {
    Ok(secret_bytes(client, namespace, name, optional)
        .await?
        .map(|data| {
            data.into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect()
        }))
}

/// A Secret's data, `None` when it is missing and optional.
pub async fn secret_bytes(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    optional: bool,
) -> Result<Option<BTreeMap<String, ByteString>>> {
    fetch(client, namespace, name, optional, |s: Secret| {
        s.data.unwrap_or_default()
    })
    .await
}

/// `{NAME}_SERVICE_HOST` and friends for the Services of the namespace (when
/// links are enabled) and always for the `kubernetes` Service.
async fn service_links(
    client: &kube::Client,
    namespace: &str,
    enabled: bool,
) -> Result<Vec<(String, String)>> {
    let mut services: Vec<Service> = Vec::new();
    let default_api: Api<Service> = Api::namespaced(client.clone(), "default");
    if let Some(k) = default_api
        .get_opt("kubernetes")
        .await
        .map_err(Error::kube("reading Service kubernetes"))?
    {
        services.push(k);
    }
    if enabled {
        let api: Api<Service> = Api::namespaced(client.clone(), namespace);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(Error::kube("listing Services"))?;
        services.extend(list.items.into_iter().filter(|s| {
            !(namespace == "default" && s.metadata.name.as_deref() == Some("kubernetes"))
        }));
    }
    let mut env = Vec::new();
    for svc in services {
        let Some(spec) = svc.spec else { continue };
        let Some(ip) = spec.cluster_ip.filter(|ip| !ip.is_empty() && ip != "None") else {
            continue;
        };
        let name = svc
            .metadata
            .name
            .unwrap_or_default()
            .to_uppercase()
            .replace('-', "_");
        let ports = spec.ports.unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        env.push((format!("{name}_SERVICE_HOST"), ip.clone()));
        env.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for p in &ports {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            if let Some(pname) = &p.name {
                env.push((
                    format!(
                        "{name}_SERVICE_PORT_{}",
                        pname.to_uppercase().replace('-', "_")
                    ),
                    p.port.to_string(),
                ));
            }
            let url = format!("{}://{ip}:{}", proto.to_lowercase(), p.port);
            let prefix = format!("{name}_PORT_{}_{proto}", p.port);
            env.push((prefix.clone(), url));
            env.push((format!("{prefix}_PROTO"), proto.to_lowercase()));
            env.push((format!("{prefix}_PORT"), p.port.to_string()));
            env.push((format!("{prefix}_ADDR"), ip.clone()));
        }
        env.push((
            format!("{name}_PORT"),
            format!(
                "{}://{ip}:{}",
                first
                    .protocol
                    .clone()
                    .unwrap_or_else(|| "TCP".into())
                    .to_lowercase(),
                first.port
            ),
        ));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn expands_references_like_the_kubelet() {
        let env = vec![
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "two".to_owned()),
        ];
        assert_eq!(expand("$(A)-$(B)", &env), "1-two");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("$(MISSING) $A", &env), "$(MISSING) $A");
        assert_eq!(expand("cost: 5$", &env), "cost: 5$");
    }
}
