//! The operator as the tests run it: a local process per test, watching only
//! the test's namespace (the chart's namespaced mode) and electing itself
//! leader through a Lease there, with its log kept for diagnostics.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::{TestNamespace, kubeconfig, repo_root};

/// A running operator process; killed when dropped.
pub struct Operator {
    child: Child,
    /// Where its log goes.
    pub log: PathBuf,
}

/// The cargo target directory the scripts build into.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from)
}

/// Applies the CRDs once per test process, as the operator would at start:
/// many operators applying them at the same moment only add load.
fn install_crds() -> Result<()> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            crate::apply_crds(&repo_root().join("crds"), Some("aimass-operator"))
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The namespace of the test operators' audit keys: shared by every test
/// (each key Secret is named after its ModelDeployment's namespace), apart
/// from every test namespace, as the operator's own namespace is from
/// tenants' in a cluster.
pub const KEY_NAMESPACE: &str = "aimass-e2e-keys";

/// Creates [`KEY_NAMESPACE`] once per test process.
fn create_key_namespace() -> Result<()> {
    static CREATED: OnceLock<Result<(), String>> = OnceLock::new();
    CREATED
        .get_or_init(|| {
            let (ok, _, err) = crate::kubectl(&["create", "namespace", KEY_NAMESPACE])
                .map_err(|e| format!("{e:#}"))?;
            if ok || err.contains("AlreadyExists") {
                Ok(())
            } else {
                Err(err)
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The address pods reach this host at: the local cluster's gateway, which
/// the API server's URL names.
fn gateway() -> Result<String> {
    let path = kubeconfig().context("no kubeconfig")?;
    let config = kube::config::Kubeconfig::read_from(&path)?;
    let server = config
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .context("the kubeconfig names no server")?;
    let url = url::Url::parse(&server)?;
    Ok(url
        .host_str()
        .context("the server URL has no host")?
        .to_owned())
}

impl Operator {
    /// Starts an operator for `ns`; `instance` tells several apart in logs.
    pub fn start(ns: &TestNamespace, instance: &str) -> Result<Self> {
        Self::start_with_env(ns, instance, &[])
    }

    /// Starts an operator for `ns` with extra environment variables, such as
    /// the ambient credentials of a node.
    pub fn start_with_env(
        ns: &TestNamespace,
        instance: &str,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        Self::spawn(ns, ["--namespace", ns.name.as_str()], instance, env)
    }

    /// Starts an operator that watches every namespace (the chart's default
    /// mode), its Lease in `home`; for tests that span namespaces, which no
    /// other test runs beside (a test binary of its own).
    pub fn start_cluster_wide(home: &TestNamespace, instance: &str) -> Result<Self> {
        Self::spawn(
            home,
            ["--lease-namespace", home.name.as_str()],
            instance,
            &[],
        )
    }

    fn spawn(
        ns: &TestNamespace,
        scope: [&str; 2],
        instance: &str,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        install_crds()?;
        create_key_namespace()?;
        // The scale benchmark measures the release build.
        let profile =
            std::env::var("AIMASS_E2E_OPERATOR_PROFILE").unwrap_or_else(|_| "debug".into());
        let binary = target_dir().join(profile).join("aimass-operator");
        if !binary.exists() {
            bail!(
                "{} is missing: run `cargo build -p aimass-operator` (scripts/e2e.sh does)",
                binary.display()
            );
        }
        let logs = target_dir().join("e2e-logs");
        std::fs::create_dir_all(&logs)?;
        let log = logs.join(format!("{}-operator-{instance}.log", ns.name));
        let file = std::fs::File::create(&log)?;
        let mut command = Command::new(&binary);
        command
            .args(scope)
            .args([
                "--admin-addr",
                "127.0.0.1:0",
                "--manage-crds",
                "false",
                "--file-storage-roots",
            ])
            .arg(std::env::temp_dir().join("aimass-e2e"))
            .args([
                "--audit-key-namespace",
                KEY_NAMESPACE,
                "--audit-key-service-addr",
            ])
            .arg(format!("{}:0", gateway()?))
            .arg("--identity")
            .arg(format!("{}-{instance}", ns.name))
            .env("RUST_LOG", "info,aimass_operator=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        if let Some(config) = kubeconfig() {
            command.env("KUBECONFIG", config);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self { child, log })
    }

    /// The most memory the process has held so far (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        self.memory("VmHWM:")
    }

    /// The memory the process holds now (VmRSS), in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        self.memory("VmRSS:")
    }

    /// A size in kB from the process's `/proc/<pid>/status`, in bytes.
    fn memory(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Kills the process at once (SIGKILL), as a crash or an OOM kill would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Where its admin endpoints (`/metrics`, probes) listen, from its log.
    pub fn admin_address(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .find(|l| l.contains("admin endpoints listening"))?
            .split_whitespace()
            .find_map(|word| word.strip_prefix("address="))
            .map(str::to_owned)
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a test body in a fresh namespace with an operator watching it; the
/// operator's last log lines are printed when the body fails.
pub async fn run_with_operator<F, Fut>(prefix: &str, body: F) -> Result<()>
where
    F: FnOnce(std::sync::Arc<TestNamespace>) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    crate::run(prefix, |ns| async move {
        let operator = Operator::start(&ns, "a")?;
        let result = body(ns).await;
        if result.is_err() {
            eprintln!("operator log:\n{}", operator.log_tail(80));
        }
        result
    })
    .await
}

/// The last `lines` lines of the file at `path` (empty when unreadable).
pub fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
