//! The security layer against a fake of the two API server endpoints it
//! uses (TokenReview, SubjectAccessReview) on loopback.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper::header::HeaderValue;
use serde_json::{Value, json};

use super::*;

impl Guard {
    /// Both gates, as a call passes them.
    async fn admit(
        &self,
        headers: &HeaderMap,
        certificate: Option<&Principal>,
        action: Action,
        decision: &mut Decision,
    ) -> Result<Principal, Refusal> {
        let principal = self.authenticate(headers, certificate, decision).await?;
        self.authorize(&principal, action, decision).await?;
        Ok(principal)
    }
}

/// The fake API server's state: tokens → users, and the (user, verb,
/// subresource, model) grants.
#[derive(Default)]
struct FakeApi {
    tokens: Mutex<HashMap<String, String>>,
    grants: Mutex<HashSet<(String, String, String, String)>>,
    down: AtomicBool,
    slow: AtomicBool,
    /// Answer TokenReviews without the audiences they were asked about, as
    /// an authenticator that ignores audiences does.
    no_audiences: AtomicBool,
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
                Some(user) if self.no_audiences.load(Ordering::SeqCst) => {
                    json!({"authenticated": true, "user": {"username": user, "groups": ["system:serviceaccounts"]}})
                }
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
    let slow = Arc::clone(&api);
    let delay = Arc::new(move || {
        if slow.slow.load(Ordering::SeqCst) {
            Duration::from_secs(2)
        } else {
            Duration::ZERO
        }
    });
    let answer = Arc::new(move |path: &str, body: &Value| api.answer(path, body));
    super::stub::serve(answer, delay).await.unwrap().1
}

/// The refusal of a caller without a token for the tests' audience.
fn unauthenticated() -> Refusal {
    Refusal::Unauthenticated {
        audience: "aimass".into(),
    }
}

async fn guard(api: &Arc<FakeApi>, model: &str, limits: Option<Limits>) -> Guard {
    let client = start(Arc::clone(api)).await;
    let timeout = Duration::from_millis(500);
    Guard {
        authn: TokenAuthenticator::new(client.clone(), "aimass".into(), timeout),
        authz: Authorizer::new(client, "risk".into(), model.into(), timeout)
            .with_ttls(Duration::from_millis(300), Duration::from_millis(200)),
        api_keys: None,
        limits,
        per_address: None,
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

/// RBAC lets alice run model `a`.
fn alice_may_infer_on_a(api: &FakeApi) {
    api.grant(
        "system:serviceaccount:payments:alice",
        "create",
        "infer",
        "a",
    );
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

#[test]
fn a_refused_caller_is_told_what_would_work() {
    assert_eq!(
        unauthenticated().to_string(),
        "authentication required: send a bearer token for audience \"aimass\" (one for another audience, expired or revoked is refused), an API key or a client certificate"
    );
    assert_eq!(
        Refusal::UnknownApiKey.to_string(),
        "this API key is unknown here: it was revoked, expired, or never issued to an ApiClient of this namespace"
    );
}

#[tokio::test]
async fn no_or_bad_credentials_are_unauthenticated() {
    let api = fake_with_users();
    let g = guard(&api, "a", None).await;
    let mut d = Decision::default();
    assert_eq!(
        g.admit(&headers(None), None, Action::Infer, &mut d).await,
        Err(unauthenticated())
    );
    assert_eq!(d.authentication, "Refused");
    assert_eq!(
        g.admit(&headers(Some("forged")), None, Action::Infer, &mut d)
            .await,
        Err(unauthenticated())
    );
    let mut basic = HeaderMap::new();
    basic.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Basic YWxpY2U6cHc="),
    );
    assert_eq!(
        g.admit(&basic, None, Action::Infer, &mut d).await,
        Err(unauthenticated())
    );
}

#[tokio::test]
async fn a_review_that_does_not_list_the_audience_is_refused() {
    let api = fake_with_users();
    alice_may_infer_on_a(&api);
    api.no_audiences.store(true, Ordering::SeqCst);
    let g = guard(&api, "a", None).await;
    let mut d = Decision::default();
    assert_eq!(
        g.admit(&headers(Some("tok-alice")), None, Action::Infer, &mut d)
            .await,
        Err(unauthenticated())
    );
}

#[tokio::test]
async fn a_flood_of_made_up_tokens_costs_a_bounded_number_of_reviews() {
    let api = fake_with_users();
    let g = guard(&api, "a", None).await;
    let started = std::time::Instant::now();
    let mut limited = 0;
    for i in 0..1000 {
        let mut d = Decision::default();
        let token = format!("made-up-{i}-{}", "x".repeat(i % 7));
        match g
            .admit(&headers(Some(&token)), None, Action::Infer, &mut d)
            .await
        {
            Err(Refusal::RateLimited(_)) => limited += 1,
            Err(Refusal::Unauthenticated { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    // A token far longer than any real one is refused unasked.
    let mut d = Decision::default();
    let huge = "y".repeat(64 * 1024);
    let before = api.reviews.load(Ordering::SeqCst);
    assert!(
        g.admit(&headers(Some(&huge)), None, Action::Infer, &mut d)
            .await
            .is_err()
    );
    let reviews = api.reviews.load(Ordering::SeqCst);
    assert!(reviews <= before + 1);
    let allowed = 2.0 * f64::from(crate::security::REVIEWS_PER_SECOND)
        + f64::from(crate::security::REVIEWS_PER_SECOND) * started.elapsed().as_secs_f64();
    assert!(
        (reviews as f64) <= allowed + 1.0,
        "{reviews} reviews for 1000 made-up tokens in {:?}",
        started.elapsed()
    );
    assert!(limited >= 800, "only {limited} refused unasked");
}

#[test]
fn authorisation_cache_keys_never_confuse_groups() {
    let principal = |groups: &[&str]| Principal {
        user: "u".into(),
        uid: None,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        credential_id: String::new(),
        method: "ServiceAccountToken",
        limit: None,
    };
    assert_ne!(
        principal(&["a,b"]).cache_key(),
        principal(&["a", "b"]).cache_key()
    );
    let mut newline = principal(&["b"]);
    newline.user = "u\n\na".into();
    assert_ne!(newline.cache_key(), principal(&["a", "b"]).cache_key());
}

#[tokio::test]
async fn keyed_limits_forget_keys_that_are_back_to_a_full_burst() {
    let one = std::num::NonZeroU32::MIN;
    let limits: Limits<u32> = Limits::new(one, one);
    for key in 0..5000 {
        let _ = limits.check(&key);
    }
    assert!(limits.keys() >= 4000, "{}", limits.keys());
    // A key is forgotten once its state is a fresh key's (here two
    // emission intervals after its last call).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for _ in 0..4096 {
        let _ = limits.check(&7);
    }
    assert!(limits.keys() < 100, "{} keys kept", limits.keys());
}

#[tokio::test]
async fn infer_on_a_is_allowed_on_a_only_and_get_models_alone_does_not_grant_it() {
    let api = fake_with_users();
    alice_may_infer_on_a(&api);
    api.grant("system:serviceaccount:payments:bob", "get", "", "a");
    let on_a = guard(&api, "a", None).await;
    let on_b = guard(&api, "b", None).await;
    let mut d = Decision::default();
    let alice = on_a
        .admit(&headers(Some("tok-alice")), None, Action::Infer, &mut d)
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
        .admit(&headers(Some("tok-alice")), None, Action::Infer, &mut d)
        .await;
    assert!(
        matches!(&refused, Err(Refusal::Forbidden(r)) if r.contains("models/infer") && r.contains("\"b\"")),
        "{refused:?}"
    );
    assert_eq!(d.authorization, "Denied");
    // Bob may read model a's metadata but not run it.
    on_a.admit(&headers(Some("tok-bob")), None, Action::Read, &mut d)
        .await
        .unwrap();
    assert!(matches!(
        on_a.admit(&headers(Some("tok-bob")), None, Action::Infer, &mut d)
            .await,
        Err(Refusal::Forbidden(_))
    ));
}

#[tokio::test]
async fn decisions_are_cached_and_a_revocation_holds_within_the_ttl() {
    let api = fake_with_users();
    alice_may_infer_on_a(&api);
    let g = guard(&api, "a", None).await;
    let mut d = Decision::default();
    for _ in 0..50 {
        g.admit(&headers(Some("tok-alice")), None, Action::Infer, &mut d)
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
        g.admit(&headers(Some("tok-alice")), None, Action::Infer, &mut d)
            .await,
        Err(Refusal::Forbidden(_))
    ));
}

#[tokio::test]
async fn an_api_server_failure_or_timeout_is_a_503_and_is_not_cached() {
    let api = fake_with_users();
    alice_may_infer_on_a(&api);
    let g = guard(&api, "a", None).await;
    let mut d = Decision::default();
    api.down.store(true, Ordering::SeqCst);
    assert!(matches!(
        g.admit(&headers(Some("tok-alice")), None, Action::Infer, &mut d)
            .await,
        Err(Refusal::Unavailable(_))
    ));
    assert_eq!(d.authentication, "Unavailable");
    api.down.store(false, Ordering::SeqCst);
    g.admit(&headers(Some("tok-alice")), None, Action::Infer, &mut d)
        .await
        .unwrap();
    // The token is now cached; a slow SubjectAccessReview times out.
    let g2 = guard(&api, "a", None).await;
    g2.authn.authenticate("tok-alice").await.unwrap();
    api.slow.store(true, Ordering::SeqCst);
    let slow = g2
        .admit(&headers(Some("tok-alice")), None, Action::Infer, &mut d)
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
    alice_may_infer_on_a(&api);
    api.grant("system:serviceaccount:payments:bob", "create", "infer", "a");
    let limits = Limits::new(NonZeroU32::new(1).unwrap(), NonZeroU32::new(5).unwrap());
    let g = guard(&api, "a", Some(limits)).await;
    let mut d = Decision::default();
    for _ in 0..5 {
        g.admit(&headers(Some("tok-alice")), None, Action::Infer, &mut d)
            .await
            .unwrap();
    }
    let limited = g
        .admit(&headers(Some("tok-alice")), None, Action::Infer, &mut d)
        .await;
    assert!(
        matches!(limited, Err(Refusal::RateLimited(wait)) if wait > Duration::ZERO && wait <= Duration::from_secs(1)),
        "{limited:?}"
    );
    assert_eq!(d.rate_limit, "Limited");
    g.admit(&headers(Some("tok-bob")), None, Action::Infer, &mut d)
        .await
        .unwrap();
}

/// An ApiKeys set with one client per (name, quota), each with one fresh
/// key: the keys, in order.
fn api_clients(keys: &ApiKeys, clients: &[(&str, Option<i32>)]) -> Vec<String> {
    let (generated, objects): (Vec<_>, Vec<_>) = clients
        .iter()
        .map(|(name, rate)| stub::api_client(name, *rate).unwrap())
        .unzip();
    keys.replace(&objects);
    generated
}

#[tokio::test]
async fn an_api_key_is_a_principal_that_rbac_authorises_like_any_other() {
    let api = fake_with_users();
    api.grant("partner:exchange", "create", "infer", "a");
    let keys = Arc::new(ApiKeys::default());
    let [exchange, bank] =
        <[String; 2]>::try_from(api_clients(&keys, &[("exchange", None), ("bank", None)])).unwrap();
    let mut on_a = guard(&api, "a", None).await;
    on_a.api_keys = Some(Arc::clone(&keys));
    let mut d = Decision::default();
    let principal = on_a
        .admit(&headers(Some(&exchange)), None, Action::Infer, &mut d)
        .await
        .unwrap();
    assert_eq!(principal.user, "partner:exchange");
    assert!(principal.groups.contains(&API_CLIENTS_GROUP.to_owned()));
    assert!(matches!(
        on_a.admit(&headers(Some(&bank)), None, Action::Infer, &mut d)
            .await,
        Err(Refusal::Forbidden(_))
    ));
    let reviews = api.reviews.load(Ordering::SeqCst);
    let mut wrong = exchange.clone();
    wrong.pop();
    wrong.push(if exchange.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        on_a.admit(&headers(Some(&wrong)), None, Action::Infer, &mut d)
            .await,
        Err(Refusal::UnknownApiKey)
    );
    assert_eq!(
        api.reviews.load(Ordering::SeqCst),
        reviews,
        "a key is checked here: no TokenReview is sent"
    );
    // Without ApiClients enabled, a key authenticates no one.
    let plain = guard(&api, "a", None).await;
    assert_eq!(
        plain
            .admit(&headers(Some(&exchange)), None, Action::Infer, &mut d)
            .await,
        Err(Refusal::UnknownApiKey)
    );
}

#[tokio::test]
async fn a_client_quota_holds_within_five_percent_while_another_caller_is_unaffected() {
    const RATE: u32 = 200;
    let api = fake_with_users();
    api.grant("partner:exchange", "create", "infer", "a");
    api.grant("partner:bank", "create", "infer", "a");
    let keys = Arc::new(ApiKeys::default());
    let [exchange, bank] = <[String; 2]>::try_from(api_clients(
        &keys,
        &[("exchange", Some(RATE as i32)), ("bank", None)],
    ))
    .unwrap();
    let mut g = guard(&api, "a", None).await;
    g.api_keys = Some(keys);
    let (exchange, bank) = (headers(Some(&exchange)), headers(Some(&bank)));
    let mut d = Decision::default();
    let started = std::time::Instant::now();
    let (mut allowed, mut others) = (0u32, 0u32);
    // Four times the quota, for two seconds, with a second caller between.
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / (4 * u64::from(RATE))));
    while started.elapsed() < Duration::from_secs(2) {
        tick.tick().await;
        match g.admit(&exchange, None, Action::Infer, &mut d).await {
            Ok(_) => allowed += 1,
            Err(Refusal::RateLimited(_)) => {}
            Err(other) => panic!("{other:?}"),
        }
        g.admit(&bank, None, Action::Infer, &mut d).await.unwrap();
        others += 1;
    }
    let expected = f64::from(RATE) * (1.0 + started.elapsed().as_secs_f64());
    let ratio = f64::from(allowed) / expected;
    assert!(
        (0.95..=1.05).contains(&ratio),
        "{allowed} calls allowed, {expected:.0} expected (burst + rate × time): {ratio:.3}"
    );
    assert!(others > allowed, "the other caller was never limited");
}

// --- The layer in front of the routes ---------------------------------

use crate::http::{ROUTES, handle, handle_admin, handle_api};
use aimass_audit::{AuditLog, Record, Target};

const AUDIT_KEY: &[u8] = b"an audit key of at least 32 bytes!";
const SEAL_SEED: [u8; 32] = [5; 32];

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "aimass-guard-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Lets alice call model fraud.
fn grant_alice(api: &FakeApi) {
    api.grant(
        "system:serviceaccount:payments:alice",
        "create",
        "infer",
        "fraud",
    );
}

async fn guarded(
    api: &Arc<FakeApi>,
    audit: &std::path::Path,
    limits: Option<Limits>,
    fail_open: bool,
) -> Arc<crate::http::Service> {
    guarded_with(guard(api, "fraud", limits).await, audit, fail_open, None)
}

fn guarded_with(
    g: Guard,
    audit: &std::path::Path,
    fail_open: bool,
    payload: Option<aimass_audit::payload::PayloadPolicy>,
) -> Arc<crate::http::Service> {
    let log = AuditLog::open(audit, AUDIT_KEY.to_vec())
        .unwrap()
        .sealed_by(aimass_audit::seal::Sealer::from_seed(&SEAL_SEED).unwrap());
    crate::http::tests::guarded_service(move |metrics| {
        Some(Enforcement {
            guard: Some(g),
            audit: Some(log),
            target: Target {
                namespace: "risk".into(),
                model: "fraud".into(),
                version: "3".into(),
                ..Target::default()
            },
            fail_open,
            payload,
            metrics,
            warm_up_key: Some(AUDIT_KEY.to_vec()),
        })
    })
}

fn path_of(template: &str) -> String {
    template
        .replace("{model}", "fraud")
        .replace("{version}", "3")
}

const INFER: &str =
    r#"{"inputs":[{"name":"features","datatype":"FP32","shape":[1,3],"data":[0.5,0.25,0.75]}]}"#;

async fn send(
    svc: &Arc<crate::http::Service>,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, hyper::HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = if method == "POST" { INFER } else { "" };
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let response = handle_api(
        Arc::clone(svc),
        req,
        "10.1.2.3:40000".parse().unwrap(),
        None,
    )
    .await
    .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn records(path: &std::path::Path) -> Vec<Record> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn the_route_list_is_the_router() {
    // Every listed route is answered by the router (not "no such route").
    let svc = crate::http::tests::guarded_service(|_| None);
    for (method, template) in ROUTES {
        let req = Request::builder()
            .method(*method)
            .uri(path_of(template))
            .body(Full::new(Bytes::from(if *method == "POST" {
                INFER
            } else {
                ""
            })))
            .unwrap();
        let response = handle(Arc::clone(&svc), req).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(
            !String::from_utf8_lossy(&body).contains("is not an Open Inference Protocol route"),
            "{method} {template} is listed but not routed"
        );
    }
}

#[tokio::test]
async fn probes_and_metrics_answer_on_the_admin_port_without_credentials_and_nothing_else_does() {
    let api = fake_with_users();
    let dir = scratch("admin");
    let svc = guarded(&api, &dir.join("audit.jsonl"), None, false).await;
    let admin = |path: &str| {
        let req = Request::builder()
            .uri(path)
            .body(Full::new(Bytes::new()))
            .unwrap();
        handle_admin(Arc::clone(&svc), req)
    };
    for path in ["/v2/health/live", "/v2/health/ready", "/metrics"] {
        let response = admin(path).await.unwrap();
        assert_eq!(response.status(), 200, "{path} on the admin port");
    }
    for path in ["/v2", "/v2/models/fraud", "/v2/models/fraud/infer"] {
        let response = admin(path).await.unwrap();
        assert_eq!(response.status(), 404, "{path} on the admin port");
    }
    // A warm-up runs zeros through the model, without caller credentials
    // but with the operator's proof, made with the audit key; anyone else
    // (another pod reaching the admin port, a replayed old proof) gets 401.
    let warm_up = |proof: Option<String>| {
        let mut req = Request::builder().method("POST").uri("/warm-up");
        if let Some(proof) = proof {
            req = req.header(aimass_audit::key_handover::WARM_UP_HEADER, proof);
        }
        handle_admin(Arc::clone(&svc), req.body(Full::new(Bytes::new())).unwrap())
    };
    let now = jiff::Timestamp::now().as_second();
    for refused in [
        None,
        Some("12.ab".to_owned()),
        Some(aimass_audit::key_handover::warm_up_proof(
            AUDIT_KEY,
            now - 600,
        )),
        Some(aimass_audit::key_handover::warm_up_proof(&[9; 32], now)),
    ] {
        let response = warm_up(refused.clone()).await.unwrap();
        assert_eq!(response.status(), 401, "{refused:?}");
    }
    let response = warm_up(Some(aimass_audit::key_handover::warm_up_proof(
        AUDIT_KEY, now,
    )))
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["outputs"][0]["name"], "score", "{answer}");
    assert_eq!(admin("/warm-up").await.unwrap().status(), 405);
    // On the API port they need credentials like every other route.
    let (status, _, _) = send(&svc, "GET", "/v2/health/ready", None).await;
    assert_eq!(status, 401);
    // The chain's tail: the one call that reached the API port
    // (the 401) is recorded; admin calls are not.
    let response = admin("/audit/checkpoint").await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: aimass_audit::seal::CheckpointAnswer = serde_json::from_slice(&body).unwrap();
    let tail = answer.checkpoint;
    assert_eq!(tail.sequence, 1);
    aimass_audit::verify(&dir.join("audit.jsonl"), AUDIT_KEY, Some(&tail)).unwrap();
    // Sealed: the same tail, for this model, signed with the server's key.
    let seal = answer.seal.expect("a signing key seals the checkpoint");
    assert_eq!((seal.sequence, &seal.mac), (tail.sequence, &tail.mac));
    assert_eq!(
        (seal.namespace.as_str(), seal.model.as_str()),
        ("risk", "fraud")
    );
    let verifying_key = aimass_audit::seal::Sealer::from_seed(&SEAL_SEED)
        .unwrap()
        .verifying_key();
    aimass_audit::seal::verify(&seal, &verifying_key).unwrap();
}

#[tokio::test]
async fn a_refused_call_keeps_its_connection_unless_its_body_is_too_large_to_drop() {
    let api = fake_with_users();
    let dir = scratch("keep-alive");
    let svc = guarded(&api, &dir.join("audit.jsonl"), None, false).await;
    let refused = |body: Vec<u8>| {
        let req = Request::builder()
            .method("POST")
            .uri("/v2/models/fraud/infer")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        handle_api(
            Arc::clone(&svc),
            req,
            "10.1.2.3:40000".parse().unwrap(),
            None,
        )
    };
    let small = refused(INFER.as_bytes().to_vec()).await.unwrap();
    assert_eq!(small.status(), 401);
    assert!(small.headers().get("connection").is_none(), "kept alive");
    let large = refused(vec![b' '; 100 * 1024]).await.unwrap();
    assert_eq!(large.status(), 401);
    assert_eq!(large.headers().get("connection").unwrap(), "close");
}

#[tokio::test]
async fn every_route_answers_401_without_credentials_and_every_call_is_recorded() {
    let api = fake_with_users();
    let dir = scratch("401");
    let audit = dir.join("audit.jsonl");
    let svc = guarded(&api, &audit, None, false).await;
    let mut paths: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, t)| ((*m).to_owned(), path_of(t)))
        .collect();
    paths.push(("GET".into(), "/no/such/route".into()));
    paths.push(("DELETE".into(), "/v2/models/fraud".into()));
    for (method, path) in &paths {
        let (status, headers, body) = send(&svc, method, path, None).await;
        assert_eq!(status, 401, "{method} {path}: {body}");
        assert!(headers.contains_key("www-authenticate"));
        let (status, _, _) = send(&svc, method, path, Some("forged-token")).await;
        assert_eq!(status, 401, "{method} {path} with a forged token");
    }
    let recorded = records(&audit);
    assert_eq!(recorded.len(), paths.len() * 2);
    assert!(recorded.iter().all(|r| r.status == 401
        && r.decision.authentication == "Refused"
        && r.source == "10.1.2.3:40000"));
    assert!(
        !std::fs::read_to_string(&audit)
            .unwrap()
            .contains("forged-token"),
        "a token reached the audit trail"
    );
}

#[tokio::test]
async fn an_invoker_is_served_and_recorded_a_viewer_is_not_and_secrets_stay_out_of_the_trail() {
    let api = fake_with_users();
    grant_alice(&api);
    api.grant("system:serviceaccount:payments:bob", "get", "", "fraud");
    let dir = scratch("rbac");
    let audit = dir.join("audit.jsonl");
    let svc = guarded(&api, &audit, None, false).await;
    let (status, _, body) = send(&svc, "POST", "/v2/models/fraud/infer", Some("tok-alice")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = send(&svc, "POST", "/v2/models/fraud/infer", Some("tok-bob")).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("models/infer"));
    let (status, _, _) = send(&svc, "GET", "/v2/models/fraud", Some("tok-bob")).await;
    assert_eq!(status, 200, "get models lets bob read the metadata");
    // Probes and metrics are not on the API port, even with credentials.
    let (status, _, _) = send(&svc, "GET", "/metrics", Some("tok-bob")).await;
    assert_eq!(status, 404);
    let recorded = records(&audit);
    let served = &recorded[0];
    assert_eq!(served.actor.user, "system:serviceaccount:payments:alice");
    assert_eq!(
        (served.decision.authorization.as_str(), served.status),
        ("Allowed", 200)
    );
    assert_eq!(served.inputs[0].name, "features");
    assert_eq!(served.inputs[0].shape, vec![1, 3]);
    assert_eq!(
        served
            .outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>(),
        ["score", "label"]
    );
    assert_eq!(
        (
            served.target.namespace.as_str(),
            served.target.model.as_str()
        ),
        ("risk", "fraud")
    );
    assert_eq!(
        (
            recorded[1].decision.authorization.as_str(),
            recorded[1].status
        ),
        ("Denied", 403)
    );
    // A refused caller is named: auditors ask who was refused.
    assert_eq!(recorded[1].actor.user, "system:serviceaccount:payments:bob");
    let text = std::fs::read_to_string(&audit).unwrap();
    for secret in ["tok-alice", "tok-bob"] {
        assert!(!text.contains(secret), "{secret:?} is in the audit trail");
    }
    assert!(
        recorded
            .iter()
            .all(|r| r.inputs.iter().all(|i| i.values.is_none())),
        "no input values without a payload policy"
    );
    aimass_audit::verify(&audit, AUDIT_KEY, None).unwrap();
    // Both inference calls are counted, the refused one too, under their
    // callers; bob's read of the metadata is not an inference call.
    let text = svc.metrics.render().unwrap();
    for (metric, label, count) in [
        ("aimass_inference_requests_total{", r#"code="200""#, 1),
        ("aimass_inference_requests_total{", r#"code="403""#, 1),
        (
            "aimass_inference_caller_requests_total{",
            r#"principal="system:serviceaccount:payments:alice""#,
            1,
        ),
        (
            "aimass_inference_caller_requests_total{",
            r#"principal="system:serviceaccount:payments:bob""#,
            1,
        ),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(metric) && l.contains(label))
            .unwrap_or_else(|| panic!("{metric}{label} not in {text}"));
        assert!(line.ends_with(&format!(" {count}")), "{line}");
    }
}

#[tokio::test]
async fn an_api_server_outage_is_a_503_without_running_the_model() {
    let api = fake_with_users();
    grant_alice(&api);
    let dir = scratch("503");
    let svc = guarded(&api, &dir.join("audit.jsonl"), None, false).await;
    api.down.store(true, Ordering::SeqCst);
    let (status, _, body) = send(&svc, "POST", "/v2/models/fraud/infer", Some("tok-alice")).await;
    assert_eq!(status, 503, "{body}");
    let metrics = svc.metrics.render().unwrap();
    assert!(
        !metrics.contains("aimass_inference_batch_size_count{model=\"fraud\",version=\"3\"} 1"),
        "the model ran"
    );
}

#[tokio::test]
async fn a_caller_over_quota_gets_429_with_retry_after_and_it_is_recorded() {
    let api = fake_with_users();
    grant_alice(&api);
    api.grant(
        "system:serviceaccount:payments:bob",
        "create",
        "infer",
        "fraud",
    );
    let dir = scratch("429");
    let audit = dir.join("audit.jsonl");
    let limits = Limits::new(NonZeroU32::new(2).unwrap(), NonZeroU32::new(3).unwrap());
    let svc = guarded(&api, &audit, Some(limits), false).await;
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(send(&svc, "POST", "/v2/models/fraud/infer", Some("tok-alice")).await);
    }
    assert_eq!(
        codes.iter().map(|c| c.0).collect::<Vec<_>>(),
        [200, 200, 200, 429, 429]
    );
    assert_eq!(codes[3].1.get("retry-after").unwrap(), "1");
    assert_eq!(
        send(&svc, "POST", "/v2/models/fraud/infer", Some("tok-bob"))
            .await
            .0,
        200
    );
    let recorded = records(&audit);
    assert_eq!(
        recorded
            .iter()
            .filter(|r| r.decision.rate_limit == "Limited")
            .count(),
        2
    );
}

#[tokio::test]
async fn a_flood_from_one_address_is_refused_before_any_review() {
    let api = fake_with_users();
    let mut g = guard(&api, "fraud", None).await;
    g.per_address = Some(Limits::new(
        NonZeroU32::new(2).unwrap(),
        NonZeroU32::new(2).unwrap(),
    ));
    let dir = scratch("per-address");
    let audit = dir.join("audit.jsonl");
    let svc = guarded_with(g, &audit, false, None);
    let mut codes = Vec::new();
    for i in 0..5 {
        let token = format!("forged-{i}");
        codes.push(
            send(&svc, "POST", "/v2/models/fraud/infer", Some(&token))
                .await
                .0,
        );
    }
    assert_eq!(codes, [401, 401, 429, 429, 429]);
    assert_eq!(
        api.reviews.load(Ordering::SeqCst),
        2,
        "the refused calls cost no TokenReview"
    );
    let recorded = records(&audit);
    assert_eq!(recorded.len(), 5, "refused calls are audited too");
    assert!(
        recorded[2..]
            .iter()
            .all(|r| r.decision.rate_limit == "LimitedForAddress" && r.status == 429)
    );
}

#[tokio::test]
async fn a_payload_policy_puts_only_what_it_names_into_the_trail() {
    let api = fake_with_users();
    grant_alice(&api);
    let dir = scratch("payload");
    let audit = dir.join("audit.jsonl");
    let policy = aimass_audit::payload::PayloadPolicy::parse(
        r#"[{"input": "features", "policy": "Bucket", "buckets": [0.3, 0.6]}]"#,
        AUDIT_KEY.to_vec(),
    )
    .unwrap();
    let svc = guarded_with(
        guard(&api, "fraud", None).await,
        &audit,
        false,
        Some(policy),
    );
    let (status, _, body) = send(&svc, "POST", "/v2/models/fraud/infer", Some("tok-alice")).await;
    assert_eq!(status, 200, "{body}");
    let recorded = records(&audit);
    assert_eq!(
        recorded[0].inputs[0].values.as_deref(),
        Some(&[json!("[0.3,0.6)"), json!("<0.3"), json!(">=0.6")][..])
    );
    assert!(recorded[0].outputs.iter().all(|o| o.values.is_none()));
    aimass_audit::verify(&audit, AUDIT_KEY, None).unwrap();
}

#[tokio::test]
async fn a_failed_audit_write_refuses_the_call_under_fail_closed_and_counts_under_fail_open() {
    let api = fake_with_users();
    grant_alice(&api);
    // Every write to /dev/full fails with ENOSPC.
    let full = std::path::Path::new("/dev/full");
    let closed = guarded(&api, full, None, false).await;
    let (status, _, body) =
        send(&closed, "POST", "/v2/models/fraud/infer", Some("tok-alice")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("audited"));
    let open = guarded(&api, full, None, true).await;
    assert_eq!(
        send(&open, "POST", "/v2/models/fraud/infer", Some("tok-alice"))
            .await
            .0,
        200
    );
    assert_eq!(open.metrics.audit_failures.get(), 1);
    // The sealed checkpoint tells the operator, which raises a condition.
    let enforcement = open.enforcement.as_ref().unwrap();
    let answer = enforcement
        .audit
        .as_ref()
        .unwrap()
        .sealed_checkpoint(&enforcement.target);
    assert_eq!(answer.write_failures, 1);
    assert_eq!(answer.seal.unwrap().write_failures, 1);
}

#[tokio::test]
async fn ten_thousand_mixed_calls_make_ten_thousand_chained_records() {
    let api = fake_with_users();
    grant_alice(&api);
    let dir = scratch("10k");
    let audit = dir.join("audit.jsonl");
    let svc = guarded(&api, &audit, None, false).await;
    let mut calls = Vec::new();
    for i in 0..10_000 {
        let svc = Arc::clone(&svc);
        calls.push(tokio::spawn(async move {
            let (method, path, token) = match i % 4 {
                0 => ("POST", "/v2/models/fraud/infer", Some("tok-alice")),
                1 => ("POST", "/v2/models/fraud/infer", Some("tok-bob")),
                2 => ("GET", "/v2/models/fraud", None),
                _ => ("GET", "/v2/models/fraud/ready", Some("nope")),
            };
            send(&svc, method, path, token).await.0
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
    let recorded = records(&audit);
    assert_eq!(recorded.len(), 10_000);
    let ids: HashSet<_> = recorded.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 10_000);
    assert!(
        recorded
            .iter()
            .enumerate()
            .all(|(i, r)| r.sequence == i as u64 + 1)
    );
    assert_eq!(
        aimass_audit::verify(&audit, AUDIT_KEY, None)
            .unwrap()
            .sequence,
        10_000
    );
}
