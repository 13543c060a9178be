//! Checks an audit trail written by `aimass-inference-server --audit-log`.
//!
//! `aimass-audit verify --log audit.jsonl --key-file key` reads every record
//! and reports the first one that was changed, deleted, inserted or
//! reordered; with `--expect-sequence` and `--expect-mac` (a checkpoint kept
//! elsewhere) it also reports a trail cut short or rewritten at its end.
//! Exit status 0 means intact, 1 means broken, 2 means unreadable.

use std::path::PathBuf;
use std::process::ExitCode;

use aimass_inference_server::audit::{self, AuditError, Checkpoint};
use clap::{Parser, Subcommand};

/// Audit trail tools.
#[derive(Debug, Parser)]
#[command(name = "aimass-audit", version, about)]
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
}

fn main() -> ExitCode {
    let Command::Verify {
        log,
        key_file,
        expect_sequence,
        expect_mac,
    } = Args::parse().command;
    let key = match std::fs::read(&key_file) {
        Ok(key) => key,
        Err(e) => {
            eprintln!("cannot read the key {}: {e}", key_file.display());
            return ExitCode::from(2);
        }
    };
    let checkpoint = expect_sequence
        .zip(expect_mac)
        .map(|(sequence, mac)| Checkpoint { sequence, mac });
    match audit::verify(&log, &key, checkpoint.as_ref()) {
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
