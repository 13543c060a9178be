//! Command-line and environment configuration of the operator.

use std::net::SocketAddr;

use clap::Parser;

/// The aimass operator: reconciles Model, TrainingJob and ModelDeployment
/// resources (group aimass.io) into Jobs, Deployments and Services.
///
/// It reads the cluster from the in-cluster service account, or from
/// KUBECONFIG outside a cluster.
#[derive(Debug, Parser)]
#[command(name = "aimass-operator", version, about, long_about)]
pub struct Config {
    /// Address of the admin server: /livez, /readyz and /metrics.
    #[arg(long, env = "AIMASS_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,

    /// Install or upgrade the aimass.io CRDs with server-side apply at start,
    /// so that upgrading the operator upgrades its API (Helm never upgrades
    /// CRDs). Turn off when CRDs are managed elsewhere; the operator then
    /// waits for them to exist.
    #[arg(long, env = "AIMASS_MANAGE_CRDS", default_value_t = true, action = clap::ArgAction::Set)]
    pub manage_crds: bool,

    /// Watch only this namespace (namespaced mode, as the Helm chart's
    /// `watchNamespace`); all namespaces when unset.
    #[arg(long, env = "AIMASS_WATCH_NAMESPACE")]
    pub namespace: Option<String>,

    /// Elect one active operator among replicas through a Lease; the others
    /// wait to take over.
    #[arg(long, env = "AIMASS_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Name of the leader-election Lease.
    #[arg(long, env = "AIMASS_LEASE_NAME", default_value = "aimass-operator")]
    pub lease_name: String,

    /// Namespace of the leader-election Lease: the operator's own namespace
    /// in a cluster (`POD_NAMESPACE`), else the watched namespace, else
    /// `default`.
    #[arg(long, env = "AIMASS_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// This replica's identity in the Lease and in Events; the pod name in
    /// a cluster.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Inference server image for ModelDeployments that do not name one.
    #[arg(long, env = "AIMASS_INFERENCE_SERVER_IMAGE", default_value = concat!("aimass/inference-server:", env!("CARGO_PKG_VERSION")))]
    pub inference_server_image: String,

    /// ClusterRole bound to the ServiceAccount of `Enforced` inference
    /// servers: it must allow creating TokenReviews and
    /// SubjectAccessReviews, as `system:auth-delegator` does.
    #[arg(
        long,
        env = "AIMASS_INFERENCE_AUTH_CLUSTER_ROLE",
        default_value = "system:auth-delegator"
    )]
    pub inference_auth_cluster_role: String,

    /// Directories under which Models and TrainingJobs may keep `file://`
    /// registries (comma-separated): for single-node and development
    /// clusters whose pods share a file system with the operator. Empty (the
    /// default): `file://` storage is refused. Everyone who can write below
    /// a root can change what the operator reads there.
    #[arg(long, env = "AIMASS_FILE_STORAGE_ROOTS", value_delimiter = ',')]
    pub file_storage_roots: Vec<std::path::PathBuf>,

    /// The largest artifact a validation Job reads, in bytes; a larger (or
    /// endless) one is rejected.
    #[arg(long, env = "AIMASS_MAX_ARTIFACT_BYTES", default_value_t = 1 << 30)]
    pub max_artifact_bytes: u64,

    /// Memory limit of the Jobs that validate artifacts in tenants'
    /// namespaces (the artifact is loaded and optimised there).
    #[arg(long, env = "AIMASS_VALIDATION_MEMORY_LIMIT", default_value = "2Gi")]
    pub validation_memory_limit: String,

    /// Namespaces (comma-separated) whose pods may reach the inference
    /// servers' admin port (metrics, probes, warm-up, audit checkpoints)
    /// besides the operator's own, e.g. Prometheus's: a NetworkPolicy per
    /// ModelDeployment allows no one else.
    #[arg(long, env = "AIMASS_METRICS_SCRAPER_NAMESPACES", value_delimiter = ',')]
    pub metrics_scraper_namespaces: Vec<String>,

    /// Namespace of the audit keys of `Enforced` ModelDeployments (one
    /// Secret each) and of the key service's own key: the operator's own
    /// namespace (`POD_NAMESPACE`) unless set. Keep it out of every
    /// tenant's reach: whoever reads it can rewrite the trails.
    #[arg(long, env = "AIMASS_AUDIT_KEY_NAMESPACE")]
    pub audit_key_namespace: Option<String>,

    /// Address the audit key service listens on (servers ask it for their
    /// keys at start).
    #[arg(
        long,
        env = "AIMASS_AUDIT_KEY_SERVICE_ADDR",
        default_value = "0.0.0.0:8082"
    )]
    pub audit_key_service_addr: SocketAddr,

    /// Service (in the key namespace) whose port `audit-keys` leads to the
    /// key service; servers are told its cluster IP. Unset: they are told
    /// the address listened on, which must then be a specific one.
    #[arg(long, env = "AIMASS_AUDIT_KEY_SERVICE_NAME")]
    pub audit_key_service_name: Option<String>,

    /// Logging.
    #[command(flatten)]
    pub logging: aimass_telemetry::Logging,
}

impl Config {
    /// The operator's own namespace: its Lease and settings live there.
    pub fn operator_namespace(&self) -> String {
        self.lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .or_else(|| self.namespace.clone())
            .unwrap_or_else(|| "default".into())
    }

    /// Where the audit keys live: the operator's namespace unless set.
    pub fn audit_key_namespace(&self) -> String {
        self.audit_key_namespace
            .clone()
            .unwrap_or_else(|| self.operator_namespace())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn crd_management_can_be_turned_off() {
        let config =
            Config::try_parse_from(["aimass-operator", "--manage-crds", "false"]).expect("parses");
        assert!(!config.manage_crds);
        let config = Config::try_parse_from(["aimass-operator"]).expect("parses");
        assert!(config.manage_crds);
        assert!(config.leader_election);
        assert_eq!(config.admin_addr.port(), 8080);
        assert_eq!(config.namespace, None);
    }
}
