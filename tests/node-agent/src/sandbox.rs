//! The first moments of a container process: the agent re-executes itself as
//! `aimass-node-agent exec-in-pod …`, which joins the pod's network
//! namespace, gives itself a private mount namespace with the pod's volumes
//! bind-mounted at their paths, and then becomes the container's program.
//! Doing this in a fresh single-threaded process keeps the namespace calls
//! safe (they are not allowed in the agent's multi-threaded runtime).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use clap::Parser;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};

/// The name of the subcommand.
pub const SUBCOMMAND: &str = "exec-in-pod";

/// Arguments of `exec-in-pod`.
#[derive(Debug, Parser)]
#[command(name = "aimass-node-agent exec-in-pod")]
pub struct ExecArgs {
    /// Network namespace to join (a path under /var/run/netns).
    #[arg(long)]
    pub netns: Option<PathBuf>,

    /// A bind mount, as `source:target` or `source:target:ro`.
    #[arg(long = "mount")]
    pub mounts: Vec<String>,

    /// Working directory of the program.
    #[arg(long)]
    pub workdir: Option<PathBuf>,

    /// The program and its arguments.
    #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// A parsed `--mount` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    /// Host path.
    pub source: PathBuf,
    /// Path the container sees.
    pub target: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
}

impl BindMount {
    /// Formats the mount as a `--mount` argument.
    pub fn to_arg(&self) -> String {
        format!(
            "{}:{}{}",
            self.source.display(),
            self.target.display(),
            if self.read_only { ":ro" } else { "" }
        )
    }

    fn parse(arg: &str) -> anyhow::Result<Self> {
        let mut parts = arg.split(':');
        let (Some(source), Some(target)) = (parts.next(), parts.next()) else {
            anyhow::bail!("mount {arg:?} is not source:target[:ro]");
        };
        let read_only = match parts.next() {
            None => false,
            Some("ro") => true,
            Some(other) => anyhow::bail!("mount option {other:?} is not ro"),
        };
        Ok(Self {
            source: source.into(),
            target: target.into(),
            read_only,
        })
    }
}

/// Sets up the namespaces and replaces this process with the program. Returns
/// only on failure.
pub fn exec(args: ExecArgs) -> anyhow::Error {
    match prepare(&args) {
        Ok(()) => {
            let err = Command::new(&args.command[0])
                .args(&args.command[1..])
                .exec();
            anyhow::Error::new(err).context(format!("cannot run {:?}", args.command[0]))
        }
        Err(e) => e,
    }
}

fn prepare(args: &ExecArgs) -> anyhow::Result<()> {
    if let Some(netns) = &args.netns {
        let ns = File::open(netns)
            .with_context(|| format!("opening network namespace {}", netns.display()))?;
        setns(ns, CloneFlags::CLONE_NEWNET).context("joining the pod's network namespace")?;
    }
    if !args.mounts.is_empty() {
        unshare(CloneFlags::CLONE_NEWNS).context("creating a mount namespace")?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("making mounts private")?;
        let mounts = args
            .mounts
            .iter()
            .map(|a| BindMount::parse(a))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Sources are opened before anything is mounted: a mount over, say,
        // /work must not hide a source that lives below /work.
        let sources = mounts
            .iter()
            .map(|m| {
                File::open(&m.source)
                    .with_context(|| format!("opening volume {}", m.source.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (m, source) in mounts.iter().zip(&sources) {
            ensure_target(m, source.metadata().is_ok_and(|meta| meta.is_dir()))?;
            let source_path = format!("/proc/self/fd/{}", source.as_raw_fd());
            mount(
                Some(source_path.as_str()),
                &m.target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .with_context(|| {
                format!("mounting {} at {}", m.source.display(), m.target.display())
            })?;
            if m.read_only {
                let flags =
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC;
                mount(None::<&str>, &m.target, None::<&str>, flags, None::<&str>)
                    .with_context(|| format!("making {} read-only", m.target.display()))?;
            }
        }
    }
    if let Some(dir) = &args.workdir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating working directory {}", dir.display()))?;
        std::env::set_current_dir(dir)
            .with_context(|| format!("entering working directory {}", dir.display()))?;
    }
    Ok(())
}

/// A bind mount needs its target to exist, as a directory or a file like its
/// source. (It is created on the host's file system, empty, as container
/// runtimes do in their root file systems.)
fn ensure_target(m: &BindMount, source_is_dir: bool) -> anyhow::Result<()> {
    if m.target.exists() {
        return Ok(());
    }
    if source_is_dir {
        std::fs::create_dir_all(&m.target)?;
    } else {
        if let Some(parent) = m.target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        File::create(&m.target)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_arguments_round_trip() {
        let m = BindMount {
            source: "/state/pods/u/volumes/token".into(),
            target: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
            read_only: true,
        };
        assert_eq!(BindMount::parse(&m.to_arg()).unwrap(), m);
        assert!(BindMount::parse("/only-one-part").is_err());
        assert!(BindMount::parse("/a:/b:rw").is_err());
    }
}
