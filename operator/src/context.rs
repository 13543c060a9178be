//! What every controller shares: the client, metrics, the Event publisher
//! and the training log followers.

use std::sync::Arc;

use crate::events::Events;
use crate::metrics::Metrics;
use crate::training_job::follower::Followers;

/// The shared state of the controllers.
pub struct Context {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes Events.
    pub events: Events,
    /// Follows running trainers' output.
    pub followers: Followers,
    /// The inference server image of ModelDeployments that name none; it
    /// also validates artifacts.
    pub server_image: String,
    /// What the operator may open in storage for tenants.
    pub storage: crate::storage::Policy,
    /// Memory limit of artifact validation Jobs.
    pub validation_memory_limit: String,
    /// The largest artifact a validation Job reads.
    pub max_artifact_bytes: u64,
    /// The ClusterRole that lets `Enforced` inference servers review their
    /// callers' tokens and permissions.
    pub auth_delegator_role: String,
    /// The operator's own namespace, where its settings ConfigMap lives.
    pub operator_namespace: String,
    /// Where the audit keys live: out of every tenant's reach.
    pub audit_key_namespace: String,
    /// Where servers ask for their audit keys.
    pub key_service: crate::key_service::Endpoint,
    /// Namespaces whose pods may reach the servers' admin port besides the
    /// operator's (metrics scrapers).
    pub scraper_namespaces: Vec<String>,
    /// The metrics each canary step is measured from, by ModelDeployment uid.
    pub canary_baselines:
        crate::model_deployment::Baselines<crate::model_deployment::CanaryBaseline>,
    /// The soaks' first readings, by ModelDeployment uid.
    pub soak_baselines: crate::model_deployment::Baselines<crate::model_deployment::SoakBaseline>,
}
