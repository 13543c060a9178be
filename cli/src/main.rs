//! `kubectl aimass`: the kubectl plugin of aimass (a binary named
//! `kubectl-aimass` on the `PATH`). `kubectl aimass export` writes a proven
//! version of a Model as a Model manifest for another cluster: the artifact
//! pinned by its sha256, and the provenance this cluster recorded (origin,
//! training run, evidence, approvals), ready for a pull request into that
//! cluster's GitOps repository.

mod export;

use clap::{Parser, Subcommand};

/// The kubectl plugin of aimass.
#[derive(Parser, Debug)]
#[command(name = "kubectl aimass", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a Model manifest that imports one version of a Model, pinned
    /// by sha256 and carrying its provenance (declared, in the importing
    /// cluster).
    Export(export::Args),
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Export(args) => export::run(args).await,
    };
    match result {
        Ok(manifest) => print!("{manifest}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
