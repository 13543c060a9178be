//! The node agent's error type.

/// Everything that can go wrong while running pods.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("kubernetes API call failed: {context}")]
    Kube {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },

    /// A host command (ip, …) failed.
    #[error("command `{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },

    /// Local I/O failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The pod asks for something the agent cannot do; it is reported in the
    /// pod's status.
    #[error("{reason}: {message}")]
    Unsupported {
        /// CamelCase reason, as a kubelet would report it.
        reason: &'static str,
        /// What exactly.
        message: String,
    },

    /// Configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    /// Wraps a Kubernetes API error with what was being done.
    pub fn kube(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let context = context.into();
        move |source| Self::Kube { context, source }
    }
}

/// The agent's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
