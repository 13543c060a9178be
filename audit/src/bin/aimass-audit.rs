//! Checks an audit trail written by `aimass-inference-server --audit-log`.
//!
//! `aimass-audit verify --log audit.jsonl --key-file key` reads every record
//! and reports the first one that was changed, deleted, inserted or
//! reordered; with `--expect-sequence` and `--expect-mac` (a checkpoint kept
//! elsewhere) it also reports a trail cut short or rewritten at its end.
//!
//! `aimass-audit verify-seal --namespace risk --model fraud --verifying-key
//! K --checkpoint '{…}'` checks a sealed checkpoint as the operator keeps it
//! in `status.auditCheckpoints`, with the public key from
//! `status.auditVerifyingKey`: no secret is needed.
//!
//! Exit status 0 means intact, 1 means broken, 2 means unreadable.

use std::path::PathBuf;
use std::process::ExitCode;

use aimass_audit::seal::{self, Seal};
use aimass_audit::{AuditError, Checkpoint};
use clap::{Parser, Subcommand};

/// Audit trail tools.
#[derive(Debug, Parser)]
#[command(
    name = "aimass-audit",
    version,
    about = "Checks an audit trail of model calls, and a sealed checkpoint of one"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verifies the chain of records and reports the first bad one.
    Verify {
        /// The audit trail (JSON lines).
        #[arg(long)]
        log: PathBuf,
        /// The chain's key (the same file the server was given).
        #[arg(long)]
        key_file: PathBuf,
        /// The sequence of a checkpoint the trail must reach.
        #[arg(long, requires = "expect_mac")]
        expect_sequence: Option<u64>,
        /// The mac of the record at that sequence.
        #[arg(long, requires = "expect_sequence")]
        expect_mac: Option<String>,
    },
    /// Checks the seal of a checkpoint kept in a ModelDeployment's status.
    VerifySeal {
        /// Namespace of the ModelDeployment.
        #[arg(long)]
        namespace: String,
        /// The model it serves (`spec.model.name`).
        #[arg(long)]
        model: String,
        /// `status.auditVerifyingKey`.
        #[arg(long)]
        verifying_key: String,
        /// One entry of `status.auditCheckpoints`, as JSON.
        #[arg(long)]
        checkpoint: String,
    },
}

/// A checkpoint as `status.auditCheckpoints` keeps it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kept {
    pod: String,
    sequence: u64,
    mac: String,
    #[serde(default)]
    write_failures: u64,
    sealed_at: Option<String>,
    signature: Option<String>,
}

fn main() -> ExitCode {
    match Args::parse().command {
        Command::Verify {
            log,
            key_file,
            expect_sequence,
            expect_mac,
        } => verify(&log, &key_file, expect_sequence.zip(expect_mac)),
        Command::VerifySeal {
            namespace,
            model,
            verifying_key,
            checkpoint,
        } => verify_seal(namespace, model, &verifying_key, &checkpoint),
    }
}

fn verify_seal(
    namespace: String,
    model: String,
    verifying_key: &str,
    checkpoint: &str,
) -> ExitCode {
    let kept: Kept = match serde_json::from_str(checkpoint) {
        Ok(kept) => kept,
        Err(e) => {
            eprintln!("the checkpoint is not a status.auditCheckpoints entry: {e}");
            return ExitCode::from(2);
        }
    };
    let (Some(time), Some(signature)) = (kept.sealed_at, kept.signature) else {
        println!("broken: the checkpoint of {} is not sealed", kept.pod);
        return ExitCode::from(1);
    };
    let seal = Seal {
        namespace,
        model,
        pod: kept.pod,
        sequence: kept.sequence,
        mac: kept.mac,
        write_failures: kept.write_failures,
        time,
        signature,
    };
    match seal::verify(&seal, verifying_key) {
        Ok(()) => {
            println!(
                "sealed: the trail of {} stood at record {} (mac {}) at {}",
                seal.pod, seal.sequence, seal.mac, seal.time
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("broken: {e}");
            ExitCode::from(1)
        }
    }
}

fn verify(
    log: &std::path::Path,
    key_file: &std::path::Path,
    expect: Option<(u64, String)>,
) -> ExitCode {
    let key = match std::fs::read(key_file) {
        Ok(key) => key,
        Err(e) => {
            eprintln!("cannot read the key {}: {e}", key_file.display());
            return ExitCode::from(2);
        }
    };
    let checkpoint = expect.map(|(sequence, mac)| Checkpoint { sequence, mac });
    match aimass_audit::verify(log, &key, checkpoint.as_ref()) {
        Ok(tail) => {
            println!("intact: {} records; last mac {}", tail.sequence, tail.mac);
            ExitCode::SUCCESS
        }
        Err(e @ AuditError::Broken { .. }) => {
            println!("broken: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_help_says_what_this_tool_does() {
        Args::command().debug_assert();
        let help = Args::command().render_help().to_string();
        assert!(help.starts_with("Checks an audit trail"), "{help}");
        assert!(!help.contains("Open Inference Protocol"), "{help}");
    }
}
