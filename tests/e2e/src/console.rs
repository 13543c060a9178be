//! The console as the tests run it: a local process whose own identity may
//! only create TokenReviews and SubjectAccessReviews, and a visitor that
//! signs in with a token and keeps its session cookie, as a browser would.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};

use crate::operator::target_dir;
use crate::{TestNamespace, kubeconfig, kubectl};

/// A running console; killed (and its identity's cluster role removed) when
/// dropped.
pub struct Console {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Where its log goes.
    pub log: PathBuf,
    cluster_objects: String,
}

impl Console {
    /// Starts a console showing `namespaces`, as ServiceAccount `console`
    /// of `home` with a ClusterRole that allows TokenReviews and
    /// SubjectAccessReviews and nothing else.
    pub async fn start(home: &TestNamespace, namespaces: &[&str]) -> Result<Self> {
        let role = format!("e2e-console-{}", home.name);
        let cluster_objects = format!(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {role}}}
rules:
- {{apiGroups: [authentication.k8s.io], resources: [tokenreviews], verbs: [create]}}
- {{apiGroups: [authorization.k8s.io], resources: [subjectaccessreviews], verbs: [create]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {role}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}
subjects: [{{kind: ServiceAccount, name: console, namespace: {ns}}}]
"#,
            ns = home.name
        );
        home.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: console}\n")
            .await?;
        crate::apply(&home.client, None, &cluster_objects).await?;
        let token = home.api_token("console").await?;
        let dir = std::env::temp_dir().join("aimass-e2e").join(&home.name);
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("console.kubeconfig");
        std::fs::write(&config, own_kubeconfig(&token)?)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = dir.join("console.log");
        // The page-time benchmark measures the release build.
        let profile =
            std::env::var("AIMASS_E2E_CONSOLE_PROFILE").unwrap_or_else(|_| "debug".into());
        let binary = target_dir().join(profile).join("aimass-console");
        if !binary.exists() {
            bail!(
                "{} is missing: build it first (cargo build -p aimass-console)",
                binary.display()
            );
        }
        let child = Command::new(&binary)
            .args([
                "--address",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--namespaces",
                &namespaces.join(","),
                "--recheck-seconds",
                "5",
            ])
            .env("KUBECONFIG", &config)
            .env("RUST_LOG", "info,aimass_console=debug")
            .stdout(Stdio::from(std::fs::File::create(&log)?))
            .stderr(Stdio::from(std::fs::File::create(dir.join("console.err"))?))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let console = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            cluster_objects,
        };
        crate::wait(Duration::from_secs(30), "the console to listen", || async {
            Ok(Visitor::new(&console.base)
                .get("/healthz")
                .await
                .is_ok_and(|r| r.status == 200))
        })
        .await?;
        Ok(console)
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::operator::tail(&self.log, lines)
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let file = self.log.with_file_name("console-cluster-objects.yaml");
        if std::fs::write(&file, &self.cluster_objects).is_ok() {
            let _ = kubectl(&[
                "delete",
                "--ignore-not-found",
                "-f",
                &file.display().to_string(),
            ]);
        }
    }
}

/// A kubeconfig for the test cluster with `token` as its only credential.
fn own_kubeconfig(token: &str) -> Result<String> {
    let admin = kube::config::Kubeconfig::read_from(kubeconfig().context("no kubeconfig")?)?;
    let cluster = admin
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .context("the kubeconfig names no cluster")?;
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": "console", "user": {"token": token}}],
        "contexts": [{"name": "console", "context": {"cluster": "e2e", "user": "console"}}],
        "current-context": "console",
    });
    Ok(serde_json::to_string(&kubeconfig)?)
}

/// One answer of the console.
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: hyper::HeaderMap,
    /// Body, as text.
    pub body: String,
}

impl Answer {
    /// A header's value, or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The value of the first hidden input `name` in the page.
    pub fn hidden(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')?;
        Some(self.body[start..start + end].to_owned())
    }
}

/// A browser-like client: keeps the session cookie it is given and sends
/// the console's own origin with changes.
pub struct Visitor {
    base: String,
    /// The session cookie (`name=value`), once signed in.
    pub cookie: Option<String>,
}

impl Visitor {
    /// A visitor of the console at `base`, signed out.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            cookie: None,
        }
    }

    /// Signs in with `token`; the answer to the sign-in form.
    pub async fn sign_in(&mut self, token: &str) -> Result<Answer> {
        let answer = self.post("/login", &[("token", token)], None).await?;
        if let Some(cookie) = answer
            .headers
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
        {
            self.cookie = cookie.split(';').next().map(str::to_owned);
        }
        Ok(answer)
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Result<Answer> {
        self.send(
            hyper::Request::get(format!("{}{path}", self.base)),
            Full::default(),
        )
        .await
    }

    /// GET `path`'s live-update fragment.
    pub async fn fragment(&self, path: &str) -> Result<Answer> {
        self.send(
            hyper::Request::get(format!("{}{path}", self.base)).header("x-fragment", "main"),
            Full::default(),
        )
        .await
    }

    /// POSTs `form` to `path`, from `origin` (the console's own by default).
    pub async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Result<Answer> {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = hyper::Request::post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", origin.unwrap_or(&self.base));
        self.send(request, Full::new(Bytes::from(body))).await
    }

    /// Opens the live stream of `query` (e.g. `ns=a`); the status, and the
    /// stream when it is 200.
    pub async fn events(&self, query: &str) -> Result<(u16, Option<Events>)> {
        let response = self
            .open(
                hyper::Request::get(format!("{}/events?{query}", self.base)),
                Full::default(),
            )
            .await?;
        let status = response.status().as_u16();
        Ok((
            status,
            (status == 200).then(|| Events {
                body: response.into_body(),
                buffer: String::new(),
            }),
        ))
    }

    async fn send(
        &self,
        request: hyper::http::request::Builder,
        body: Full<Bytes>,
    ) -> Result<Answer> {
        let response = self.open(request, body).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = tokio::time::timeout(Duration::from_secs(20), response.into_body().collect())
            .await
            .context("the console's answer did not end")??
            .to_bytes();
        Ok(Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    async fn open(
        &self,
        mut request: hyper::http::request::Builder,
        body: Full<Bytes>,
    ) -> Result<hyper::Response<Incoming>> {
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        Ok(
            tokio::time::timeout(Duration::from_secs(20), client.request(request.body(body)?))
                .await
                .context("the console did not answer")??,
        )
    }
}

/// A live stream being read.
pub struct Events {
    body: Incoming,
    buffer: String,
}

impl Events {
    /// Reads until an event whose text contains `needle` arrives (Ok(true)),
    /// the stream ends (Ok(false)), or `timeout` passes (an error).
    pub async fn until(&mut self, needle: &str, timeout: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(at) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..at + 2).collect();
                if event.contains(needle) {
                    return Ok(true);
                }
                continue;
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .with_context(|| format!("no event with {needle:?} in {timeout:?}"))?;
            match frame {
                None => return Ok(false),
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        self.buffer.push_str(&String::from_utf8_lossy(&data));
                    }
                }
            }
        }
    }
}

/// Fails unless `answer` is a redirect to `to`.
pub fn redirected(answer: &Answer, to: &str) -> Result<()> {
    ensure!(
        answer.status == 303 && answer.header("location") == to,
        "expected a redirect to {to}, got {} to {:?}: {}",
        answer.status,
        answer.header("location"),
        answer.body
    );
    Ok(())
}
