//! The part of the kubelet's HTTPS API the API server proxies to: container
//! logs (`kubectl logs [-f]`, `pods/log`). Only the API server's client
//! certificate, signed by the cluster CA, is accepted.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use bytes_body::{Body, full, streaming};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use crate::error::{Error, Result};
use crate::logs::{LogOptions, LogRegistry};

/// Builds the TLS configuration of the kubelet endpoints.
pub fn tls(cert: &Path, key: &Path, client_ca: &Path) -> Result<TlsAcceptor> {
    let bad = |what: &str, e: &dyn std::fmt::Display| Error::Config(format!("{what}: {e}"));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect())
        .map_err(|e| bad(&format!("reading {}", cert.display()), &e))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(&format!("reading {}", key.display()), &e))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(client_ca).map_err(|e| bad("reading client CA", &e))? {
        roots
            .add(ca.map_err(|e| bad("reading client CA", &e))?)
            .map_err(|e| bad("client CA", &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| bad("client verifier", &e))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS versions", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| bad("serving certificate", &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves the kubelet API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, tls: TlsAcceptor, logs: LogRegistry) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let tls = tls.clone();
        let logs = logs.clone();
        tokio::spawn(async move {
            let stream = match tls.accept(stream).await {
                Ok(s) => s,
                Err(e) => {
                    debug!(%peer, error = %e, "kubelet API TLS handshake failed");
                    return;
                }
            };
            let service = service_fn(move |req| {
                let logs = logs.clone();
                async move { Ok::<_, Infallible>(route(req, logs).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, error = %e, "kubelet API connection ended with an error");
            }
        });
    }
}

fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    r
}

async fn route(req: Request<Incoming>, logs: LogRegistry) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz"] => plain(StatusCode::OK, "ok".into()),
        ["containerLogs", namespace, pod, container] => {
            let options = parse_options(req.uri().query().unwrap_or_default());
            let Some(pod_logs) = logs.get(namespace, pod) else {
                return plain(
                    StatusCode::NOT_FOUND,
                    format!("pod {namespace}/{pod} is not running on this node"),
                );
            };
            match pod_logs.read(container, &options).await {
                Ok((text, None)) => Response::new(full(text)),
                Ok((text, Some(follow))) => Response::new(streaming(text, pod_logs, follow)),
                Err(e) => plain(StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
        _ => plain(
            StatusCode::NOT_FOUND,
            format!("{path} is not served by the aimass node agent"),
        ),
    }
}

fn parse_options(query: &str) -> LogOptions {
    let mut options = LogOptions::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        match k {
            "follow" => options.follow = v == "true" || v == "1",
            "previous" => options.previous = v == "true" || v == "1",
            "timestamps" => options.timestamps = v == "true" || v == "1",
            "tailLines" => options.tail_lines = v.parse().ok(),
            "sinceSeconds" => options.since_seconds = v.parse().ok(),
            "limitBytes" => options.limit_bytes = v.parse().ok(),
            _ => {}
        }
    }
    options
}

/// Response bodies: a whole text, or a text followed by a log stream.
mod bytes_body {
    use std::convert::Infallible;
    use std::sync::Arc;

    use futures::StreamExt;
    use http_body_util::combinators::UnsyncBoxBody;
    use http_body_util::{BodyExt, Full, StreamBody};
    use hyper::body::{Bytes, Frame};

    use crate::logs::{Follow, PodLogs};

    /// A response body.
    pub type Body = UnsyncBoxBody<Bytes, Infallible>;

    /// A body holding `text`.
    pub fn full(text: String) -> Body {
        Full::new(Bytes::from(text)).boxed_unsync()
    }

    /// A body that sends `text`, then new lines until the container stops.
    pub fn streaming(text: String, logs: Arc<PodLogs>, follow: Follow) -> Body {
        let head = futures::stream::once(async move { Ok(Frame::data(Bytes::from(text))) });
        let tail = futures::stream::unfold((logs, follow), |(logs, mut follow)| async move {
            let chunk = logs.next(&mut follow).await?;
            Some((Ok(Frame::data(Bytes::from(chunk))), (logs, follow)))
        });
        BodyExt::boxed_unsync(StreamBody::new(head.chain(tail)))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_options;

    #[test]
    fn parses_kubectl_log_queries() {
        let o = parse_options(
            "follow=true&tailLines=10&timestamps=true&sinceSeconds=60&limitBytes=100",
        );
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(10));
        assert_eq!(o.since_seconds, Some(60));
        assert_eq!(o.limit_bytes, Some(100));
    }
}
