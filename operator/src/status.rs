//! Writing the status of an aimass.io object the operator does not need to
//! read back: a merge patch of the whole status, sent only when it changed.
//! An object deleted meanwhile is not an error.

use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::error::{Error, is_not_found};

/// Writes `status` to the object `name` of `api` unless it equals `old`;
/// `kind` names it in errors.
pub async fn write<K, S>(
    api: &Api<K>,
    name: &str,
    old: &S,
    status: &S,
    kind: &str,
) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: PartialEq + serde::Serialize,
{
    if status == old {
        return Ok(());
    }
    let patch = serde_json::json!({ "status": status });
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::kube(format!("writing {kind} status"))(e)),
    }
}
