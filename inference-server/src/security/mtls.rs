//! TLS on the API port and client certificates for partner institutions:
//! a certificate that chains to the configured CA, is on none of its
//! revocation lists (which must be current: a CRL past its nextUpdate fails
//! every certificate) and has not expired authenticates its holder in a
//! namespace of its CA's own: the subject's CN becomes the user
//! `partner:<ca>:<CN>` and each O the group `partner:<ca>:<O>`, so a
//! partner's CA can never mint a cluster identity. A subject naming a
//! `system:` user is refused, `system:` organisations are dropped.
//! Clients without a certificate may still connect and use a bearer token.
//! The files are followed: a rotated certificate, CA or CRL (a mounted
//! Secret updated in place) applies to connections accepted after the next
//! check, without a restart, and a revoked or expired certificate stops
//! working on connections already open at their next request.

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
    /// The CA's name in the identities of its certificates
    /// (`partner:<name>:<CN>`).
    pub client_ca_name: String,
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

/// The application protocol a listener speaks, which TLS negotiates
/// (ALPN): gRPC clients insist on `h2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// HTTP/1.1: the REST port.
    Http1,
    /// HTTP/2: the gRPC port.
    H2,
}

/// One acceptor per [`Alpn`], from the same files.
#[derive(Clone)]
struct Acceptors {
    http1: TlsAcceptor,
    h2: TlsAcceptor,
}

struct Loaded {
    acceptors: Acceptors,
    revoked: Arc<std::collections::HashSet<Vec<u8>>>,
    fingerprint: Vec<u8>,
    checked: Instant,
}

impl ReloadingAcceptor {
    /// Loads the files; an error if they do not describe a usable acceptor.
    pub fn new(files: TlsFiles) -> Result<Self, String> {
        let fingerprint = fingerprint(&files);
        let (acceptors, revoked) = acceptors(&files)?;
        Ok(Self {
            files,
            state: Mutex::new(Loaded {
                acceptors,
                revoked: Arc::new(revoked),
                fingerprint,
                checked: Instant::now(),
            }),
        })
    }

    /// The acceptor for a new connection, reloaded first when the files
    /// changed since the last check (at most every [`RELOAD_CHECK`]).
    pub fn current(&self, alpn: Alpn) -> TlsAcceptor {
        let acceptors = &self.loaded().acceptors;
        match alpn {
            Alpn::Http1 => acceptors.http1.clone(),
            Alpn::H2 => acceptors.h2.clone(),
        }
    }

    /// Whether a certificate of serial number `serial` is revoked by the
    /// current CRLs (reloaded first, as for [`Self::current`]).
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        let revoked = Arc::clone(&self.loaded().revoked);
        revoked.contains(serial)
    }

    /// The certificate a verified chain's leaf is, in this CA's namespace.
    pub fn client_certificate(&self, chain: &[CertificateDer<'_>]) -> Option<ClientCertificate> {
        client_certificate(chain, &self.files.client_ca_name)
    }

    fn loaded(&self) -> std::sync::MutexGuard<'_, Loaded> {
        let mut loaded = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if loaded.checked.elapsed() >= RELOAD_CHECK {
            loaded.checked = Instant::now();
            let now = fingerprint(&self.files);
            if now != loaded.fingerprint {
                match acceptors(&self.files) {
                    Ok((fresh, revoked)) => {
                        tracing::info!("TLS certificate, client CA or CRL changed: reloaded");
                        loaded.acceptors = fresh;
                        loaded.revoked = Arc::new(revoked);
                        loaded.fingerprint = now;
                    }
                    Err(e) => tracing::error!(
                        error = %e,
                        "TLS files changed but do not load; keeping the previous ones"
                    ),
                }
            }
        }
        loaded
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

/// The TLS acceptors the files describe, and the serial numbers their CRLs
/// revoke.
fn acceptors(files: &TlsFiles) -> Result<(Acceptors, std::collections::HashSet<Vec<u8>>), String> {
    let chain: Vec<CertificateDer<'static>> = read_all(&files.cert, "the server certificate")?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("cannot read the server key {}: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut revoked = std::collections::HashSet::new();
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
            for crl in &crls {
                revoked.extend(revoked_serials(crl.as_ref())?);
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .with_crls(crls)
                // A CRL past its nextUpdate may miss revocations: it fails
                // every certificate until a current one is published.
                .enforce_revocation_expiration()
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("client certificate verifier: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("server certificate: {e}"))?;
    let with_alpn = |protocol: &[u8]| {
        let mut config = config.clone();
        config.alpn_protocols = vec![protocol.to_vec()];
        TlsAcceptor::from(Arc::new(config))
    };
    let acceptors = Acceptors {
        http1: with_alpn(b"http/1.1"),
        h2: with_alpn(b"h2"),
    };
    Ok((acceptors, revoked))
}

/// The serial numbers a CRL (DER) revokes.
fn revoked_serials(der: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let (_, crl) = x509_parser::parse_x509_crl(der).map_err(|e| format!("client CRL: {e}"))?;
    Ok(crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect())
}

/// A verified client certificate: who it stands for, and what is needed
/// to check it again on each request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The principal it stands for.
    pub principal: Principal,
    /// Its serial number.
    serial: Vec<u8>,
    /// Its notAfter, in seconds since the Unix epoch.
    not_after: i64,
}

impl ClientCertificate {
    /// Whether it still authenticates: not expired, not revoked by the
    /// CRLs `tls` holds now.
    pub fn still_valid(&self, tls: &ReloadingAcceptor) -> bool {
        jiff::Timestamp::now().as_second() <= self.not_after && !tls.is_revoked(&self.serial)
    }
}

/// The certificate a verified chain's leaf is, with its subject mapped into
/// `ca`'s namespace; `None` when its subject names no user or claims a
/// `system:` one.
pub fn client_certificate(chain: &[CertificateDer<'_>], ca: &str) -> Option<ClientCertificate> {
    let leaf = chain.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let subject = cert.subject();
    let common_name = subject.iter_common_name().next()?.as_str().ok()?;
    if common_name.is_empty() || common_name.starts_with("system:") {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .filter(|o| !o.is_empty() && !o.starts_with("system:"))
        .map(|o| format!("{PREFIX}{ca}:{o}"))
        .collect();
    Some(ClientCertificate {
        principal: Principal {
            user: format!("{PREFIX}{ca}:{common_name}"),
            uid: None,
            groups,
            credential_id: format!("x509:{}", &hex::encode(Sha256::digest(leaf.as_ref()))[..16]),
            method: "ClientCertificate",
            limit: None,
        },
        serial: cert.raw_serial().to_vec(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// What every certificate identity starts with: `partner:<ca>:`.
pub const PREFIX: &str = "partner:";
