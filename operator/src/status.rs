//! Writing the status of an aimass.io object. Every status field has one
//! writer, named by a field manager; a writer sends its own fields with
//! server-side apply and never the fields another writer owns, so a
//! decision written meanwhile by another part of the operator is never
//! overwritten with the value this one read earlier, and a field it stops
//! setting is removed. A status is sent only when it changed; an object
//! deleted meanwhile is not an error.
//!
//! The Model's registry is the exception: it is read, extended and written
//! back whole under optimistic concurrency (`replace`), so two writers that
//! race for a version number cannot both win.

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};

use crate::error::{Error, is_conflict, is_not_found};

/// One writer of a kind's status.
#[derive(Clone, Copy, Debug)]
pub struct Writer {
    /// The field manager it applies as (`aimass-operator/<writer>`).
    pub manager: &'static str,
    /// The status fields (JSON names) other writers own: never sent.
    pub others: &'static [&'static str],
}

impl Writer {
    /// Applies `status` to the object `name` of `api` unless it equals
    /// `old`.
    pub async fn write<K, S>(
        &self,
        api: &Api<K>,
        name: &str,
        old: &S,
        status: &S,
    ) -> Result<(), Error>
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        S: PartialEq + serde::Serialize,
    {
        if status == old {
            return Ok(());
        }
        let body = self.body::<K, S>(name, status);
        match api
            .patch_status(
                name,
                &PatchParams::apply(self.manager).force(),
                &Patch::Apply(&body),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::kube(format!("writing {} status", K::kind(&())))(e)),
        }
    }

    /// The apply configuration this writer sends for `status`: its own
    /// fields and none of the others'.
    pub fn body<K, S>(&self, name: &str, status: &S) -> serde_json::Value
    where
        K: Resource<DynamicType = ()>,
        S: serde::Serialize,
    {
        let mut fields = serde_json::to_value(status).unwrap_or_default();
        if let Some(map) = fields.as_object_mut() {
            for field in self.others {
                map.remove(*field);
            }
        }
        serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "metadata": { "name": name },
            "status": fields,
        })
    }
}

/// Writes `updated`'s whole status only if nobody wrote the object since
/// it was read (its `resourceVersion`): a 409 becomes `Error::Conflict`, and
/// the caller reads again and retries.
pub async fn replace<K>(api: &Api<K>, updated: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let name = updated.name_any();
    match api
        .replace_status(&name, &PostParams::default(), updated)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_conflict(&e) => Err(Error::Conflict(format!("{} {name}", K::kind(&())))),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::kube(format!("writing {} status", K::kind(&())))(e)),
    }
}
