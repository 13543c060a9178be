//! Test support for the cluster tests: a cluster brought up once per run (or
//! the one `KUBECONFIG` names), a throwaway namespace per test with its pods'
//! logs and events printed when the test fails, server-side apply of YAML,
//! and waits on conditions with timeouts, never bare sleeps.

use std::path::{Path, PathBuf};

mod cluster;
pub mod console;
pub mod grpc;
mod http;
pub mod load;
mod namespace;
pub mod operator;
mod scoring;

pub use cluster::*;
pub use http::*;
pub use namespace::*;
pub use scoring::*;

/// The field manager tests apply with.
pub const FIELD_MANAGER: &str = "aimass-e2e";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}
