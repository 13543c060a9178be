//! API keys end to end: keys made by `aimass-apikey`, their Secrets resolved
//! by the operator into `ApiClient` status, accepted by an Enforced
//! ModelDeployment's server as the client's principal, authorised by the
//! real API server's RBAC, limited by the client's own quota, and revoked by
//! editing or deleting the ApiClient, without a restart; the deployment's
//! traffic in status names each caller and counts it exactly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aimass_crds::v1alpha1::{ApiClient, ModelDeployment};
use aimass_e2e::operator::{run_with_operator, target_dir};
use aimass_e2e::{
    TestNamespace, kubectl, may_score_card_fraud, post_as, scoring_manifests, scoring_pod, serving,
    wait, wait_for, zoo, zoo_reference,
};
use anyhow::{Context, Result, ensure};
use kube::api::DeleteParams;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);
/// The exchange's quota, calls per second (and its burst).
const QUOTA: u32 = 20;

/// A fresh key: (the key, the Secret manifest `aimass-apikey` printed).
fn new_key(secret: &str) -> Result<(String, String)> {
    let dir = std::env::temp_dir().join(format!("aimass-e2e-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let key_file = dir.join(secret);
    let _ = std::fs::remove_file(&key_file);
    let output = std::process::Command::new(target_dir().join("debug/aimass-apikey"))
        .args(["new", "--secret", secret, "--key-file"])
        .arg(&key_file)
        .output()
        .context("running aimass-apikey (scripts/e2e.sh builds it)")?;
    ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key = std::fs::read_to_string(&key_file)?;
    std::fs::remove_file(&key_file)?;
    let manifest = String::from_utf8(output.stdout)?;
    ensure!(!manifest.contains(&key), "the Secret must not hold the key");
    Ok((key, manifest))
}

/// The model served, its two ApiClients, and leave for the exchange (only)
/// to score with it.
fn manifests() -> String {
    format!(
        r#"{scoring}
---
apiVersion: aimass.io/v1alpha1
kind: ApiClient
metadata: {{name: exchange}}
spec:
  principal: "partner:exchange"
  groups: [partners]
  quota: {{requestsPerSecond: {QUOTA}}}
  keys:
    - secretRef: {{name: exchange-old}}
    - secretRef: {{name: exchange-new}}
---
apiVersion: aimass.io/v1alpha1
kind: ApiClient
metadata: {{name: bank}}
spec:
  principal: "partner:bank"
  keys:
    - secretRef: {{name: bank-key}}
---
{grant}"#,
        scoring = scoring_manifests(&zoo("gbdt_classifier"), 1),
        grant = may_score_card_fraud(
            "exchange-scores-card-fraud",
            r#"{apiGroup: rbac.authorization.k8s.io, kind: User, name: "partner:exchange"}"#
        ),
    )
}

/// Waits until `key` gets `status` from `url`; how long that took.
async fn answered(
    url: &str,
    body: &Value,
    key: &str,
    status: u16,
    within: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    wait(within, &format!("{status} for a key"), || {
        let body = body.clone();
        async move { Ok(post_as(url, &body, Some(key)).await?.0 == status) }
    })
    .await?;
    Ok(started.elapsed())
}

#[tokio::test]
async fn api_keys_authenticate_rbac_authorises_quotas_hold_and_revocation_is_prompt() -> Result<()>
{
    run_with_operator("apikeys", |ns: Arc<TestNamespace>| async move {
        let (old, old_secret) = new_key("exchange-old")?;
        let (new, new_secret) = new_key("exchange-new")?;
        let (bank, bank_secret) = new_key("bank-key")?;
        ns.apply(&format!(
            "{old_secret}\n---\n{new_secret}\n---\n{bank_secret}\n---\n{}",
            manifests()
        ))
        .await?;
        let exchange = wait_for(
            &ns.api::<ApiClient>(),
            "exchange",
            TIMEOUT,
            |c: Option<&ApiClient>| {
                c.and_then(|c| c.status.as_ref())
                    .is_some_and(|s| s.active_keys == 2)
            },
        )
        .await?;
        let ready = exchange
            .status
            .iter()
            .flat_map(|s| s.conditions.iter())
            .find(|c| c.type_ == "Ready")
            .context("no Ready condition")?;
        ensure!(ready.status == "True", "{ready:?}");
        let status = serde_json::to_string(&exchange.status)?;
        ensure!(
            !status.contains(&old) && !status.contains(&new),
            "a key reached the ApiClient's status"
        );
        serving(&ns, 1, 1).await?;
        let (pod_name, ip) = scoring_pod(&ns).await?;
        let url = format!("http://{ip}:8080/v2/models/card-fraud/infer");
        let (request, _) = zoo_reference("gbdt_classifier")?;

        // Both keys of a rotating client work; a client without a binding is
        // forbidden; a made-up key with a real id is not a key.
        answered(&url, &request, &old, 200, Duration::from_secs(30)).await?;
        answered(&url, &request, &new, 200, Duration::from_secs(5)).await?;
        let (code, body) = post_as(&url, &request, Some(&bank)).await?;
        ensure!(code == 403, "a client without models/infer: {code} {body}");
        let forged = format!("{}{}", &old[..old.len() - 4], "AAAA");
        let (code, body) = post_as(&url, &request, Some(&forged)).await?;
        ensure!(code == 401, "a forged key: {code} {body}");

        // A namespace editor rewrites the bank's key Secret with a key of
        // their own: it is not accepted until an admin changes the
        // ApiClient, and the approved key keeps working meanwhile.
        let (planted, planted_secret) = new_key("bank-key")?;
        ns.apply(&planted_secret).await?;
        let (ok, _, err) = kubectl(&["-n", &ns.name, "annotate", "apiclient", "bank", "aimass.io/poke=1"])?;
        ensure!(ok, "{err}");
        let clients = ns.api::<ApiClient>();
        let ready_reason = |c: Option<&ApiClient>| {
            c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .map(|c| (c.status.clone(), c.reason.clone()))
        };
        wait_for(&clients, "bank", TIMEOUT, move |c: Option<&ApiClient>| {
            ready_reason(c) == Some(("False".into(), "KeySecretChanged".into()))
        })
        .await?;
        let (code, body) = post_as(&url, &request, Some(&planted)).await?;
        ensure!(code == 401, "a key planted in a Secret: {code} {body}");
        let (code, body) = post_as(&url, &request, Some(&bank)).await?;
        ensure!(code == 403, "the approved key: {code} {body}");
        // The admin approves by changing the spec.
        let (ok, _, err) = kubectl(&[
            "-n",
            &ns.name,
            "patch",
            "apiclient",
            "bank",
            "--type",
            "merge",
            "-p",
            r#"{"spec": {"expires": "2099-01-01T00:00:00Z"}}"#,
        ])?;
        ensure!(ok, "{err}");
        wait_for(&clients, "bank", TIMEOUT, move |c: Option<&ApiClient>| {
            ready_reason(c) == Some(("True".into(), "AsExpected".into()))
        })
        .await?;
        answered(&url, &request, &planted, 403, Duration::from_secs(10)).await?;

        // The exchange's quota holds within 5% while a ServiceAccount
        // calling between its calls is never limited. Refill first.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let invoker = ns.invoker_token().await?;
        let (mut allowed, mut other) = (0u32, 0u32);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            match post_as(&url, &request, Some(&new)).await?.0 {
                200 => allowed += 1,
                429 => {}
                code => anyhow::bail!("the exchange got {code}"),
            }
            let (code, body) = post_as(&url, &request, Some(&invoker)).await?;
            ensure!(code == 200, "the other caller: {code} {body}");
            other += 1;
        }
        let expected = f64::from(QUOTA) * (1.0 + started.elapsed().as_secs_f64());
        let ratio = f64::from(allowed) / expected;
        ensure!(
            (0.95..=1.05).contains(&ratio),
            "{allowed} calls allowed, {expected:.0} expected: ratio {ratio:.3}"
        );
        ensure!(other > allowed, "{other} calls by the other caller");
        eprintln!("quota: {allowed} allowed, {expected:.1} expected, ratio {ratio:.3}; {other} by the other caller");

        // Rotation: the old key leaves the spec and stops within 5 s.
        let (ok, _, err) = kubectl(&[
            "patch",
            "-n",
            &ns.name,
            "apiclient/exchange",
            "--type",
            "json",
            "-p",
            r#"[{"op": "remove", "path": "/spec/keys/0"}]"#,
        ])?;
        ensure!(ok, "{err}");
        let took = answered(&url, &request, &old, 401, Duration::from_secs(5)).await?;
        eprintln!("a removed key stopped working after {took:?}");
        let (code, _) = post_as(&url, &request, Some(&new)).await?;
        ensure!(code == 200, "the kept key: {code}");
        // Deleting the client stops its last key within 5 s too.
        ns.api::<ApiClient>()
            .delete("exchange", &DeleteParams::default())
            .await?;
        let took = answered(&url, &request, &new, 401, Duration::from_secs(5)).await?;
        eprintln!("a deleted client's key stopped working after {took:?}");
        // The deployment's traffic names who called: the ServiceAccount
        // exactly as often as it called, the partners by their principals,
        // the forged and planted keys under no name of their own. Refusals
        // are counted apart from server errors, of which there were none.
        let caller = format!("system:serviceaccount:{}:caller", ns.name);
        let counted = caller.clone();
        let waited = wait_for(
            &ns.api::<ModelDeployment>(),
            "scoring",
            Duration::from_secs(90),
            move |m: Option<&ModelDeployment>| {
                m.and_then(|m| m.status.as_ref())
                    .and_then(|s| s.traffic.as_ref())
                    .is_some_and(|t| {
                        t.callers
                            .iter()
                            .any(|c| c.principal == counted && c.requests == i64::from(other))
                    })
            },
        )
        .await;
        let md = ns.api::<ModelDeployment>().get("scoring").await?;
        let traffic = md.status.and_then(|s| s.traffic).context("no traffic in status")?;
        ensure!(
            waited.is_ok(),
            "{other} calls by {caller} not in the traffic: {traffic:?}"
        );
        for c in &traffic.callers {
            ensure!(
                ["partner:exchange", "partner:bank", caller.as_str()].contains(&c.principal.as_str()),
                "an unexpected caller: {:?}",
                traffic.callers
            );
        }
        let exchange = traffic
            .callers
            .iter()
            .find(|c| c.principal == "partner:exchange")
            .context("the exchange is not among the callers")?;
        ensure!(exchange.requests >= i64::from(allowed), "{exchange:?}");
        ensure!(
            traffic.history.iter().any(|p| p.rejected_rate > 0.0)
                && traffic.history.iter().all(|p| p.error_rate == 0.0)
                && traffic.history.iter().any(|p| p.p99_latency_millis.is_some()),
            "{:?}",
            traffic.history
        );
        eprintln!(
            "traffic: {} points, callers {:?}",
            traffic.history.len(),
            traffic.callers
        );
        // No key reached the server's log.
        let log = ns
            .api::<k8s_openapi::api::core::v1::Pod>()
            .logs(&pod_name, &Default::default())
            .await?;
        for key in [&old, &new, &bank, &forged] {
            ensure!(!log.contains(key.as_str()), "a key is in the server's log");
        }
        Ok(())
    })
    .await
}
