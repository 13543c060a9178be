//! TLS on the API port and client certificates for partner institutions:
//! a certificate that chains to the configured CA and is on none of its
//! revocation lists authenticates its holder as Kubernetes reads x509
//! identities — the subject's CN is the user, its O values the groups.
//! Clients without a certificate may still connect and use a bearer token.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    })
}
