//! TLS on the API port and client certificates for partner institutions:
//! a certificate that chains to the configured CA and is on none of its
//! revocation lists authenticates its holder as Kubernetes reads x509
//! identities — the subject's CN is the user, its O values the groups.
//! Clients without a certificate may still connect and use a bearer token.
//! The files are followed: a rotated certificate, CA or CRL (a mounted
//! Secret updated in place) applies to connections accepted after the next
//! check, without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

use super::Principal;

/// Where the server's certificate and the client CA and CRLs are (files of
/// mounted Secrets).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// CA certificates client certificates must chain to; none turns client
    /// certificates off.
    pub client_ca: Option<PathBuf>,
    /// Certificate revocation lists of that CA (PEM).
    pub client_crls: Vec<PathBuf>,
}

fn read_all<T: PemObject>(path: &Path, what: &str) -> Result<Vec<T>, String> {
    T::pem_file_iter(path)
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

/// How often the files are checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// A TLS acceptor that follows its files. A change that does not load (a
/// half-written Secret, a bad CRL) keeps the last good acceptor, and says
/// so in the log, until the files load again.
pub struct ReloadingAcceptor {
    files: TlsFiles,
    state: Mutex<Loaded>,
}

struct Loaded {
    acceptor: TlsAcceptor,
    fingerprint: Vec<u8>,
    checked: Instant,
}

impl ReloadingAcceptor {
    /// Loads the files; an error if they do not describe a usable acceptor.
    pub fn new(files: TlsFiles) -> Result<Self, String> {
        let fingerprint = fingerprint(&files);
        let acceptor = acceptor(&files)?;
        Ok(Self {
            files,
            state: Mutex::new(Loaded {
                acceptor,
                fingerprint,
                checked: Instant::now(),
            }),
        })
    }

    /// The acceptor for a new connection, reloaded first when the files
    /// changed since the last check (at most every [`RELOAD_CHECK`]).
    pub fn current(&self) -> TlsAcceptor {
        let mut loaded = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if loaded.checked.elapsed() >= RELOAD_CHECK {
            loaded.checked = Instant::now();
            let now = fingerprint(&self.files);
            if now != loaded.fingerprint {
                match acceptor(&self.files) {
                    Ok(fresh) => {
                        tracing::info!("TLS certificate, client CA or CRL changed: reloaded");
                        loaded.acceptor = fresh;
                        loaded.fingerprint = now;
                    }
                    Err(e) => tracing::error!(
                        error = %e,
                        "TLS files changed but do not load; keeping the previous ones"
                    ),
                }
            }
        }
        loaded.acceptor.clone()
    }
}

/// A digest of every file's content (a missing file counts as empty).
fn fingerprint(files: &TlsFiles) -> Vec<u8> {
    let mut hasher = Sha256::new();
    let paths = [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ];
    for path in paths.into_iter().flatten().chain(&files.client_crls) {
        hasher.update(std::fs::read(path).unwrap_or_default());
        hasher.update([0]);
    }
    hasher.finalize().to_vec()
}

/// The TLS acceptor the files describe.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    let chain: Vec<CertificateDer<'static>> = read_all(&files.cert, "the server certificate")?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("cannot read the server key {}: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_all::<CertificateDer<'static>>(ca, "the client CA")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("client CA {}: {e}", ca.display()))?;
            }
            let mut crls: Vec<CertificateRevocationListDer<'static>> = Vec::new();
            for crl in &files.client_crls {
                crls.extend(read_all(crl, "the client CRL")?);
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .with_crls(crls)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("client certificate verifier: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("server certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The principal a verified client certificate stands for.
pub fn principal(chain: &[CertificateDer<'_>]) -> Option<Principal> {
    let leaf = chain.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let subject = cert.subject();
    let user = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some(Principal {
        user,
        uid: None,
        groups,
        credential_id: format!("x509:{}", &hex::encode(Sha256::digest(leaf.as_ref()))[..16]),
        method: "ClientCertificate",
        limit: None,
    })
}
