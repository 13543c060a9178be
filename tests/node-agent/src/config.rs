//! Command line and the image map: which local program stands for which
//! container image.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

use crate::error::{Error, Result};

/// Registers nodes with the API server and runs the pods scheduled to them as
/// local processes, each pod in its own network namespace on a bridge.
#[derive(Debug, Parser)]
#[command(name = "aimass-node-agent", version, about)]
pub struct Config {
    /// How many nodes to register.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,

    /// Node names are this prefix followed by an index.
    #[arg(long, default_value = "aimass-node-")]
    pub node_prefix: String,

    /// Where pods' volumes, logs and process ids are kept.
    #[arg(long)]
    pub state_dir: PathBuf,

    /// Bridge the pods' network interfaces attach to (created by cluster-up).
    #[arg(long, default_value = "aimass0")]
    pub bridge: String,

    /// The host's address on the bridge: the pods' gateway and the nodes'
    /// InternalIP, where the kubelet endpoints listen.
    #[arg(long)]
    pub gateway: Ipv4Addr,

    /// Prefix length of the pod network on the bridge.
    #[arg(long, default_value_t = 16)]
    pub pod_prefix_len: u8,

    /// YAML file mapping container images to local programs.
    #[arg(long)]
    pub images: PathBuf,

    /// TLS certificate the kubelet endpoints serve (signed by the cluster CA).
    #[arg(long)]
    pub tls_cert: PathBuf,

    /// Key of --tls-cert.
    #[arg(long)]
    pub tls_key: PathBuf,

    /// CA whose client certificates (the API server's) may call the kubelet
    /// endpoints.
    #[arg(long)]
    pub client_ca: PathBuf,

    /// CPU capacity of each node, in cores.
    #[arg(long, default_value = "4")]
    pub node_cpu: String,

    /// Memory capacity of each node.
    #[arg(long, default_value = "8Gi")]
    pub node_memory: String,

    /// Most pods per node.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,

    /// Log filter in RUST_LOG syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
}

/// What runs for one image, in Docker's terms: `entrypoint` is replaced by a
/// container's `command`, `cmd` by its `args`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// The program and its leading arguments.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// Default arguments.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Environment the image sets.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Default working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
}

/// The image map file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageMap {
    /// Image reference (with or without tag) to what it runs.
    pub images: BTreeMap<String, ImageSpec>,
}

impl ImageMap {
    /// Reads the map from a YAML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(Error::io(format!("reading {}", path.display())))?;
        serde_yaml_ng::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// What an image runs: an exact match, else the image without its tag or
    /// digest. Unmapped images run the container's own command (like an image
    /// with no entrypoint, such as busybox).
    pub fn resolve(&self, image: &str) -> Option<&ImageSpec> {
        self.images
            .get(image)
            .or_else(|| self.images.get(repository(image)))
    }
}

/// The image reference without tag or digest: `reg:5000/a/b:1.2@sha256:…` →
/// `reg:5000/a/b`.
fn repository(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rfind(':') {
        Some(colon) if !without_digest[colon..].contains('/') => &without_digest[..colon],
        _ => without_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_match_with_and_without_tags() {
        let map: ImageMap = serde_yaml_ng::from_str(
            "images:\n  aimass/inference-server: {entrypoint: [/bin/server]}\n  busybox:1.36: {entrypoint: [/bin/sh]}\n",
        )
        .unwrap();
        assert_eq!(
            map.resolve("aimass/inference-server:0.1.0")
                .unwrap()
                .entrypoint,
            ["/bin/server"]
        );
        assert_eq!(
            map.resolve("aimass/inference-server").unwrap().entrypoint,
            ["/bin/server"]
        );
        assert_eq!(map.resolve("busybox:1.36").unwrap().entrypoint, ["/bin/sh"]);
        assert!(map.resolve("busybox:latest").is_none());
        assert_eq!(
            repository("registry:5000/team/img:2@sha256:abc"),
            "registry:5000/team/img"
        );
        assert_eq!(
            repository("registry:5000/team/img"),
            "registry:5000/team/img"
        );
    }
}
