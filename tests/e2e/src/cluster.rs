//! The cluster the tests run against, and the tools they drive it with
//! (kubectl, helm).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, ensure};
use kube::Client;

use crate::*;

/// Makes sure a cluster is reachable: `KUBECONFIG` when set, else the local
/// cluster, started (once per process) with `scripts/cluster-up.sh`, which
/// returns at once when it already runs.
fn ensure_cluster() -> Result<()> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            if std::env::var_os("KUBECONFIG").is_some() {
                return Ok(());
            }
            let root = repo_root();
            let status = Command::new("bash")
                .arg(root.join("scripts/cluster-up.sh"))
                .status()
                .map_err(|e| format!("cannot run scripts/cluster-up.sh: {e}"))?;
            if !status.success() {
                return Err("scripts/cluster-up.sh failed".into());
            }
            let dir = std::env::var_os("AIMASS_CLUSTER_DIR")
                .map_or_else(|| root.join(".cluster"), PathBuf::from);
            // Recorded for the clients and kubectl calls this helper makes;
            // the process environment is left alone.
            let _ = KUBECONFIG_OVERRIDE.set(dir.join("admin.kubeconfig"));
            Ok(())
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The local cluster's kubeconfig, when this helper started it.
static KUBECONFIG_OVERRIDE: OnceLock<PathBuf> = OnceLock::new();

/// A client for the test cluster.
pub async fn client() -> Result<Client> {
    Ok(Client::try_from(client_config().await?)?)
}

/// A client that acts as `user` (impersonated by the cluster admin), so the
/// API server authorises and admits its requests as that user's.
pub async fn client_as(user: &str) -> Result<Client> {
    let mut config = client_config().await?;
    config.auth_info.impersonate = Some(user.to_owned());
    Ok(Client::try_from(config)?)
}

/// The test cluster's client configuration (as the cluster admin).
pub async fn client_config() -> Result<kube::Config> {
    ensure_cluster()?;
    // object_store brings rustls with aws-lc-rs and kube with ring; with both
    // linked, rustls cannot pick a provider itself, so every binary picks ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match KUBECONFIG_OVERRIDE.get() {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(config)
}

/// The kubeconfig path the tests use, for kubectl.
pub fn kubeconfig() -> Option<PathBuf> {
    KUBECONFIG_OVERRIDE
        .get()
        .cloned()
        .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
}

/// Runs kubectl (from PATH, or the one cluster-up installed) against the test
/// cluster; returns (success, stdout, stderr).
pub fn kubectl(args: &[&str]) -> Result<(bool, String, String)> {
    run_tool(kubectl_path(), args)
}

/// Applies the CRDs in `dir` server-side (as `field_manager`, forcing
/// conflicts, when given) and waits until the API server serves them.
pub fn apply_crds(dir: &Path, field_manager: Option<&str>) -> Result<()> {
    let dir = dir.to_string_lossy();
    let mut args = vec!["apply", "--server-side"];
    if let Some(manager) = field_manager {
        args.extend(["--force-conflicts", "--field-manager", manager]);
    }
    args.extend(["-f", &dir]);
    let (ok, _, err) = kubectl(&args)?;
    ensure!(ok, "applying the CRDs in {dir}: {err}");
    let (ok, _, err) = kubectl(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout",
        "60s",
        "-f",
        &dir,
    ])?;
    ensure!(ok, "the CRDs in {dir} were not established: {err}");
    Ok(())
}

/// Runs helm (the one installed next to kubectl) against the test cluster;
/// returns (success, stdout, stderr).
pub fn helm(args: &[&str]) -> Result<(bool, String, String)> {
    run_tool(kubectl_path().with_file_name("helm"), args)
}

fn run_tool(program: PathBuf, args: &[&str]) -> Result<(bool, String, String)> {
    let mut cmd = Command::new(&program);
    if let Some(k) = kubeconfig() {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd
        .args(args)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Where kubectl is: `KUBECTL`, the cached copy from the PyPI package, or PATH.
pub fn kubectl_path() -> PathBuf {
    if let Some(k) = std::env::var_os("KUBECTL") {
        return PathBuf::from(k);
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". {}/scripts/lib.sh && echo \"$KUBECTL_BIN_DIR/kubectl\"",
            repo_root().display()
        ))
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let path = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            if path.exists() {
                path
            } else {
                PathBuf::from("kubectl")
            }
        }
        _ => PathBuf::from("kubectl"),
    }
}
