//! Client certificates over real TLS on loopback: a partner's certificate
//! signed by the configured CA authenticates its subject in the CA's own
//! namespace (`partner:<ca>:<CN>`, groups `partner:<ca>:<O>`), whose calls
//! are then authorised by RBAC like any other; a certificate claiming a
//! `system:` user is 401 and one claiming `system:masters` gains nothing; a
//! revoked certificate cannot connect, and one revoked while its connection
//! is open stops working on that connection; without a certificate or token
//! the call is 401. The same certificates hold on the gRPC port (TLS with
//! ALPN h2, Triton's gRPC client): served, PERMISSION_DENIED,
//! UNAUTHENTICATED.

use std::sync::Arc;
use std::time::Duration;

use aimass_audit::Record;
use aimass_inference_server::security::mtls::{RELOAD_CHECK, ReloadingAcceptor, TlsFiles};
use aimass_inference_server::security::stub;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber, date_time_ymd,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};

mod support;

/// Certificates and a TLS client, for the test below.
#[cfg(test)]
mod helpers {
    use super::*;

    pub struct Pki {
        pub dir: std::path::PathBuf,
        issuer: Issuer<'static, KeyPair>,
    }

    impl Pki {
        pub fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("aimass-mtls-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(DnType::CommonName, "partner bank CA");
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let ca = params.self_signed(&key).unwrap();
            std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
            Self {
                dir,
                issuer: Issuer::new(params, key),
            }
        }

        /// Issues a certificate; returns (cert path, key path).
        pub fn issue(
            &self,
            name: &str,
            serial: u64,
            cn: &str,
            orgs: &[&str],
            server: bool,
        ) -> (std::path::PathBuf, std::path::PathBuf) {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(if server {
                vec!["localhost".to_owned()]
            } else {
                vec![]
            })
            .unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            for o in orgs {
                params.distinguished_name.push(DnType::OrganizationName, *o);
            }
            params.serial_number = Some(SerialNumber::from(serial));
            params.extended_key_usages = vec![if server {
                ExtendedKeyUsagePurpose::ServerAuth
            } else {
                ExtendedKeyUsagePurpose::ClientAuth
            }];
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            let (c, k) = (
                self.dir.join(format!("{name}.pem")),
                self.dir.join(format!("{name}.key")),
            );
            std::fs::write(&c, cert.pem()).unwrap();
            std::fs::write(&k, key.serialize_pem()).unwrap();
            (c, k)
        }

        pub fn revoke(&self, serial: u64) -> std::path::PathBuf {
            let crl = CertificateRevocationListParams {
                this_update: date_time_ymd(2026, 1, 1),
                next_update: date_time_ymd(2036, 1, 1),
                crl_number: SerialNumber::from(1u64),
                issuing_distribution_point: None,
                revoked_certs: vec![RevokedCertParams {
                    serial_number: SerialNumber::from(serial),
                    revocation_time: date_time_ymd(2026, 1, 2),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                }],
                key_identifier_method: KeyIdMethod::Sha256,
            }
            .signed_by(&self.issuer)
            .unwrap();
            let path = self.dir.join("crl.pem");
            std::fs::write(&path, crl.pem().unwrap()).unwrap();
            path
        }
    }

    /// A TLS connection to the server, presenting `client` (cert, key) if
    /// given.
    pub async fn connect(
        addr: std::net::SocketAddr,
        pki: &Pki,
        client: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(pki.dir.join("ca.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(cert)
                        .unwrap()
                        .map(Result::unwrap)
                        .collect(),
                    PrivateKeyDer::from_pem_file(key).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| format!("http: {e}"))?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// POSTs one inference on an open connection.
    pub async fn send(
        sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        body: &str,
    ) -> Result<(u16, Value), String> {
        let request = hyper::Request::post("/v2/models/fraud/infer")
            .header("host", "localhost")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// POSTs one inference on a new TLS connection, presenting `client`
    /// (cert, key) if given.
    pub async fn call(
        addr: std::net::SocketAddr,
        pki: &Pki,
        client: Option<&(std::path::PathBuf, std::path::PathBuf)>,
        body: &str,
    ) -> Result<(u16, Value), String> {
        send(&mut connect(addr, pki, client).await?, body).await
    }
}

use helpers::{Pki, call, connect, send};

#[tokio::test]
async fn a_partner_certificate_authenticates_its_subject_and_a_revoked_one_cannot_connect() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new();
    let server_files = pki.issue("server", 1, "fraud.risk.svc", &[], true);
    let partner = pki.issue("partner", 2, "partner-bank-a", &["partners"], false);
    let stranger = pki.issue("stranger", 3, "partner-bank-b", &["partners"], false);
    let revoked = pki.issue("revoked", 4, "partner-bank-c", &["partners"], false);
    // A partner CA minting cluster identities.
    let service_account = pki.issue(
        "sa",
        5,
        "system:serviceaccount:kube-system:default",
        &["system:serviceaccounts"],
        false,
    );
    let masters = pki.issue("masters", 6, "mallory", &["system:masters"], false);
    let crl = pki.revoke(4);

    // RBAC (the stand-in): partner-bank-a may run the model, -b may not.
    let (_, client) = stub::serve(
        Arc::new(|path: &str, body: &Value| {
            let mut answer = body.clone();
            answer["status"] = if path.ends_with("/tokenreviews") {
                json!({"authenticated": false})
            } else {
                // The cluster-admin binding a forged `system:masters` would
                // match, and partner-bank-a's own grant.
                let groups = body["spec"]["groups"].as_array().cloned().unwrap_or_default();
                let masters = groups.iter().any(|g| g == "system:masters");
                json!({"allowed": masters || (body["spec"]["user"] == "partner:bank-cas:partner-bank-a" && groups.first() == Some(&json!("partner:bank-cas:partners")))})
            };
            (201, answer)
        }),
        Arc::new(|| Duration::ZERO),
    )
    .await
    .unwrap();
    let zoo = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/zoo/models");
    let mut service = support::load("gbdt_classifier", &[]).await;
    let audit = pki.dir.join("audit.jsonl");
    service.enforcement = Some(support::enforcement(
        client,
        &audit,
        Arc::clone(&service.metrics),
    ));
    service.admin_separate = true;
    service.tls = Some(Arc::new(
        ReloadingAcceptor::new(TlsFiles {
            cert: server_files.0,
            key: server_files.1,
            client_ca: Some(pki.dir.join("ca.pem")),
            client_crls: vec![crl],
            client_ca_name: "bank-cas".into(),
        })
        .unwrap(),
    ));
    let (addr, grpc_addr) = support::serve_rest_and_grpc(Arc::new(service)).await;

    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{zoo}/gbdt_classifier.json")).unwrap(),
    )
    .unwrap();
    let input = &reference["inputs"][0];
    let body = json!({"inputs": [{"name": input["name"], "shape": input["shape"], "datatype": input["datatype"], "data": input["data"]}]}).to_string();

    assert_eq!(
        call(addr, &pki, Some(&partner), &body).await.unwrap().0,
        200
    );
    let (status, answer) = call(addr, &pki, Some(&stranger), &body).await.unwrap();
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("partner-bank-b"));
    assert_eq!(call(addr, &pki, None, &body).await.unwrap().0, 401);
    // The revoked certificate fails at the handshake or on the first read.
    assert!(
        call(addr, &pki, Some(&revoked), &body).await.is_err(),
        "a revoked certificate was served"
    );

    let (status, answer) = call(addr, &pki, Some(&service_account), &body)
        .await
        .unwrap();
    assert_eq!(
        status, 401,
        "a certificate claiming a ServiceAccount: {answer}"
    );
    let (status, answer) = call(addr, &pki, Some(&masters), &body).await.unwrap();
    assert_eq!(
        status, 403,
        "a certificate claiming system:masters: {answer}"
    );

    // The same certificates over gRPC (TLS with ALPN h2), by Triton's
    // gRPC client.
    for (certificate, status) in [
        (Some(&partner), "OK"),
        (Some(&stranger), "PERMISSION_DENIED"),
        (None, "UNAUTHENTICATED"),
    ] {
        assert_eq!(
            grpc_status(&pki, grpc_addr, certificate, &body).await,
            status
        );
    }

    // The CA publishes a new CRL (the mounted Secret changes): partner-bank-a
    // is revoked after the next check, no restart: on the connection it
    // holds open, and for new connections.
    let mut open = connect(addr, &pki, Some(&partner)).await.unwrap();
    assert_eq!(send(&mut open, &body).await.unwrap().0, 200);
    pki.revoke(2);
    tokio::time::sleep(RELOAD_CHECK + Duration::from_millis(200)).await;
    assert_eq!(
        send(&mut open, &body).await.unwrap().0,
        401,
        "a certificate revoked while its connection was open still authenticates"
    );
    assert!(
        call(addr, &pki, Some(&partner), &body).await.is_err(),
        "a certificate revoked by the updated CRL was served"
    );

    let (grpc_records, records): (Vec<Record>, Vec<Record>) = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Record>(l).unwrap())
        .partition(|r| r.operation.starts_with("gRPC "));
    let grpc_callers: Vec<(&str, u16)> = grpc_records
        .iter()
        .map(|r| (r.actor.user.as_str(), r.status))
        .collect();
    assert_eq!(
        grpc_callers,
        [
            ("partner:bank-cas:partner-bank-a", 200),
            ("partner:bank-cas:partner-bank-b", 403),
            ("", 401)
        ]
    );
    assert_eq!(
        records.len(),
        7,
        "the revoked connections never reached a route"
    );
    assert_eq!(
        (
            records[0].actor.user.as_str(),
            records[0].actor.method.as_str()
        ),
        ("partner:bank-cas:partner-bank-a", "ClientCertificate")
    );
    assert_eq!(records[0].actor.groups, ["partner:bank-cas:partners"]);
    assert_eq!(records[4].actor.user, "partner:bank-cas:mallory");
    assert!(records[4].actor.groups.is_empty(), "{:?}", records[4].actor);
    assert!(records[0].actor.credential_id.starts_with("x509:"));
}

/// The gRPC status of one inference over TLS to `addr`, with
/// `certificate` (its files) or without one, by tritonclient.grpc.
#[cfg(test)]
async fn grpc_status(
    pki: &helpers::Pki,
    addr: std::net::SocketAddr,
    certificate: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    body: &str,
) -> String {
    let request = pki.dir.join("grpc-request.json");
    std::fs::write(&request, body).unwrap();
    let mut command = std::process::Command::new(support::clients_python().join("python"));
    command
        .arg(support::repo().join("tests/clients/grpc_infer.py"))
        .arg(addr.to_string())
        .arg("fraud")
        .arg(&request)
        .env("AIMASS_GRPC_CA", pki.dir.join("ca.pem"))
        .env("AIMASS_GRPC_SERVER_NAME", "localhost");
    if let Some((cert, key)) = certificate {
        command
            .env("AIMASS_GRPC_CERT", cert)
            .env("AIMASS_GRPC_KEY", key);
    }
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    answer["status"].as_str().unwrap_or_default().to_owned()
}
