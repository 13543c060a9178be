//! A stand-in for the API server's TokenReview and SubjectAccessReview
//! endpoints on loopback, answering with a function of (path, request body):
//! what the security layer's tests and its benchmark run against; and
//! ApiClients as the operator leaves them, for the same.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use serde_json::Value;

/// How the stand-in answers: HTTP status and JSON body for a path and body.
pub type Answer = dyn Fn(&str, &Value) -> (u16, Value) + Send + Sync;

/// Serves `answer` on a free loopback port (delaying each answer by
/// `delay()`) and returns a client for it.
pub async fn serve(
    answer: Arc<Answer>,
    delay: Arc<dyn Fn() -> std::time::Duration + Send + Sync>,
) -> std::io::Result<(SocketAddr, kube::Client)> {
    // object_store brings rustls with aws-lc-rs and kube with ring; the
    // binaries pick ring, and so do the stand-in's users.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (answer, delay) = (Arc::clone(&answer), Arc::clone(&delay));
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (answer, delay) = (Arc::clone(&answer), Arc::clone(&delay));
                        async move {
                            let path = req.uri().path().to_owned();
                            let body = req.into_body().collect().await?.to_bytes();
                            tokio::time::sleep(delay()).await;
                            let (code, json) = answer(
                                &path,
                                &serde_json::from_slice(&body).unwrap_or(Value::Null),
                            );
                            let mut response =
                                Response::new(Full::new(Bytes::from(json.to_string())));
                            *response.status_mut() = hyper::StatusCode::from_u16(code)
                                .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                            response.headers_mut().insert(
                                "content-type",
                                HeaderValue::from_static("application/json"),
                            );
                            Ok::<_, hyper::Error>(response)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let url = format!("http://{addr}")
        .parse()
        .map_err(|e| std::io::Error::other(format!("{e}")))?;
    let client = kube::Client::try_from(kube::Config::new(url)).map_err(std::io::Error::other)?;
    Ok((addr, client))
}

/// ApiClient `name`, acting as `partner:<name>` with `quota` calls per
/// second if given, whose one fresh key the operator has resolved into its
/// status: (the key, the client).
pub fn api_client(
    name: &str,
    quota: Option<i32>,
) -> Result<(String, aimass_crds::v1alpha1::ApiClient), getrandom::Error> {
    use aimass_crds::v1alpha1::{
        ApiClient, ApiClientSpec, ApiClientStatus, ApiKeyReference, ClientQuota, ResolvedApiKey,
        SecretReference,
    };
    let (key, id, sha256) = super::generate_api_key()?;
    let mut client = ApiClient::new(
        name,
        ApiClientSpec {
            principal: format!("partner:{name}"),
            groups: Vec::new(),
            expires: None,
            quota: quota.map(|requests_per_second| ClientQuota {
                requests_per_second,
                burst: None,
            }),
            keys: vec![ApiKeyReference {
                secret_ref: SecretReference { name: "key".into() },
            }],
        },
    );
    client.status = Some(ApiClientStatus {
        keys: vec![ResolvedApiKey {
            secret: "key".into(),
            id,
            sha256,
        }],
        ..ApiClientStatus::default()
    });
    Ok((key, client))
}
