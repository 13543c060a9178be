//! The operator's error type.

/// Everything that can go wrong in the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration given at start-up is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A call to the Kubernetes API failed.
    #[error("kubernetes API call failed: {context}")]
    Kube {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },

    /// A CRD did not become established in time.
    #[error("CRD {name} was not established: {reason}")]
    CrdNotEstablished {
        /// Name of the CRD.
        name: String,
        /// Why waiting ended.
        reason: String,
    },

    /// The admin server could not bind or serve.
    #[error("admin server failed on {addr}")]
    Admin {
        /// Address it tried.
        addr: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Metrics could not be registered or encoded.
    #[error("metrics failed")]
    Metrics(#[from] prometheus::Error),

    /// Artifact storage could not be reached, read or written.
    #[error("artifact storage failed: {0}")]
    Storage(#[from] aimass_storage::Error),

    /// An object the spec refers to does not exist.
    #[error("{kind} {name:?} not found in namespace {namespace:?}")]
    NotFound {
        /// Kind of the missing object.
        kind: &'static str,
        /// Its name.
        name: String,
        /// Its namespace.
        namespace: String,
    },

    /// The spec breaks a rule the schema cannot express.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    /// Another writer changed the object first; the reconcile runs again.
    #[error("{0} changed while it was being updated")]
    Conflict(String),

    /// Leader election failed.
    #[error("leader election failed")]
    LeaderElection(#[from] kube_lease_manager::LeaseManagerError),
}

impl Error {
    /// The categories a reconcile can fail with (the rest stop the process).
    pub const RECONCILE_CATEGORIES: [&'static str; 5] = [
        "KubeApiError",
        "StorageUnavailable",
        "ReferenceNotFound",
        "InvalidSpec",
        "Conflict",
    ];

    /// A stable PascalCase name of the error kind: the Event reason and the
    /// metric label.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Config(_) => "InvalidConfig",
            Self::Kube { .. } => "KubeApiError",
            Self::CrdNotEstablished { .. } => "CrdNotEstablished",
            Self::Admin { .. } => "AdminServerError",
            Self::Metrics(_) => "MetricsError",
            Self::Storage(_) => "StorageUnavailable",
            Self::NotFound { .. } => "ReferenceNotFound",
            Self::InvalidSpec(_) => "InvalidSpec",
            Self::Conflict(_) => "Conflict",
            Self::LeaderElection(_) => "LeaderElectionFailed",
        }
    }

    /// Wraps a client error with what was being done.
    pub fn kube(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let context = context.into();
        move |source| Self::Kube { context, source }
    }

    /// How long to wait after this error before reconciling again: soon
    /// after a conflict, long after a spec that cannot work.
    pub fn retry_delay(&self) -> std::time::Duration {
        use std::time::Duration;
        match self {
            Self::Conflict(_) => Duration::from_millis(500),
            Self::InvalidSpec(_) => Duration::from_secs(300),
            _ => Duration::from_secs(10),
        }
    }

    /// [`Self::retry_delay`] as a controller action.
    pub fn retry_after(&self) -> kube::runtime::controller::Action {
        kube::runtime::controller::Action::requeue(self.retry_delay())
    }

    /// The error and every cause under it, in one sentence.
    pub fn explain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        text
    }
}

/// Whether a client error is the API server's 409 Conflict.
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// Whether a client error is the API server's 403 Forbidden.
pub fn is_forbidden(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 403)
}

/// Whether a client error is the API server's 404 Not Found.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}
