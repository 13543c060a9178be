//! Calls over the Open Inference Protocol's gRPC service with Triton's own
//! client (tritonclient.grpc, from the other projects' clients' Python
//! environment), as a gRPC user of a ModelDeployment would.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::repo_root;

/// One inference of `request` (an OIP REST request's JSON) on `model` at
/// `address`, with a bearer `token` when given: `{"status": "OK",
/// "outputs": {name: [values]}}` or `{"status": "<gRPC code>", "message":
/// "..."}`.
pub async fn grpc_infer(
    address: &str,
    model: &str,
    request: &Value,
    token: Option<&str>,
) -> Result<Value> {
    let (address, model, token) = (
        address.to_owned(),
        model.to_owned(),
        token.map(str::to_owned),
    );
    let request = request.to_string();
    tokio::task::spawn_blocking(move || {
        let venv = Command::new("bash")
            .arg(repo_root().join("scripts/clients-venv.sh"))
            .output()?;
        ensure!(venv.status.success(), "the clients' Python environment");
        let python =
            std::path::PathBuf::from(String::from_utf8(venv.stdout)?.trim()).join("bin/python");
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file =
            std::env::temp_dir().join(format!("aimass-grpc-{}-{n}.json", std::process::id()));
        std::fs::write(&file, request)?;
        let out = Command::new(python)
            .arg(repo_root().join("tests/clients/grpc_infer.py"))
            .arg(&address)
            .arg(&model)
            .arg(&file)
            .args(token)
            .output();
        let _ = std::fs::remove_file(&file);
        let out = out?;
        ensure!(
            out.status.success(),
            "grpc_infer.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).context("grpc_infer.py's answer")
    })
    .await?
}
