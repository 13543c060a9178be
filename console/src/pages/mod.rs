//! What each page shows, gathered with the signed-in user's token after a
//! SubjectAccessReview, as a template name and its context.

use std::fmt::Debug;

use aimass_crds::v1alpha1::Model;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Resource;
use kube::api::{Api, ListParams, ObjectMeta};
use minijinja::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cluster::{Access, Cluster, timed};
use crate::error::Error;
use crate::session::Session;

pub mod actions;
mod decisions;
mod deployments;
mod models;
mod overview;
mod registry;
mod scoring;
mod training;
mod yaml;

pub use decisions::{approvals, decisions};
pub use deployments::{deployment, deployments};
pub use models::{compare, model, version};
pub use overview::overview;
pub use registry::models;
pub use scoring::{scoring_job, scoring_jobs};
pub use training::{training_job, training_jobs};
pub use yaml::yaml;

/// A page to render: its template, its context, the section of the
/// navigation it belongs to and the namespaces its live updates follow.
pub struct Page {
    /// Template name.
    pub template: &'static str,
    /// What the template reads.
    pub context: Value,
    /// `overview`, `models`, `training`, `scoring` or `deployments`.
    pub nav: &'static str,
    /// Namespaces whose changes refresh the page.
    pub scope: Vec<String>,
}

/// One request's view of the cluster: the user and how to reach it.
#[derive(Clone, Copy)]
pub struct Viewer<'a> {
    /// The API server.
    pub cluster: &'a Cluster,
    /// The signed-in user.
    pub session: &'a Session,
}

impl Viewer<'_> {
    /// Every aimass.io `resource` object in `namespace`, if the user may
    /// list them, read as `T`: the kind itself, or a shape of the few fields
    /// a page shows (the rest is skipped while parsing).
    pub async fn list<T>(&self, resource: &'static str, namespace: &str) -> Result<Vec<T>, Error>
    where
        T: DeserializeOwned,
    {
        #[derive(serde::Deserialize)]
        struct Items<T> {
            items: Vec<T>,
        }
        self.check("list", resource, namespace).await?;
        let api_version = Model::api_version(&());
        let request = kube::core::Request::new(format!(
            "/apis/{api_version}/namespaces/{namespace}/{resource}"
        ))
        .list(&ListParams::default())
        .map_err(|e| Error::Kube(kube::Error::BuildRequest(e)))?;
        let list: Items<T> = timed(self.cluster.as_user(self.session)?.request(request)).await?;
        Ok(list.items)
    }

    /// Every `resource` object in those of `namespaces` where the user may
    /// list them (read side by side); the others are left out, not an
    /// error.
    pub async fn list_permitted<T>(
        &self,
        resource: &'static str,
        namespaces: &[String],
    ) -> Result<Vec<T>, Error>
    where
        T: DeserializeOwned,
    {
        let lists = futures::future::try_join_all(namespaces.iter().map(|ns| async move {
            if self.may("list", resource, ns).await? {
                self.list::<T>(resource, ns).await
            } else {
                Ok(Vec::new())
            }
        }))
        .await?;
        Ok(lists.into_iter().flatten().collect())
    }

    /// `resource` object `name` in `namespace`, if the user may get it.
    pub async fn get<K>(
        &self,
        resource: &'static str,
        namespace: &str,
        name: &str,
    ) -> Result<K, Error>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
        K::DynamicType: Default,
    {
        self.check("get", resource, namespace).await?;
        let api: Api<K> = Api::namespaced(self.cluster.as_user(self.session)?, namespace);
        timed(api.get_opt(name))
            .await?
            .ok_or_else(|| Error::NotFound(format!("{resource} {namespace}/{name}")))
    }

    /// The pods in `namespace` with the labels `selector`, if the user may
    /// list pods there (a `view` binding allows it).
    pub async fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<Pod>, Error> {
        self.cluster
            .check(self.session, &Access::core("list", "pods", namespace))
            .await?;
        let api: Api<Pod> = Api::namespaced(self.cluster.as_user(self.session)?, namespace);
        Ok(timed(api.list(&ListParams::default().labels(selector)))
            .await?
            .items)
    }

    /// Whether the user may `verb` `resource` in `namespace`.
    pub async fn may(
        &self,
        verb: &'static str,
        resource: &'static str,
        namespace: &str,
    ) -> Result<bool, Error> {
        self.cluster
            .may(self.session, &Access::aimass(verb, resource, namespace))
            .await
    }

    async fn check(
        &self,
        verb: &'static str,
        resource: &'static str,
        namespace: &str,
    ) -> Result<(), Error> {
        self.cluster
            .check(self.session, &Access::aimass(verb, resource, namespace))
            .await
    }
}

/// Where an object is, and its page; flattened into the rows of lists.
#[derive(Debug, PartialEq, Serialize)]
pub struct Place {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its page, `/ns/{namespace}/{path}/{name}`.
    pub href: String,
}

impl Place {
    /// The object `meta` describes, whose pages are under `path`
    /// (`models`, `trainingjobs`, `deployments`).
    pub fn of(meta: &ObjectMeta, path: &str) -> Self {
        Self::new(
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
            path,
        )
    }

    /// Object `name` in `namespace`, whose pages are under `path`.
    pub fn new(namespace: String, name: String, path: &str) -> Self {
        Self {
            href: format!("/ns/{namespace}/{path}/{name}"),
            namespace,
            name,
        }
    }
}

/// A namespace or object name from a path: a DNS label or subdomain, or a
/// 404 (nothing else can name an object, and nothing else is echoed).
pub fn name(segment: &str) -> Result<&str, Error> {
    let ok = !segment.is_empty()
        && segment.len() <= 253
        && segment
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(segment)
    } else {
        Err(Error::NotFound("no such object".into()))
    }
}

/// A time as pages show it.
pub fn at(time: &Time) -> String {
    time.0.to_string()
}

/// The newest `keep` of `objects`, newest first (by creation).
pub fn newest_first<K: Resource>(mut objects: Vec<K>, keep: usize) -> Vec<K> {
    objects.sort_by(|a, b| {
        b.meta()
            .creation_timestamp
            .cmp(&a.meta().creation_timestamp)
    });
    objects.truncate(keep);
    objects
}

/// The condition of `kind` in `conditions`.
pub fn condition<'c>(conditions: &'c [Condition], kind: &str) -> Option<&'c Condition> {
    conditions.iter().find(|c| c.type_ == kind)
}

/// How a `Ready`-like condition reads in a table: its reason when not
/// True, and a CSS class.
pub fn readiness(conditions: &[Condition]) -> (String, &'static str) {
    match condition(conditions, "Ready") {
        Some(c) if c.status == "True" => ("Ready".into(), "ok"),
        Some(c) => (c.reason.clone(), "bad"),
        None => ("Pending".into(), "muted"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kubernetes_names_come_from_a_path() {
        assert!(name("risk-prod").is_ok());
        assert!(name("a.b-1").is_ok());
        for bad in ["", "Risk", "<script>", "a/b", "a b", &"a".repeat(254)] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
    }
}
