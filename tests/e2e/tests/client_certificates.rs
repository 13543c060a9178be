//! Client certificates through the operator: a ModelDeployment whose
//! `spec.security.tls` names a certificate Secret and a partner CA Secret
//! serves HTTPS, a partner's certificate authenticates its subject, and RBAC
//! on the real API server decides what that subject may call. The PKI is
//! made with openssl and the calls are made with curl (both installed by
//! scripts/install-host-packages.sh).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::ModelDeployment;
use aimass_e2e::operator::run_with_operator;
use aimass_e2e::{
    TestNamespace, may_score_card_fraud, scoring_manifests, scoring_pod, serving, wait, wait_for,
    zoo, zoo_reference,
};
use anyhow::{Context, Result, ensure};

const TIMEOUT: Duration = Duration::from_secs(120);

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .context("running openssl")?;
    ensure!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// `openssl req` with a new P-256 key written to `key`, and `out` (a
/// signing request, or with `-x509` a self-signed certificate) for
/// `subject`; `extra` arguments last.
fn new_key(dir: &Path, key: &str, out: &str, subject: &str, extra: &[&str]) -> Result<()> {
    let mut args = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        out,
        "-subj",
        subject,
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args)
}

/// A CA, and certificates it signs: `name.crt`/`name.key` for `subject`
/// with the extensions `extensions`.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir)?;
        new_key(
            &dir,
            "ca.key",
            "ca.crt",
            "/CN=partner-ca",
            &["-x509", "-days", "1"],
        )?;
        Ok(Self { dir })
    }

    fn issue(&self, name: &str, subject: &str, extensions: &str) -> Result<()> {
        let ext = format!("{name}.ext");
        std::fs::write(self.dir.join(&ext), extensions)?;
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        new_key(&self.dir, &key, &csr, subject, &[])?;
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "1",
                "-extfile",
                &ext,
            ],
        )
    }

    fn pem(&self, file: &str) -> Result<String> {
        Ok(std::fs::read_to_string(self.dir.join(file))?)
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }
}

/// Indents a PEM for a YAML block scalar.
fn block(pem: &str) -> String {
    pem.lines()
        .map(|l| format!("    {l}\n"))
        .collect::<String>()
}

/// POSTs `body` over HTTPS to `host` resolved to `ip`, as curl: the status,
/// or 0 when no HTTP answer came (TLS refused).
fn curl(pki: &Pki, host: &str, ip: &str, body: &str, client: Option<&str>) -> Result<u16> {
    let mut command = Command::new("curl");
    command.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-m",
        "5",
        "--cacert",
        &pki.path("ca.crt"),
        "--resolve",
    ]);
    command.arg(format!("{host}:8080:{ip}"));
    if let Some(name) = client {
        command.args([
            "--cert",
            &pki.path(&format!("{name}.crt")),
            "--key",
            &pki.path(&format!("{name}.key")),
        ]);
    }
    command
        .args(["-H", "Content-Type: application/json", "--data", body])
        .arg(format!("https://{host}:8080/v2/models/card-fraud/infer"));
    let output = command.output().context("running curl")?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0))
}

#[tokio::test]
async fn a_partner_certificate_authenticates_its_subject_over_tls() -> Result<()> {
    run_with_operator("mtls", |ns: Arc<TestNamespace>| async move {
        let host = format!("scoring.{}.svc", ns.name);
        let pki = Pki::new(std::env::temp_dir().join("aimass-e2e").join(&ns.name))?;
        pki.issue(
            "server",
            "/CN=scoring",
            &format!("subjectAltName=DNS:{host}\nextendedKeyUsage=serverAuth\n"),
        )?;
        let client_ext = "extendedKeyUsage=clientAuth\n";
        pki.issue("bank", "/CN=partner:bank-b/O=partners", client_ext)?;
        pki.issue("stranger", "/CN=partner:stranger", client_ext)?;
        // A partner CA minting cluster identities gains nothing.
        pki.issue("masters", "/CN=mallory/O=system:masters", client_ext)?;
        pki.issue(
            "serviceaccount",
            &format!("/CN=system:serviceaccount:{}:default", ns.name),
            client_ext,
        )?;
        ns.apply(&format!(
            r#"
apiVersion: v1
kind: Secret
metadata: {{name: scoring-tls}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{crt}  tls.key: |
{key}---
{scoring}  security:
    tls:
      certificateSecret: {{name: scoring-tls}}
      clientCertificates:
        caSecret: {{name: partner-cas}}
---
{grant}"#,
            crt = block(&pki.pem("server.crt")?),
            key = block(&pki.pem("server.key")?),
            scoring = scoring_manifests(&zoo("gbdt_classifier"), 1),
            grant = may_score_card_fraud(
                "bank-scores-card-fraud",
                "{apiGroup: rbac.authorization.k8s.io, kind: Group, name: \"partner:partner-cas:partners\"}"
            ),
        ))
        .await?;
        // The partner CAs' Secret is not there yet: the condition says so.
        wait_for(
            &ns.api::<ModelDeployment>(),
            "scoring",
            TIMEOUT,
            |md: Option<&ModelDeployment>| {
                md.and_then(|m| m.status.as_ref()).is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.type_ == "Degraded"
                            && c.reason == "ReferenceNotFound"
                            && c.message.contains("\"partner-cas\"")
                    })
                })
            },
        )
        .await?;
        ns.apply(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: partner-cas}}\nstringData:\n  ca.crt: |\n{}",
            block(&pki.pem("ca.crt")?)
        ))
        .await?;
        let md = serving(&ns, 1, 1).await?;
        let url = md.status.and_then(|s| s.url).unwrap_or_default();
        ensure!(url.starts_with("https://"), "status.url: {url}");
        let (_, ip) = scoring_pod(&ns).await?;
        let body = zoo_reference("gbdt_classifier")?.0.to_string();

        // The partner's group is bound: its certificate alone is enough.
        wait(Duration::from_secs(30), "the partner to be served", || {
            let (pki, host, ip, body) = (&pki, &host, &ip, &body);
            async move { Ok(curl(pki, host, ip, body, Some("bank"))? == 200) }
        })
        .await?;
        let stranger = curl(&pki, &host, &ip, &body, Some("stranger"))?;
        ensure!(
            stranger == 403,
            "a certificate whose subject has no binding: {stranger}"
        );
        let masters = curl(&pki, &host, &ip, &body, Some("masters"))?;
        ensure!(
            masters == 403,
            "a certificate with O=system:masters: {masters}"
        );
        let serviceaccount = curl(&pki, &host, &ip, &body, Some("serviceaccount"))?;
        ensure!(
            serviceaccount == 401,
            "a certificate with CN=system:serviceaccount:…: {serviceaccount}"
        );
        let anonymous = curl(&pki, &host, &ip, &body, None)?;
        ensure!(
            anonymous == 401,
            "TLS without a certificate or token: {anonymous}"
        );
        // Plain HTTP on the API port gets no answer.
        let plain = aimass_e2e::post(
            &format!("http://{ip}:8080/v2/models/card-fraud/infer"),
            &zoo_reference("gbdt_classifier")?.0,
        )
        .await;
        ensure!(
            plain.is_err() || plain.as_ref().is_ok_and(|(code, _)| *code != 200),
            "plain HTTP was served: {plain:?}"
        );
        Ok(())
    })
    .await
}
