//! The aimass.io API on a real API server: the CRDs install, `kubectl
//! explain` shows the field docs, the examples are accepted, and every
//! invalid fixture is refused with its message.

use std::time::Duration;

use aimass_e2e::{TestNamespace, kubectl, repo_root, run, wait};
use anyhow::{Result, ensure};

async fn install_crds() -> Result<()> {
    let crds = repo_root().join("crds");
    let (ok, _, err) = kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        crds.to_str().unwrap_or_default(),
    ])?;
    ensure!(ok, "kubectl apply -f crds/ failed: {err}");
    let (ok, _, err) = kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/models.aimass.io",
        "crd/trainingjobs.aimass.io",
        "crd/modeldeployments.aimass.io",
        "crd/apiclients.aimass.io",
        "crd/modelapprovals.aimass.io",
        "crd/scoringjobs.aimass.io",
    ])?;
    ensure!(ok, "CRDs not established: {err}");
    Ok(())
}

#[tokio::test]
async fn kubectl_explain_shows_the_field_docs() -> Result<()> {
    install_crds().await?;
    // Discovery can lag a moment behind the CRD becoming established.
    let mut text = String::new();
    wait(Duration::from_secs(30), "kubectl explain", || {
        let out = kubectl(&["explain", "model.spec.source"]);
        let found = matches!(&out, Ok((true, _, _)));
        if let Ok((_, stdout, _)) = out {
            text = stdout;
        }
        async move { Ok(found) }
    })
    .await?;
    ensure!(text.contains("Exactly one of the two"), "{text}");
    ensure!(text.contains("pvc://<claim>/<path>"), "{text}");
    let (ok, text, _) = kubectl(&["explain", "modeldeployment.spec.replicas.count"])?;
    ensure!(ok && text.contains("scale"), "{text}");
    Ok(())
}

#[tokio::test]
async fn examples_are_accepted_and_listed_in_the_aimass_category() -> Result<()> {
    install_crds().await?;
    run("examples", |ns: std::sync::Arc<TestNamespace>| async move {
        for dir in ["examples/minimal", "examples/full"] {
            let path = repo_root().join(dir);
            let (ok, _, err) = kubectl(&[
                "apply",
                "--server-side",
                "-n",
                &ns.name,
                "-f",
                path.to_str().unwrap_or_default(),
            ])?;
            ensure!(ok, "{dir} was refused: {err}");
        }
        let (ok, out, err) = kubectl(&["get", "aimass", "-n", &ns.name, "-o", "name"])?;
        ensure!(ok, "{err}");
        for kind in [
            "model.aimass.io/credit-risk",
            "trainingjob.aimass.io/fraud-detector-experiment-7",
            "modeldeployment.aimass.io/fraud-detector",
        ] {
            ensure!(out.contains(kind), "kubectl get aimass lacks {kind}: {out}");
        }
        // Re-applying the same manifests changes nothing (GitOps: no diff).
        let full = repo_root().join("examples/full");
        let (ok, out, err) = kubectl(&[
            "diff",
            "--server-side",
            "-n",
            &ns.name,
            "-f",
            full.to_str().unwrap_or_default(),
        ])?;
        ensure!(
            ok && out.is_empty(),
            "re-applying examples/full shows a diff: {out}{err}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn every_invalid_fixture_is_refused_with_its_message() -> Result<()> {
    install_crds().await?;
    run("invalid", |ns: std::sync::Arc<TestNamespace>| async move {
        let dir = repo_root().join("tests/fixtures/invalid");
        let mut files: Vec<_> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        ensure!(
            files.len() >= 40,
            "expected the fixtures in {}",
            dir.display()
        );
        let mut failures = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file)?;
            let expected = text
                .lines()
                .find_map(|l| l.strip_prefix("# expect: "))
                .unwrap_or_default()
                .to_owned();
            let (ok, _, err) = kubectl(&[
                "apply",
                "-n",
                &ns.name,
                "-f",
                file.to_str().unwrap_or_default(),
            ])?;
            if ok || !err.contains(&expected) {
                failures.push(format!(
                    "{}: accepted={ok}, expected {expected:?}, got {err:?}",
                    file.display()
                ));
            }
        }
        ensure!(
            failures.is_empty(),
            "fixtures not refused as expected:\n{}",
            failures.join("\n")
        );
        // Nothing invalid was stored.
        let (_, out, _) = kubectl(&["get", "aimass", "-n", &ns.name, "-o", "name"])?;
        ensure!(out.trim().is_empty(), "invalid objects were stored: {out}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_training_job_spec_cannot_change() -> Result<()> {
    install_crds().await?;
    run(
        "immutable",
        |ns: std::sync::Arc<TestNamespace>| async move {
            let example = repo_root().join("examples/full/trainingjob.yaml");
            let (ok, _, err) = kubectl(&[
                "apply",
                "-n",
                &ns.name,
                "-f",
                example.to_str().unwrap_or_default(),
            ])?;
            ensure!(ok, "{err}");
            let (ok, _, err) = kubectl(&[
                "patch",
                "-n",
                &ns.name,
                "trainingjob",
                "fraud-detector-experiment-7",
                "--type",
                "merge",
                "-p",
                r#"{"spec":{"image":"registry.example.com/risk/fraud-trainer:9.9.9"}}"#,
            ])?;
            ensure!(!ok && err.contains("cannot change once created"), "{err}");
            Ok(())
        },
    )
    .await
}
