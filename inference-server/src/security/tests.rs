//! The security layer against a fake of the two API server endpoints it
//! uses (TokenReview, SubjectAccessReview) on loopback.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use serde_json::{Value, json};

use super::*;

/// The fake API server's state: tokens → users, and the (user, verb,
/// subresource, model) grants.
#[derive(Default)]
struct FakeApi {
    tokens: Mutex<HashMap<String, String>>,
    grants: Mutex<HashSet<(String, String, String, String)>>,
    down: AtomicBool,
    slow: AtomicBool,
    reviews: AtomicUsize,
}

impl FakeApi {
    fn grant(&self, user: &str, verb: &str, subresource: &str, model: &str) {
        self.grants.lock().unwrap().insert((
            user.into(),
            verb.into(),
            subresource.into(),
            model.into(),
        ));
    }

    fn revoke_all(&self) {
        self.grants.lock().unwrap().clear();
    }

    fn answer(&self, path: &str, body: &Value) -> (u16, Value) {
        self.reviews.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return (
                500,
                json!({"kind": "Status", "status": "Failure", "message": "etcd is down", "code": 500}),
            );
        }
        let mut answer = body.clone();
        if path.ends_with("/tokenreviews") {
            let token = body["spec"]["token"].as_str().unwrap_or_default();
            let audience_ok = body["spec"]["audiences"][0] == "aimass";
            answer["status"] = match self.tokens.lock().unwrap().get(token) {
                Some(user) if audience_ok => {
                    json!({"authenticated": true, "user": {"username": user, "groups": ["system:serviceaccounts"]}, "audiences": ["aimass"]})
                }
                _ => json!({"authenticated": false, "error": "invalid bearer token"}),
            };
        } else {
            let attrs = &body["spec"]["resourceAttributes"];
            let key = (
                body["spec"]["user"].as_str().unwrap_or_default().to_owned(),
                attrs["verb"].as_str().unwrap_or_default().to_owned(),
                attrs["subresource"].as_str().unwrap_or_default().to_owned(),
                attrs["name"].as_str().unwrap_or_default().to_owned(),
            );
            let allowed = attrs["group"] == "aimass.io"
                && attrs["resource"] == "models"
                && attrs["namespace"] == "risk"
                && self.grants.lock().unwrap().contains(&key);
            answer["status"] =
                json!({"allowed": allowed, "reason": if allowed { "RBAC: allowed" } else { "" }});
        }
        (201, answer)
    }
}

async fn start(api: Arc<FakeApi>) -> kube::Client {
    // object_store brings rustls with aws-lc-rs and kube with ring; the
    // binaries pick ring, and so do the tests.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let api = Arc::clone(&api);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let api = Arc::clone(&api);
                        async move {
                            let path = req.uri().path().to_owned();
                            let body = req.into_body().collect().await?.to_bytes();
                            if api.slow.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_secs(2)).await;
                            }
                            let (code, answer) = api.answer(
                                &path,
                                &serde_json::from_slice(&body).unwrap_or(Value::Null),
                            );
                            let mut response =
                                Response::new(Full::new(Bytes::from(answer.to_string())));
                            *response.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
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
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

async fn guard(api: &Arc<FakeApi>, model: &str, limits: Option<Limits>) -> Guard {
    let client = start(Arc::clone(api)).await;
    let timeout = Duration::from_millis(500);
    Guard {
        authn: TokenAuthenticator::new(client.clone(), "aimass".into(), timeout),
        authz: Authorizer::new(client, "risk".into(), model.into(), timeout)
            .with_ttls(Duration::from_millis(300), Duration::from_millis(200)),
        limits,
    }
}

fn headers(token: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(t) = token {
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
    }
    h
}

fn fake_with_users() -> Arc<FakeApi> {
    let api = Arc::new(FakeApi::default());
    api.tokens.lock().unwrap().extend([
        (
            "tok-alice".to_owned(),
            "system:serviceaccount:payments:alice".to_owned(),
        ),
        (
            "tok-bob".to_owned(),
            "system:serviceaccount:payments:bob".to_owned(),
        ),
    ]);
    api
}

#[tokio::test]
async fn no_or_bad_credentials_are_unauthenticated() {
    let api = fake_with_users();
    let g = guard(&api, "a", None).await;
    let mut d = Decision::default();
    assert_eq!(
        g.admit(&headers(None), Action::Infer, &mut d).await,
        Err(Refusal::Unauthenticated)
    );
    assert_eq!(d.authentication, "Refused");
    assert_eq!(
        g.admit(&headers(Some("forged")), Action::Infer, &mut d)
            .await,
        Err(Refusal::Unauthenticated)
    );
    let mut basic = HeaderMap::new();
    basic.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Basic YWxpY2U6cHc="),
    );
    assert_eq!(
        g.admit(&basic, Action::Infer, &mut d).await,
        Err(Refusal::Unauthenticated)
    );
}

#[tokio::test]
async fn infer_on_a_is_allowed_on_a_only_and_get_models_alone_does_not_grant_it() {
    let api = fake_with_users();
    api.grant(
        "system:serviceaccount:payments:alice",
        "create",
        "infer",
        "a",
    );
    api.grant("system:serviceaccount:payments:bob", "get", "", "a");
    let on_a = guard(&api, "a", None).await;
    let on_b = guard(&api, "b", None).await;
    let mut d = Decision::default();
    let alice = on_a
        .admit(&headers(Some("tok-alice")), Action::Infer, &mut d)
        .await
        .unwrap();
    assert_eq!(alice.user, "system:serviceaccount:payments:alice");
    assert!(
        alice.credential_id.starts_with("token:") && !alice.credential_id.contains("tok-alice")
    );
    assert_eq!(
        (d.authentication.as_str(), d.authorization.as_str()),
        ("Allowed", "Allowed")
    );
    let refused = on_b
        .admit(&headers(Some("tok-alice")), Action::Infer, &mut d)
        .await;
    assert!(
        matches!(&refused, Err(Refusal::Forbidden(r)) if r.contains("models/infer") && r.contains("\"b\"")),
        "{refused:?}"
    );
    assert_eq!(d.authorization, "Denied");
    // Bob may read model a's metadata but not run it.
    on_a.admit(&headers(Some("tok-bob")), Action::Read, &mut d)
        .await
        .unwrap();
    assert!(matches!(
        on_a.admit(&headers(Some("tok-bob")), Action::Infer, &mut d)
            .await,
        Err(Refusal::Forbidden(_))
    ));
}

#[tokio::test]
async fn decisions_are_cached_and_a_revocation_holds_within_the_ttl() {
    let api = fake_with_users();
    api.grant(
        "system:serviceaccount:payments:alice",
        "create",
        "infer",
        "a",
    );
    let g = guard(&api, "a", None).await;
    let mut d = Decision::default();
    for _ in 0..50 {
        g.admit(&headers(Some("tok-alice")), Action::Infer, &mut d)
            .await
            .unwrap();
    }
    assert_eq!(
        api.reviews.load(Ordering::SeqCst),
        2,
        "one TokenReview and one SubjectAccessReview for 50 calls"
    );
    api.revoke_all();
    // Within the allow TTL (300 ms here) the cached allow holds; after it,
    // the revocation bites.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(
        g.admit(&headers(Some("tok-alice")), Action::Infer, &mut d)
            .await,
        Err(Refusal::Forbidden(_))
    ));
}

#[tokio::test]
async fn an_api_server_failure_or_timeout_is_a_503_and_is_not_cached() {
    let api = fake_with_users();
    api.grant(
        "system:serviceaccount:payments:alice",
        "create",
        "infer",
        "a",
    );
    let g = guard(&api, "a", None).await;
    let mut d = Decision::default();
    api.down.store(true, Ordering::SeqCst);
    assert!(matches!(
        g.admit(&headers(Some("tok-alice")), Action::Infer, &mut d)
            .await,
        Err(Refusal::Unavailable(_))
    ));
    assert_eq!(d.authentication, "Unavailable");
    api.down.store(false, Ordering::SeqCst);
    g.admit(&headers(Some("tok-alice")), Action::Infer, &mut d)
        .await
        .unwrap();
    // The token is now cached; a slow SubjectAccessReview times out.
    let g2 = guard(&api, "a", None).await;
    g2.authn.authenticate("tok-alice").await.unwrap();
    api.slow.store(true, Ordering::SeqCst);
    let slow = g2
        .admit(&headers(Some("tok-alice")), Action::Infer, &mut d)
        .await;
    assert!(
        matches!(&slow, Err(Refusal::Unavailable(r)) if r.contains("timed out")),
        "{slow:?}"
    );
    assert_eq!(d.authorization, "Unavailable");
}

#[tokio::test]
async fn a_caller_over_its_rate_limit_gets_429_while_another_is_unaffected() {
    let api = fake_with_users();
    api.grant(
        "system:serviceaccount:payments:alice",
        "create",
        "infer",
        "a",
    );
    api.grant("system:serviceaccount:payments:bob", "create", "infer", "a");
    let limits = Limits::new(NonZeroU32::new(1).unwrap(), NonZeroU32::new(5).unwrap());
    let g = guard(&api, "a", Some(limits)).await;
    let mut d = Decision::default();
    for _ in 0..5 {
        g.admit(&headers(Some("tok-alice")), Action::Infer, &mut d)
            .await
            .unwrap();
    }
    let limited = g
        .admit(&headers(Some("tok-alice")), Action::Infer, &mut d)
        .await;
    assert!(
        matches!(limited, Err(Refusal::RateLimited(wait)) if wait > Duration::ZERO && wait <= Duration::from_secs(1)),
        "{limited:?}"
    );
    assert_eq!(d.rate_limit, "Limited");
    g.admit(&headers(Some("tok-bob")), Action::Infer, &mut d)
        .await
        .unwrap();
}
