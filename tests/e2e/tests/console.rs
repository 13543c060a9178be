//! The web console through the real API server: nothing without a session;
//! each user sees exactly the namespaces RBAC lets them read, in pages and
//! streams; changes are made with the user's own token (a viewer's forged
//! form changes nothing, an editor's pin is recorded under their name);
//! hostile text renders as text; pages and streams follow the cluster live,
//! and a revoked binding closes the stream.

use std::time::{Duration, Instant};

use aimass_crds::v1alpha1::{Model, ModelApproval, REQUESTED_BY_ANNOTATION};
use aimass_e2e::console::{Answer, Console, Visitor, redirected};
use aimass_e2e::operator::{Operator, run_with_operator};
use aimass_e2e::*;
use anyhow::{Context, Result, ensure};
use kube::api::{Patch, PatchParams};

/// What a hostile namespace editor writes where the console shows text.
const XSS: &str = r#"<script>alert(1)</script><img src=x onerror="alert(2)">"#;

/// Reads of the aimass kinds; `extra` rules after them.
fn rules(extra: &str) -> String {
    format!(
        "[{{apiGroups: [aimass.io], resources: [models, trainingjobs, scoringjobs, modeldeployments, modelapprovals], verbs: [get, list, watch]}}{extra}]"
    )
}

#[tokio::test]
async fn the_console_shows_each_user_their_own_namespaces_live_and_acts_only_as_them() -> Result<()>
{
    run_with_operator("console", |a| async move {
        let b = TestNamespace::new("console-other").await?;
        let result = story(&a, &b).await;
        b.finish(result.is_err()).await;
        result
    })
    .await
}

/// A desk's namespace: Model `card-fraud` (imported), ModelDeployment
/// `scoring` of it, and ServiceAccounts `viewer` (reads the aimass kinds)
/// `editor` (also pins aliases, approves and reads trainers' output) and
/// `approver` (reads and approves).
async fn desk(a: &TestNamespace) -> Result<()> {
    let registry = a.scratch()?.join("registry");
    a.apply(&format!(
        "apiVersion: aimass.io/v1alpha1\nkind: Model\nmetadata: {{name: card-fraud}}\nspec:\n  storage: {{prefix: \"file://{}\"}}\n  source: {{uri: \"{}\"}}\n---\napiVersion: aimass.io/v1alpha1\nkind: ModelDeployment\nmetadata: {{name: scoring}}\nspec:\n  model: {{name: card-fraud}}\n  replicas: {{min: 1, max: 1}}\n  autoscaling: {{enabled: false}}\n",
        registry.display(),
        zoo("gbdt_classifier")
    ))
    .await?;
    a.grant("viewer", "console-view", &rules("")).await?;
    a.grant(
        "approver",
        "console-approve",
        &rules(", {apiGroups: [aimass.io], resources: [modelapprovals], verbs: [create]}"),
    )
    .await?;
    a.grant(
        "editor",
        "console-edit",
        &rules(", {apiGroups: [aimass.io], resources: [models], verbs: [patch, update]}, {apiGroups: [aimass.io], resources: [modelapprovals], verbs: [create]}, {apiGroups: [\"\"], resources: [pods, pods/log], verbs: [get, list]}"),
    )
    .await?;
    champion_of(a, "card-fraud").await
}

/// Waits for Model `name` in `ns` to have a champion.
async fn champion_of(ns: &TestNamespace, name: &str) -> Result<()> {
    wait_for(
        &ns.api::<Model>(),
        name,
        Duration::from_secs(120),
        |m: Option<&Model>| {
            m.and_then(|m| m.status.as_ref())
                .is_some_and(|s| s.aliases.contains_key("champion"))
        },
    )
    .await?;
    Ok(())
}

/// Posts the approval form at `path` as `visitor`: their CSRF token, the
/// sha256 offered and a comment.
async fn approve_as(
    visitor: &Visitor,
    path: &str,
    csrf: &str,
    sha256: &str,
    comment: &str,
) -> Result<Answer> {
    let form = [("csrf", csrf), ("sha256", sha256), ("comment", comment)];
    visitor.post(path, &form, None).await
}

/// The sha256 of the file at `uri` (`file://`), as `sha256sum` prints it.
fn sha256_of(uri: &str) -> Result<String> {
    let path = uri.trim_start_matches("file://");
    let out = std::process::Command::new("sha256sum").arg(path).output()?;
    ensure!(out.status.success(), "sha256sum {path} failed");
    String::from_utf8(out.stdout)?
        .split_whitespace()
        .next()
        .map(str::to_owned)
        .context("sha256sum printed nothing")
}

async fn story(a: &TestNamespace, b: &TestNamespace) -> Result<()> {
    desk(a).await?;
    // Another desk, with its own operator: a secret, and a released Model
    // that desk-b-engineer asked to train (exported from another cluster).
    let _other = Operator::start(b, "b")?;
    b.apply(&format!("apiVersion: aimass.io/v1alpha1\nkind: Model\nmetadata: {{name: other-desk-secret}}\nspec:\n  source: {{uri: \"file:///nowhere.onnx\"}}\n---\napiVersion: aimass.io/v1alpha1\nkind: Model\nmetadata: {{name: released-fraud}}\nspec:\n  source:\n    uri: \"{zoo}\"\n    sha256: {sha256}\n    provenance: {{steps: [{{namespace: risk-train, model: fraud, version: 4, requestedBy: desk-b-engineer, trainingJob: fraud-run-4, time: \"2026-01-01T00:00:00Z\"}}]}}\n", zoo = zoo("gbdt_classifier"), sha256 = sha256_of(&zoo("gbdt_classifier"))?))
        .await?;
    let console = Console::start(a, &[&a.name, &b.name]).await?;
    let result = scenes(a, b, &console).await;
    if result.is_err() {
        eprintln!("console log:\n{}", console.log_tail(60));
    }
    result
}

async fn scenes(a: &TestNamespace, b: &TestNamespace, console: &Console) -> Result<()> {
    // Without a session: sign-in, 401s, and not a name leaks.
    let stranger = Visitor::new(&console.base);
    for page in ["/", "/models", &format!("/ns/{}/models/card-fraud", a.name)] {
        let answer = stranger.get(page).await?;
        redirected(&answer, "/login")?;
        ensure!(
            !answer.body.contains("card-fraud"),
            "{page} leaks a name: {}",
            answer.body
        );
    }
    let (status, _) = stranger.events(&format!("ns={}", a.name)).await?;
    ensure!(status == 401, "a stream without a session answers {status}");
    let forged = stranger
        .post(
            &format!("/ns/{}/models/card-fraud/aliases", a.name),
            &[("alias", "champion"), ("version", "1"), ("reason", "x")],
            None,
        )
        .await?;
    ensure!(
        forged.status == 401,
        "a change without a session answers {}",
        forged.status
    );
    let mut liar = Visitor::new(&console.base);
    let refused = liar.sign_in("not-a-token").await?;
    ensure!(
        refused.status == 401 && liar.cookie.is_none(),
        "a bad token signs in: {}",
        refused.status
    );
    ensure!(
        refused
            .header("content-security-policy")
            .contains("script-src 'self'"),
        "no CSP"
    );

    // A viewer of namespace a: a's models only, in pages and streams.
    let mut viewer = Visitor::new(&console.base);
    let signed = viewer.sign_in(&a.api_token("viewer").await?).await?;
    redirected(&signed, "/")?;
    let cookie = signed.header("set-cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Secure"] {
        ensure!(
            cookie.contains(part),
            "the session cookie lacks {part}: {cookie}"
        );
    }
    let models = viewer.get("/models").await?;
    ensure!(
        models.status == 200 && models.body.contains("card-fraud"),
        "{}",
        models.body
    );
    ensure!(
        !models.body.contains("other-desk-secret"),
        "another namespace's model is listed"
    );
    let other = viewer
        .get(&format!("/ns/{}/models/other-desk-secret", b.name))
        .await?;
    ensure!(
        other.status == 403 && !other.body.contains("file:///nowhere"),
        "{}: {}",
        other.status,
        other.body
    );
    let (status, _) = viewer.events(&format!("ns={}", b.name)).await?;
    ensure!(
        status == 403,
        "a stream of another namespace answers {status}"
    );

    let models_api = a.api::<Model>();

    // Every page renders for the viewer, the deployment's and the YAML too.
    for page in [
        "/".to_owned(),
        "/trainingjobs".to_owned(),
        "/scoringjobs".to_owned(),
        "/deployments".to_owned(),
        format!("/ns/{}/models/card-fraud/versions/1", a.name),
        format!("/ns/{}/deployments/scoring", a.name),
        format!("/ns/{}/models/card-fraud/yaml", a.name),
    ] {
        let answer = viewer.get(&page).await?;
        ensure!(
            answer.status == 200,
            "{page} answers {}: {}",
            answer.status,
            answer.body
        );
    }
    let version = viewer
        .get(&format!("/ns/{}/models/card-fraud/versions/1", a.name))
        .await?;
    ensure!(
        version.body.contains("probabilities"),
        "the version page lacks its signature"
    );

    // The viewer's page offers no change, and a forged one changes nothing.
    let page_path = format!("/ns/{}/models/card-fraud", a.name);
    let page = viewer.get(&page_path).await?;
    ensure!(
        page.status == 200 && !page.body.contains("id=\"promote\""),
        "a viewer is offered a change"
    );
    let csrf = page.hidden("csrf").context("no CSRF token on the page")?;
    let aliases = format!("{page_path}/aliases");
    let forged = viewer
        .post(
            &aliases,
            &[
                ("csrf", &csrf),
                ("alias", "champion"),
                ("version", "1"),
                ("reason", "forged"),
            ],
            None,
        )
        .await?;
    ensure!(
        forged.status == 403,
        "a viewer's change answers {}: {}",
        forged.status,
        forged.body
    );
    let spec = models_api.get("card-fraud").await?.spec;
    ensure!(
        spec.aliases.is_empty(),
        "a viewer changed the spec: {:?}",
        spec.aliases
    );

    // An editor pins an alias with a reason; cross-site or token-less forms
    // are refused first.
    let mut editor = Visitor::new(&console.base);
    editor.sign_in(&a.api_token("editor").await?).await?;
    let page = editor.get(&page_path).await?;
    ensure!(
        page.body.contains("id=\"promote\""),
        "an editor is offered no change"
    );
    let csrf = page.hidden("csrf").context("no CSRF token")?;
    let form = [
        ("csrf", csrf.as_str()),
        ("alias", "staging"),
        ("version", "1"),
        ("reason", XSS),
    ];
    let cross = editor
        .post(&aliases, &form, Some("https://evil.example"))
        .await?;
    ensure!(
        cross.status == 403,
        "a cross-site form answers {}",
        cross.status
    );
    let stale = editor.post(&aliases, &form[1..], None).await?;
    ensure!(
        stale.status == 403,
        "a form without its CSRF token answers {}",
        stale.status
    );
    let viewers_token = editor
        .post(
            &aliases,
            &[
                (
                    "csrf",
                    &page.hidden("csrf").unwrap_or_default().replace('a', "b"),
                ),
                ("alias", "staging"),
                ("version", "1"),
                ("reason", "x"),
            ],
            None,
        )
        .await?;
    ensure!(
        viewers_token.status == 403,
        "a wrong CSRF token answers {}",
        viewers_token.status
    );
    let pinned = editor.post(&aliases, &form, None).await?;
    redirected(&pinned, &page_path)?;
    let editor_name = format!("system:serviceaccount:{}:editor", a.name);
    let model = wait_for(
        &models_api,
        "card-fraud",
        Duration::from_secs(30),
        |m: Option<&Model>| {
            m.and_then(|m| m.status.as_ref())
                .is_some_and(|s| s.alias_history.iter().any(|h| h.alias == "staging"))
        },
    )
    .await?;
    let moved = model
        .status
        .as_ref()
        .and_then(|s| s.alias_history.iter().rev().find(|h| h.alias == "staging"))
        .context("no move")?;
    ensure!(
        moved.by.as_deref() == Some(editor_name.as_str()) && moved.message.as_deref() == Some(XSS),
        "the move is not recorded under the editor with the reason: {moved:?}"
    );
    let page = viewer.get(&page_path).await?;
    ensure!(
        page.body.contains(&editor_name),
        "the history does not show the editor"
    );
    ensure!(
        !page.body.contains("<script>alert")
            && !page.body.contains("<img src=x")
            && page.body.contains("&lt;script&gt;alert(1)"),
        "hostile text is not escaped: {}",
        page.body
            .lines()
            .find(|l| l.contains("alert"))
            .unwrap_or_default()
    );

    // The pin is a decision on the timeline, under the editor's name.
    let decisions = viewer.get("/decisions").await?;
    ensure!(
        decisions.body.contains("staging unset → v1 (Pinned)")
            && decisions.body.contains(&editor_name),
        "the timeline lacks the pin: {}",
        decisions.body
    );

    // Separation of duties: a promotion the editor asked for (of another
    // desk's released Model) waits for an approval; the editor's own is
    // signed with their name but not counted, a second user's counts and
    // the version is promoted.
    // (This namespaced operator is not told when the other desk's Model
    // changes, so the source is Ready first.)
    champion_of(b, "released-fraud").await?;
    a.apply(&format!(
        r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: card-fraud-next, annotations: {{"{REQUESTED_BY_ANNOTATION}": "{editor_name}"}}}}
spec:
  source: {{promotedFrom: {{namespace: {ns}, model: released-fraud, version: 1}}}}
  promotion: {{requires: {{approvals: 1}}}}
"#,
        ns = b.name
    ))
    .await?;
    let follow_reason = |reason: &'static str| {
        move |m: Option<&Model>| {
            m.and_then(|m| m.status.as_ref())
                .and_then(|s| s.follow.as_ref())
                .is_some_and(|f| f.reason.as_deref() == Some(reason))
        }
    };
    let waiting = wait_for(
        &models_api,
        "card-fraud-next",
        Duration::from_secs(60),
        follow_reason("AwaitingApproval"),
    )
    .await?;
    let sha256 = waiting
        .status
        .as_ref()
        .and_then(|s| s.follow.as_ref())
        .and_then(|f| f.sha256.clone())
        .context("no sha256 to approve")?;
    let next_path = format!("/ns/{}/models/card-fraud-next", a.name);
    let approve = format!("{next_path}/approvals");
    let page = editor.get(&next_path).await?;
    ensure!(
        page.body.contains("AwaitingApproval") && page.body.contains(&sha256),
        "the waiting promotion is not offered for approval: {}",
        page.body
    );
    redirected(
        &approve_as(&editor, &approve, &csrf, &sha256, "MRM-1 reviewed").await?,
        &next_path,
    )?;
    let approvals = a
        .api::<ModelApproval>()
        .list(&Default::default())
        .await?
        .items;
    ensure!(
        approvals.len() == 1 && approvals[0].spec.approved_by == editor_name,
        "the approval is not the editor's: {approvals:?}"
    );
    wait_for(
        &models_api,
        "card-fraud-next",
        Duration::from_secs(30),
        follow_reason("SameIdentity"),
    )
    .await?;
    let refused = editor.get(&next_path).await?;
    ensure!(
        refused.body.contains("SameIdentity") && refused.body.contains(&editor_name),
        "the page does not show the requester's own approval refused: {}",
        refused.body
    );
    let mut approver = Visitor::new(&console.base);
    approver.sign_in(&a.api_token("approver").await?).await?;
    let waiting_for = |body: &str| body.contains(">card-fraud-next</a>");
    ensure!(
        waiting_for(&approver.get("/approvals").await?.body),
        "the approver is not asked to approve"
    );
    ensure!(
        !waiting_for(&editor.get("/approvals").await?.body),
        "the requester is asked to approve their own promotion"
    );
    let approver_csrf = approver
        .get(&next_path)
        .await?
        .hidden("csrf")
        .context("no CSRF token for the approver")?;
    redirected(
        &approve_as(
            &approver,
            &approve,
            &approver_csrf,
            &sha256,
            "MRM-2 second pair of eyes",
        )
        .await?,
        &next_path,
    )?;
    let promoted = wait_for(
        &models_api,
        "card-fraud-next",
        Duration::from_secs(90),
        follow_reason("Promoted"),
    )
    .await?;
    ensure!(
        promoted
            .status
            .as_ref()
            .is_some_and(|s| s.aliases.contains_key("champion")),
        "the approved version is not the champion: {:?}",
        promoted.status
    );
    let approver_name = format!("system:serviceaccount:{}:approver", a.name);
    let page = viewer.get(&next_path).await?;
    ensure!(
        page.body.contains(&approver_name) && page.body.contains(">Counted<"),
        "the page does not show the approver's approval counted: {}",
        page.body
    );
    let viewer_csrf = viewer
        .get("/")
        .await?
        .hidden("csrf")
        .context("no CSRF token")?;
    let forged = approve_as(&viewer, &approve, &viewer_csrf, &sha256, "x").await?;
    ensure!(
        forged.status == 403,
        "a viewer's approval answers {}",
        forged.status
    );
    ensure!(
        a.api::<ModelApproval>()
            .list(&Default::default())
            .await?
            .items
            .len()
            == 2,
        "a viewer approved"
    );
    for page in ["/approvals", &format!("{page_path}/compare")] {
        let answer = viewer.get(page).await?;
        ensure!(
            matches!(answer.status, 200 | 404),
            "{page} answers {}",
            answer.status
        );
    }

    // Live: a new TrainingJob and a kubectl alias move reach an open page.
    let (status, events) = viewer.events(&format!("ns={}", a.name)).await?;
    let mut events = events.with_context(|| format!("the viewer's stream answers {status}"))?;
    events.until("retry", Duration::from_secs(5)).await?;
    let started = Instant::now();
    a.apply(&format!(
        "apiVersion: aimass.io/v1alpha1\nkind: TrainingJob\nmetadata: {{name: live-run}}\nspec:\n  modelRef: {{name: card-fraud}}\n  image: aimass/fraud-trainer\n  dataset: {{uri: \"file:///nowhere.csv\"}}\n  hyperparameters: {{note: '{}'}}\n",
        XSS.replace('\'', "''")
    ))
    .await?;
    ensure!(
        events
            .until(
                &format!("TrainingJob {} live-run", a.name),
                Duration::from_secs(2)
            )
            .await?,
        "the stream ended"
    );
    let appeared = started.elapsed();
    let training = viewer.fragment("/trainingjobs").await?;
    ensure!(
        training.body.contains("live-run") && !training.body.contains("<html"),
        "{}",
        training.body
    );
    let run = viewer
        .get(&format!("/ns/{}/trainingjobs/live-run", a.name))
        .await?;
    ensure!(
        run.status == 200 && !run.body.contains("<script>alert"),
        "{}: hostile parameters",
        run.status
    );

    let started = Instant::now();
    models_api
        .patch(
            "card-fraud",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"aliases": {"kubectl-pin": 1}}})),
        )
        .await?;
    wait(
        Duration::from_secs(2),
        "the alias badge to show the kubectl pin",
        || async {
            Ok(viewer
                .fragment(&page_path)
                .await?
                .body
                .contains("data-alias=\"kubectl-pin\""))
        },
    )
    .await?;
    let badge = started.elapsed();

    // A run's output is read with the user's token: the editor (who may
    // read pods' logs) sees the trainer's last lines, the viewer is told
    // they may not.
    let run_path = format!("/ns/{}/trainingjobs/live-run", a.name);
    wait(
        Duration::from_secs(60),
        "the failed run's output on its page",
        || async {
            let page = editor.get(&run_path).await?;
            Ok(page.body.contains("class=\"log\"") && page.body.contains("DatasetUnavailable"))
        },
    )
    .await?;
    let run = viewer.get(&run_path).await?;
    ensure!(
        run.status == 200
            && run.body.contains("may not list pods")
            && !run.body.contains("class=\"log\""),
        "the viewer's run page: {}",
        run.body
    );
    // Likewise a deployment's replicas, node by node.
    let deployment_path = format!("/ns/{}/deployments/scoring", a.name);
    let deployment = editor.get(&deployment_path).await?;
    ensure!(
        deployment.body.contains("id=\"replicas\"") && deployment.body.contains("<td>scoring-"),
        "the editor's deployment page lists no replica: {}",
        deployment.body
    );
    let deployment = viewer.get(&deployment_path).await?;
    ensure!(
        deployment.body.contains("may not list pods")
            && !deployment.body.contains("id=\"replicas\""),
        "the viewer's deployment page: {}",
        deployment.body
    );

    // A revoked binding closes the open stream.
    let revoked = Instant::now();
    let (ok, _, err) = kubectl(&["-n", &a.name, "delete", "rolebinding", "console-view"])?;
    ensure!(ok, "{err}");
    ensure!(
        events.until("denied", Duration::from_secs(35)).await?,
        "the stream ended without saying why"
    );
    let closed = revoked.elapsed();
    let after = viewer.get("/models").await?;
    ensure!(
        !after.body.contains("card-fraud"),
        "a revoked viewer still sees the model"
    );

    // Signing out ends the session.
    let csrf = editor
        .get("/")
        .await?
        .hidden("csrf")
        .context("no CSRF token")?;
    redirected(
        &editor.post("/logout", &[("csrf", &csrf)], None).await?,
        "/login",
    )?;
    redirected(&editor.get("/").await?, "/login")?;
    println!(
        "training run on the page after {appeared:?}; kubectl pin on the badge after {badge:?}; revoked stream closed after {closed:?}"
    );
    Ok(())
}

/// Where the browser test's screenshots go: `AIMASS_ARTIFACT_DIR` (`.ci/run`
/// sets it to `.ci/artifacts/`), else the test's scratch directory.
fn screenshots(ns: &TestNamespace) -> Result<std::path::PathBuf> {
    let dir = match std::env::var_os("AIMASS_ARTIFACT_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => ns.scratch()?,
    }
    .join("console-screenshots");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[tokio::test]
async fn in_a_browser_every_page_renders_safely_and_follows_kubectl_live() -> Result<()> {
    run_with_operator("console-browser", |a| async move {
        let installed = std::process::Command::new("bash")
            .current_dir(repo_root())
            .arg("scripts/install-browser.sh")
            .output()?;
        ensure!(
            installed.status.success(),
            "installing chromium: {}",
            String::from_utf8_lossy(&installed.stderr)
        );
        desk(&a).await?;
        // A scoring run whose data set is missing: its page says why.
        let scratch = a.scratch()?;
        a.apply(&format!(
            "apiVersion: aimass.io/v1alpha1\nkind: ScoringJob\nmetadata: {{name: browser-scoring}}\nspec:\n  modelRef: {{name: card-fraud}}\n  versions: [{{alias: champion}}]\n  dataset: {{uri: \"file://{dir}/missing.csv\"}}\n  output: {{uri: \"file://{dir}/scored/\"}}\n",
            dir = scratch.display()
        ))
        .await?;
        let console = Console::start(&a, &[&a.name]).await?;
        let shots = screenshots(&a)?;
        let token = a.api_token("editor").await?;
        // The token goes in a file, not on a command line (or in a failure
        // message that prints the arguments).
        let token_file = scratch.join("editor.token");
        std::fs::write(&token_file, &token)?;
        // The session cookie is Secure, which browsers honour over plain
        // HTTP for localhost only.
        let base = console.base.replace("127.0.0.1", "localhost");
        let measured = python_script(
            &[
                "scripts/venv.sh",
                "browser",
                "tests/e2e/scripts/browser-requirements.txt",
            ],
            "console_browser.py",
            &[
                &base,
                &token_file.display().to_string(),
                &a.name,
                &kubectl_path().display().to_string(),
                &kubeconfig().context("no kubeconfig")?.display().to_string(),
                &shots.display().to_string(),
            ],
        );
        if measured.is_err() {
            eprintln!("console log:\n{}", console.log_tail(60));
        }
        let measured = measured?;
        let taken = std::fs::read_dir(&shots)?.count();
        ensure!(taken >= 14, "{taken} screenshots in {}", shots.display());
        println!("browser: {measured}; screenshots in {}", shots.display());
        Ok(())
    })
    .await
}
