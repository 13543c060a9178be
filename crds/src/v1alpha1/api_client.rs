//! `ApiClient`: a caller outside Kubernetes (an exchange, a partner bank, a
//! merchant's platform) that authenticates to the inference servers of its
//! namespace with an API key, as a principal Kubernetes RBAC then authorises
//! like any other user.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretReference;

/// A caller that authenticates with an API key.
///
/// Each key lives in a Secret holding only its id and its SHA-256 hash
/// (`aimass-apikey new` makes one and prints the key once); the key itself
/// is handed to the caller and stored nowhere in the cluster. The operator
/// copies ids and hashes into `status.keys`; the inference servers of the
/// namespace watch ApiClients and accept a key while it is listed in both
/// `spec.keys` and `status.keys` and `expires` has not passed. What the
/// principal may call is decided by RBAC: bind the `model-invoker`
/// ClusterRole (or a Role with `resourceNames`) to the User `principal`.
///
/// Creating an ApiClient lets its key act as `principal` and `groups`, so
/// grant `create` on ApiClients only to those who may create RoleBindings.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[kube(
    group = "aimass.io",
    version = "v1alpha1",
    kind = "ApiClient",
    namespaced,
    status = "ApiClientStatus",
    shortname = "apic",
    category = "aimass",
    printcolumn = r#"{"name":"Principal","type":"string","jsonPath":".spec.principal"}"#,
    printcolumn = r#"{"name":"Keys","type":"integer","description":"Keys that authenticate now","jsonPath":".status.activeKeys"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","format":"date-time","jsonPath":".spec.expires"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApiClientSpec {
    /// The user name the caller acts as, as RoleBindings name it (subject
    /// kind `User`), e.g. `partner:exchange-a`. Names starting with
    /// `system:` belong to Kubernetes and are refused.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = (
        "!self.startsWith('system:')",
        "principal may not start with system: (those names belong to Kubernetes)"
    ))]
    pub principal: String,

    /// Groups the caller belongs to, as RoleBindings name them (subject kind
    /// `Group`). Groups starting with `system:` are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = (
        "self.all(g, size(g) > 0 && size(g) <= 253 && !g.startsWith('system:'))",
        "groups must be 1 to 253 characters and may not start with system:"
    ))]
    pub groups: Vec<String>,

    /// After this time (RFC 3339) no key of this client authenticates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Time>,

    /// Calls per second this client may make to each replica of each model,
    /// instead of the ModelDeployment's `security.requestsPerSecond`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<ClientQuota>,

    /// The client's keys: one, or two while rotating (hand out the new one,
    /// then remove the old one from this list). Removing a key, or the whole
    /// ApiClient, stops it within seconds; deleting only its Secret stops it
    /// when the operator next resolves the client (at most a minute).
    #[schemars(length(min = 1, max = 2))]
    #[x_kube(validation = (
        "self.all(k, self.exists_one(l, l.secretRef.name == k.secretRef.name))",
        "each key Secret may be listed once"
    ))]
    pub keys: Vec<ApiKeyReference>,
}

/// A rate limit of its own for one client.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClientQuota {
    /// Calls per second; beyond it, 429 with `Retry-After`.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub requests_per_second: i32,

    /// Calls the client may make at once above the rate; defaults to one
    /// second's worth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub burst: Option<i32>,
}

/// One API key of a client.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyReference {
    /// The Secret holding the key's `id` and `sha256` (never the key).
    pub secret_ref: SecretReference,
}

/// What the operator found of a client's keys.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiClientStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: `Ready` (every key resolved and the client has
    /// not expired).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The keys the operator resolved from their Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<ResolvedApiKey>,

    /// Keys that authenticate now: resolved, listed in `spec.keys`, and the
    /// client not expired.
    #[serde(default)]
    pub active_keys: i32,
}

/// A key as the inference servers check it.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedApiKey {
    /// The Secret it was read from.
    pub secret: String,
    /// The key's id: the part of the key between `aimass_` and the next `_`,
    /// recorded in audit trails as the credential.
    pub id: String,
    /// SHA-256 of the whole key, in hex.
    pub sha256: String,
}
