//! Container processes: each runs in its own process group (so a shell's
//! children stop with it), entered through the `exec-in-pod` helper.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::error::{Error, Result};
use crate::sandbox::{self, BindMount};

/// Everything needed to start a container's program.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
    /// Network namespace to join; none for host-network pods.
    pub netns: Option<PathBuf>,
    /// Volumes to bind-mount.
    pub mounts: Vec<BindMount>,
    /// Working directory.
    pub workdir: Option<String>,
}

impl Launch {
    /// The helper command that sets up the namespaces and runs the program,
    /// its output piped to the agent.
    pub fn command(&self, agent: &Path) -> Command {
        let mut cmd = Command::new(agent);
        cmd.arg(sandbox::SUBCOMMAND);
        if let Some(netns) = &self.netns {
            cmd.arg("--netns").arg(netns);
        }
        for m in &self.mounts {
            cmd.arg("--mount").arg(m.to_arg());
        }
        if let Some(dir) = &self.workdir {
            cmd.arg("--workdir").arg(dir);
        }
        cmd.arg("--").args(&self.argv);
        cmd.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        cmd
    }

    /// Starts the program.
    pub fn spawn(&self, agent: &Path) -> Result<Child> {
        self.command(agent)
            .spawn()
            .map_err(Error::io(format!("starting {:?}", self.argv.first())))
    }
}

/// Sends `signal` to a whole process group, ignoring groups already gone.
pub fn signal_group(pgid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pgid) {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// SIGTERM, then SIGKILL after `grace` if the child has not exited; then
/// SIGKILL to whatever is left of its group.
pub async fn terminate(child: &mut Child, grace: Duration) -> Option<std::process::ExitStatus> {
    let Some(pgid) = child.id() else {
        return child.wait().await.ok();
    };
    signal_group(pgid, Signal::SIGTERM);
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            signal_group(pgid, Signal::SIGKILL);
            child.wait().await.ok()
        }
    };
    signal_group(pgid, Signal::SIGKILL);
    status
}

/// Records a running group so `cluster-down` can sweep it if the agent dies.
pub fn record_group(dir: &Path, name: &str, pgid: u32) {
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(dir.join(name), pgid.to_string());
}

/// Forgets a group once it is gone.
pub fn forget_group(dir: &Path, name: &str) {
    let _ = std::fs::remove_file(dir.join(name));
}
