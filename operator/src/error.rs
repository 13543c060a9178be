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
}

impl Error {
    /// A stable PascalCase name of the error kind: the Event reason and the
    /// metric label.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Config(_) => "InvalidConfig",
            Self::Kube { .. } => "KubeApiError",
            Self::CrdNotEstablished { .. } => "CrdNotEstablished",
            Self::Admin { .. } => "AdminServerError",
            Self::Metrics(_) => "MetricsError",
        }
    }
}
