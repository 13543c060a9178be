//! The README's commands, run as a reader would copy them. `make demo` and
//! `make test` are run by CI and by hand; this runs the "with a cluster up"
//! block against the test cluster.

use aimass_e2e::repo_root;
use anyhow::{Context, Result, ensure};

/// The shell block that follows `marker` in the README.
fn block_after(marker: &str) -> Result<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md"))?;
    let rest = &readme[readme.find(marker).context("marker not in the README")?..];
    let start = rest
        .find("```sh\n")
        .context("no sh block after the marker")?
        + "```sh\n".len();
    let end = rest[start..].find("```").context("unterminated block")?;
    Ok(rest[start..start + end].to_owned())
}

#[tokio::test]
async fn the_readme_path_for_a_running_cluster_brings_the_minimal_example_to_ready() -> Result<()> {
    // A fresh namespace name in place of the README's `demo`.
    let client = aimass_e2e::client().await?;
    let ns = format!(
        "e2e-readme-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos()
    );
    let script = block_after("With a cluster up")?
        .replace(" demo", &format!(" {ns}"))
        .replace("=demo", &format!("={ns}"));
    ensure!(
        script.contains("helm upgrade --install aimass") && !script.contains("demo"),
        "the README block changed: {script}"
    );
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(repo_root())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let diagnostics = if out.status.success() {
        String::new()
    } else {
        let (_, described, _) =
            aimass_e2e::kubectl(&["-n", &ns, "describe", "models,modeldeployments"])?;
        let (_, operator, _) =
            aimass_e2e::kubectl(&["-n", "aimass-system", "logs", "deploy/aimass", "--tail=60"])?;
        format!("{described}\n{operator}")
    };
    // Leave nothing behind: the release, its kept roles, the namespace.
    let _ = aimass_e2e::helm(&[
        "uninstall",
        "aimass",
        "--namespace",
        "aimass-system",
        "--wait",
    ]);
    let _ = aimass_e2e::kubectl(&[
        "delete",
        "clusterrole",
        "aimass-model-invoker",
        "aimass-model-viewer",
        "--ignore-not-found",
    ]);
    let _ = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
        .delete(&ns, &Default::default())
        .await;
    ensure!(
        out.status.success(),
        "the README block failed:\n{stdout}\n{stderr}\n{diagnostics}"
    );
    for kind in [
        "model.aimass.io/credit-risk",
        "modeldeployment.aimass.io/credit-risk",
    ] {
        ensure!(
            stdout.contains(kind),
            "`kubectl get aimass` shows no {kind}:\n{stdout}"
        );
    }
    Ok(())
}
