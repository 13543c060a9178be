//! Makes API keys for `ApiClient`s.
//!
//! `aimass-apikey new --secret exchange-a-2026-11 --key-file exchange-a.key`
//! writes a fresh key to the key file (created, mode 0600: hand it to the
//! client over a channel you trust) and prints the Secret to apply, which
//! holds only the key's id and SHA-256. Name that Secret in the ApiClient's
//! `spec.keys`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use aimass_crds::api_key;
use aimass_inference_server::security::generate_api_key;
use clap::{Parser, Subcommand};

/// API key tools.
#[derive(Debug, Parser)]
#[command(
    name = "aimass-apikey",
    version,
    about = "Makes API keys for ApiClients: the key for the client, the Secret (id and hash only) for the cluster"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Makes a key: writes it to --key-file, prints its Secret (id and hash
    /// only) as YAML.
    New {
        /// Name of the Secret to print.
        #[arg(long)]
        secret: String,
        /// Namespace of the Secret: the ApiClient's.
        #[arg(long)]
        namespace: Option<String>,
        /// File to write the key to; must not exist.
        #[arg(long)]
        key_file: PathBuf,
    },
}

fn main() -> ExitCode {
    let Command::New {
        secret,
        namespace,
        key_file,
    } = Args::parse().command;
    let (key, id, sha256) = match generate_api_key() {
        Ok(generated) => generated,
        Err(e) => {
            eprintln!("no randomness for a key: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = write_new(&key_file, &key) {
        eprintln!("cannot write the key to {}: {e}", key_file.display());
        return ExitCode::FAILURE;
    }
    let namespace = namespace
        .map(|ns| format!("\n  namespace: {ns}"))
        .unwrap_or_default();
    println!(
        "apiVersion: v1
kind: Secret
metadata:
  name: {secret}{namespace}
  labels:
    aimass.io/api-key: \"true\"
type: Opaque
stringData:
  {}: \"{id}\"
  {}: \"{sha256}\"",
        api_key::SECRET_ID,
        api_key::SECRET_SHA256
    );
    eprintln!(
        "wrote key {id} to {}; it is shown nowhere else",
        key_file.display()
    );
    ExitCode::SUCCESS
}

/// Creates `path` readable by its owner only and writes `key` to it.
fn write_new(path: &std::path::Path, key: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_help_says_what_this_tool_does() {
        Args::command().debug_assert();
        let help = Args::command().render_help().to_string();
        assert!(help.starts_with("Makes API keys for ApiClients"), "{help}");
        assert!(!help.contains("Open Inference Protocol"), "{help}");
    }
}
