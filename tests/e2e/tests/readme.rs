//! The manual's commands, run as a reader would copy them. `make demo` and
//! `make test` are run by CI and by hand; this runs every block fenced as
//! ```` ```sh local ```` in README.md and docs/, in order, against the test
//! cluster: the path for a running cluster, then what the docs say to do
//! there (such as pausing migrations and upgrading meanwhile).

use aimass_e2e::repo_root;
use anyhow::{Context, Result, ensure};

/// The fence that marks a block as runnable on the local cluster.
const LOCAL: &str = "```sh local\n";

/// Every block marked [`LOCAL`] in the README, then in `docs/` (files in
/// name order), in document order: one script, as a reader would run them
/// one after the other.
fn local_blocks() -> Result<Vec<(String, String)>> {
    let mut files = vec![repo_root().join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(repo_root().join("docs"))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut blocks = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let mut rest = text.as_str();
        while let Some(start) = rest.find(LOCAL) {
            let body = &rest[start + LOCAL.len()..];
            let end = body.find("```").context("unterminated block")?;
            let shown = file
                .strip_prefix(repo_root())
                .unwrap_or(&file)
                .display()
                .to_string();
            blocks.push((shown, body[..end].to_owned()));
            rest = &body[end..];
        }
    }
    Ok(blocks)
}

#[tokio::test]
async fn every_command_marked_for_the_local_cluster_runs_and_the_examples_get_ready() -> Result<()>
{
    // A fresh namespace name in place of the README's `demo`.
    let client = aimass_e2e::client().await?;
    let ns = format!(
        "e2e-readme-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos()
    );
    let blocks = local_blocks()?;
    ensure!(
        blocks.len() >= 5,
        "the manual lost its runnable blocks: {blocks:?}"
    );
    // Each block says where it comes from when it fails.
    let script = blocks
        .iter()
        .map(|(file, block)| format!("echo '--- {file}' >&2\n{block}"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(" demo", &format!(" {ns}"))
        .replace("=demo", &format!("={ns}"))
        .replace(".demo.", &format!(".{ns}."));
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
        let (_, described, _) = aimass_e2e::kubectl(&[
            "-n",
            &ns,
            "describe",
            "models,modeldeployments,trainingjobs",
        ])?;
        let (_, operator, _) =
            aimass_e2e::kubectl(&["-n", "aimass-system", "logs", "deploy/aimass", "--tail=60"])?;
        format!("{described}\n{operator}")
    };
    // Leave nothing behind: the release, its kept roles, the namespace, the
    // node pools' labels.
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
    let _ = aimass_e2e::kubectl(&["label", "nodes", "--all", "aimass.io/pool-"]);
    let _ = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
        .delete(&ns, &Default::default())
        .await;
    ensure!(
        out.status.success(),
        "a block marked for the local cluster failed:\n{stdout}\n{stderr}\n{diagnostics}"
    );
    // The audit recipe checked a trail holding the call it made.
    ensure!(
        stdout
            .lines()
            .any(|l| l.starts_with("intact: ") && !l.starts_with("intact: 0 ")),
        "no intact audit trail was checked:\n{stdout}"
    );
    for kind in [
        "model.aimass.io/credit-risk",
        "modeldeployment.aimass.io/credit-risk",
        "model.aimass.io/fraud-detector",
        "trainingjob.aimass.io/fraud-detector-experiment-7",
        "modeldeployment.aimass.io/fraud-detector",
    ] {
        ensure!(
            stdout.contains(kind),
            "`kubectl get aimass` shows no {kind}:\n{stdout}"
        );
    }
    Ok(())
}
