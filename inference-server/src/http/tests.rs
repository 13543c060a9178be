//! Handler tests: every route and every error status, against a fake
//! backend, without sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

use crate::batching::{Batcher, BatchingConfig};
use crate::http::{FaultInjection, HEADER_LENGTH, Limits, Service, handle};
use crate::metrics::Metrics;
use aimass_engine::tensor::{DataType, Tensor, TensorData};
use aimass_engine::{Backend, EngineError, Signature, TensorSpec};

/// Scores = sum of each row's features; fails on a row summing to 13.
struct Summer {
    signature: Signature,
    delay: Duration,
}

impl Backend for Summer {
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, EngineError> {
        std::thread::sleep(self.delay);
        let x = &inputs[0];
        let TensorData::Fp32(v) = &x.data else {
            unreachable!()
        };
        let sums: Vec<f32> = v.chunks(x.shape[1]).map(|r| r.iter().sum()).collect();
        if sums.contains(&13.0) {
            return Err(EngineError::Run("unlucky row".into()));
        }
        let labels: Vec<i64> = sums.iter().map(|s| i64::from(*s > 1.0)).collect();
        Ok(vec![
            Tensor::new(vec![sums.len(), 1], TensorData::Fp32(sums)).unwrap(),
            Tensor::new(vec![labels.len()], TensorData::Int64(labels)).unwrap(),
        ])
    }
    fn batch_dependent(&self) -> bool {
        false
    }
}

fn service(delay: Duration, queue: usize, timeout: Duration, ready: bool) -> Arc<Service> {
    service_with_faults(delay, queue, timeout, ready, None)
}

fn service_with_faults(
    delay: Duration,
    queue: usize,
    timeout: Duration,
    ready: bool,
    faults: Option<u64>,
) -> Arc<Service> {
    build(delay, queue, timeout, ready, faults, |_| None)
}

/// The fraud service (features `[-1, 3]` → `score`, `label`) behind the
/// security layer `enforcement` makes from its metrics, probes on their own
/// port.
pub(crate) fn guarded_service(
    enforcement: impl FnOnce(Arc<Metrics>) -> Option<crate::security::Enforcement>,
) -> Arc<Service> {
    build(
        Duration::ZERO,
        64,
        Duration::from_secs(5),
        true,
        None,
        enforcement,
    )
}

fn build(
    delay: Duration,
    queue: usize,
    timeout: Duration,
    ready: bool,
    faults: Option<u64>,
    enforcement: impl FnOnce(Arc<Metrics>) -> Option<crate::security::Enforcement>,
) -> Arc<Service> {
    let spec = |name: &str, datatype, shape: Vec<i64>| TensorSpec {
        name: name.into(),
        datatype,
        shape,
    };
    let backend: Arc<dyn Backend> = Arc::new(Summer {
        signature: Signature {
            inputs: vec![spec("features", DataType::Fp32, vec![-1, 3])],
            outputs: vec![
                spec("score", DataType::Fp32, vec![-1, 1]),
                spec("label", DataType::Int64, vec![-1]),
            ],
            on_request: 0,
        },
        delay,
    });
    let metrics = Arc::new(Metrics::new("fraud", "3").unwrap());
    let enforcement = enforcement(Arc::clone(&metrics));
    let admin_separate = enforcement.is_some();
    let batcher = Batcher::start(
        Arc::clone(&backend),
        BatchingConfig {
            max_batch_size: 8,
            max_queue_delay: Duration::from_micros(200),
            queue_capacity: queue,
            workers: 1,
            inline_below: Duration::from_micros(50),
        },
        Arc::clone(&metrics),
    );
    Arc::new(Service {
        model_name: "fraud".into(),
        model_version: "3".into(),
        backend,
        batcher,
        metrics,
        ready: AtomicBool::new(ready),
        draining: AtomicBool::new(false),
        limits: Limits {
            max_request_bytes: 4096,
            request_timeout: timeout,
            body_read_timeout: Duration::from_secs(10),
            connections: crate::connections::Limits {
                max_connections: 64,
                header_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(75),
                max_age: Duration::from_secs(600),
            },
        },
        bodies: crate::http::BodyBudget::new(16 * 1024),
        faults: FaultInjection::every(faults),
        enforcement,
        admin_separate,
        tls: None,
        drift: None,
        shadow: None,
    })
}

fn default_service() -> Arc<Service> {
    service(Duration::ZERO, 16, Duration::from_secs(5), true)
}

async fn call(
    svc: &Arc<Service>,
    method: Method,
    path: &str,
    body: impl Into<Bytes>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(body.into()))
        .unwrap();
    raw(svc, request).await
}

async fn raw(svc: &Arc<Service>, request: Request<Full<Bytes>>) -> (StatusCode, Value) {
    let response = handle(Arc::clone(svc), request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body)
            .unwrap_or(Value::String(String::from_utf8_lossy(&body).into())),
    )
}

/// Sends a valid one-row inference request in the background.
fn spawn_infer(svc: &Arc<Service>) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let svc = Arc::clone(svc);
    tokio::spawn(async move {
        let body = infer_body(json!([1, 2, 3]), json!([1, 3]));
        call(&svc, Method::POST, "/v2/models/fraud/infer", body).await
    })
}

fn infer_body(data: Value, shape: Value) -> String {
    json!({"id": "req-1", "inputs": [{"name": "features", "shape": shape, "datatype": "FP32", "data": data}]}).to_string()
}

#[tokio::test]
async fn health_metadata_and_readiness() {
    let svc = default_service();
    assert_eq!(
        call(&svc, Method::GET, "/v2/health/live", "").await,
        (StatusCode::OK, json!({"live": true}))
    );
    assert_eq!(
        call(&svc, Method::GET, "/v2/health/ready", "").await,
        (StatusCode::OK, json!({"ready": true}))
    );
    let (status, server) = call(&svc, Method::GET, "/v2", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        server["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("binary_tensor_data"))
    );
    for path in ["/v2/models/fraud", "/v2/models/fraud/versions/3"] {
        let (status, meta) = call(&svc, Method::GET, path, "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            meta["inputs"],
            json!([{"name": "features", "datatype": "FP32", "shape": [-1, 3]}])
        );
        assert_eq!(
            meta["outputs"][1],
            json!({"name": "label", "datatype": "INT64", "shape": [-1]})
        );
        assert_eq!(meta["versions"], json!(["3"]));
    }
    let (status, ready) = call(&svc, Method::GET, "/v2/models/fraud/versions/3/ready", "").await;
    assert_eq!(
        (status, ready["ready"].clone()),
        (StatusCode::OK, json!(true))
    );

    let loading = service(Duration::ZERO, 16, Duration::from_secs(5), false);
    assert_eq!(
        call(&loading, Method::GET, "/v2/health/ready", "").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        call(&loading, Method::GET, "/v2/models/fraud/ready", "")
            .await
            .0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, body) = call(
        &loading,
        Method::POST,
        "/v2/models/fraud/infer",
        infer_body(json!([1, 2, 3]), json!([1, 3])),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "the model is not ready");
}

#[tokio::test]
async fn infer_with_and_without_version_selecting_outputs() {
    let svc = default_service();
    for path in [
        "/v2/models/fraud/infer",
        "/v2/models/fraud/versions/3/infer",
    ] {
        let (status, body) = call(
            &svc,
            Method::POST,
            path,
            infer_body(json!([[1, 2, 3], [0, 0, 0.5]]), json!([2, 3])),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], "req-1");
        assert_eq!(body["model_version"], "3");
        assert_eq!(
            body["outputs"][0],
            json!({"name": "score", "shape": [2, 1], "datatype": "FP32", "data": [6.0, 0.5]})
        );
        assert_eq!(body["outputs"][1]["data"], json!([1, 0]));
    }
    // Clients that repeat the model in the body (KServe's does) are served.
    let named = json!({"model_name": "fraud", "model_version": "3", "id": "kserve-1",
                       "inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]});
    let (status, body) = call(
        &svc,
        Method::POST,
        "/v2/models/fraud/infer",
        named.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outputs"][0]["data"], json!([6.0]));
    let only_label = json!({"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 1, 1]}],
                            "outputs": [{"name": "label"}], "parameters": {"trace": "abc"}});
    let (status, body) = call(
        &svc,
        Method::POST,
        "/v2/models/fraud/infer",
        only_label.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(body["outputs"][0]["name"], "label");
    assert_eq!(
        body["parameters"]["trace"], "abc",
        "parameters pass through"
    );
}

#[tokio::test]
async fn binary_tensor_data_in_and_out() {
    let svc = default_service();
    let header = json!({"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}}],
                        "outputs": [{"name": "score", "parameters": {"binary_data": true}}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    for x in [1.0f32, 2.0, 4.0] {
        body.extend_from_slice(&x.to_le_bytes());
    }
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v2/models/fraud/infer")
        .header(HEADER_LENGTH, header.len())
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = handle(Arc::clone(&svc), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let json_len: usize = response.headers()[HEADER_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json: Value = serde_json::from_slice(&bytes[..json_len]).unwrap();
    assert_eq!(json["outputs"][0]["parameters"]["binary_data_size"], 4);
    assert_eq!(&bytes[json_len..], &7.0f32.to_le_bytes());
}

#[tokio::test]
async fn client_mistakes_get_4xx_with_a_reason() {
    let svc = default_service();
    let cases = [
        (Method::POST, "/v2/models/fraud/infer", "{not json".to_owned(), StatusCode::BAD_REQUEST, "invalid JSON"),
        (Method::POST, "/v2/models/fraud/infer", "{}".to_owned(), StatusCode::BAD_REQUEST, "missing field `inputs`"),
        (Method::POST, "/v2/models/fraud/infer", infer_body(json!([1, 2]), json!([1, 3])), StatusCode::BAD_REQUEST, "holds 3 elements, but 2 were sent"),
        (Method::POST, "/v2/models/fraud/infer", infer_body(json!([1, "x", 3]), json!([1, 3])), StatusCode::BAD_REQUEST, "not a number"),
        (Method::POST, "/v2/models/fraud/infer", infer_body(json!([1, 2, 3, 4]), json!([1, 4])), StatusCode::BAD_REQUEST, "but the model expects [-1, 3]"),
        (Method::POST, "/v2/models/fraud/infer", json!({"inputs": [{"name": "features", "shape": [1, 3], "datatype": "INT64", "data": [1, 2, 3]}]}).to_string(), StatusCode::BAD_REQUEST, "has datatype INT64"),
        (Method::POST, "/v2/models/fraud/infer", json!({"inputs": []}).to_string(), StatusCode::BAD_REQUEST, "missing input \"features\""),
        (Method::POST, "/v2/models/fraud/infer", json!({"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}], "outputs": [{"name": "risk"}]}).to_string(), StatusCode::BAD_REQUEST, "unknown output \"risk\""),
        (Method::POST, "/v2/models/fraud/infer", json!({"model_name": "credit", "inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}).to_string(), StatusCode::BAD_REQUEST, "model_name \"credit\" in the body does not match the model this request was sent to (\"fraud\")"),
        (Method::POST, "/v2/models/fraud/infer", json!({"model_name": "fraud", "model_version": "2", "inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}).to_string(), StatusCode::BAD_REQUEST, "model_version \"2\" in the body does not match the model this request was sent to (\"3\")"),
        (Method::POST, "/v2/models/credit/infer", infer_body(json!([1, 2, 3]), json!([1, 3])), StatusCode::NOT_FOUND, "unknown model \"credit\""),
        (Method::POST, "/v2/models/fraud/versions/2/infer", infer_body(json!([1, 2, 3]), json!([1, 3])), StatusCode::NOT_FOUND, "unknown version \"2\""),
        (Method::GET, "/v2/models/fraud/infer", String::new(), StatusCode::METHOD_NOT_ALLOWED, "method GET"),
        (Method::POST, "/v2/health/live", String::new(), StatusCode::METHOD_NOT_ALLOWED, "method POST"),
        (Method::GET, "/v1/models/fraud:predict", String::new(), StatusCode::NOT_FOUND, "not an Open Inference Protocol route"),
        (Method::POST, "/v2/models/fraud/infer", format!("{{\"inputs\": [], \"pad\": \"{}\"}}", "x".repeat(5000)), StatusCode::PAYLOAD_TOO_LARGE, "exceeds 4096 bytes"),
    ];
    for (method, path, body, status, message) in cases {
        let (got, answer) = call(&svc, method, path, body).await;
        assert_eq!(got, status, "{path}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message),
            "{path}: {error:?} lacks {message:?}"
        );
    }
    let text = svc.metrics.render().unwrap();
    let answered = sample(&text, "aimass_inference_requests_total", &["code=\"400\""]);
    assert_eq!(answered, Some(10.0), "{text}");
}

#[tokio::test]
async fn a_failing_model_run_is_a_500_and_the_server_keeps_serving() {
    let svc = default_service();
    let (status, body) = call(
        &svc,
        Method::POST,
        "/v2/models/fraud/infer",
        infer_body(json!([6, 7, 0]), json!([1, 3])),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["error"].as_str().unwrap().contains("unlucky row"));
    let (status, _) = call(
        &svc,
        Method::POST,
        "/v2/models/fraud/infer",
        infer_body(json!([1, 2, 3]), json!([1, 3])),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn slow_models_time_out_with_504_and_a_full_queue_answers_429_at_once() {
    let slow = service(
        Duration::from_millis(400),
        1,
        Duration::from_millis(100),
        true,
    );
    let (status, body) = call(
        &slow,
        Method::POST,
        "/v2/models/fraud/infer",
        infer_body(json!([1, 2, 3]), json!([1, 3])),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");

    let busy = service(Duration::from_millis(300), 1, Duration::from_secs(5), true);
    let first = spawn_infer(&busy);
    // Wait until the worker runs the first request; then one more fills the queue.
    while busy.metrics.batch_rows.get_sample_count() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = spawn_infer(&busy);
    while busy.metrics.queue_depth.get() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = std::time::Instant::now();
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v2/models/fraud/infer")
        .body(Full::new(Bytes::from(infer_body(
            json!([1, 2, 3]),
            json!([1, 3]),
        ))))
        .unwrap();
    let response = handle(Arc::clone(&busy), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "429 must not wait for the queue"
    );
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    assert_eq!(second.await.unwrap().0, StatusCode::OK);
}

#[tokio::test]
async fn metrics_report_the_contract_names() {
    let svc = default_service();
    call(
        &svc,
        Method::POST,
        "/v2/models/fraud/infer",
        infer_body(json!([1, 2, 3]), json!([1, 3])),
    )
    .await;
    let (status, text) = call(&svc, Method::GET, "/metrics", "").await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap().to_owned();
    let count = |name: &str, labels: &[&str]| sample(&text, name, labels);
    assert_eq!(
        count(
            "aimass_inference_requests_total",
            &["code=\"200\"", "model=\"fraud\"", "version=\"3\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        count("aimass_inference_request_duration_seconds_count", &[]),
        Some(1.0)
    );
    assert_eq!(
        count("aimass_inference_queue_duration_seconds_count", &[]),
        Some(1.0)
    );
    assert_eq!(
        count("aimass_inference_compute_duration_seconds_count", &[]),
        Some(1.0)
    );
    assert_eq!(count("aimass_inference_batch_size_count", &[]), Some(1.0));
    assert_eq!(count("aimass_inference_in_flight_requests", &[]), Some(0.0));
    assert_eq!(count("aimass_inference_queue_depth", &[]), Some(0.0));
    for name in [
        "aimass_inference_model_load_duration_seconds",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(count(name, &[]).is_some(), "missing {name} in {text}");
    }
    assert!(svc.ready.load(Ordering::Acquire));
}

/// POSTs an inference request over a real connection; its status and
/// whether the server asked to close the connection.
async fn post_over_tcp(addr: std::net::SocketAddr) -> Result<(StatusCode, bool), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = Request::post("/v2/models/fraud/infer")
        .header(hyper::header::HOST, "localhost")
        .body(Full::new(Bytes::from(infer_body(
            json!([1, 2, 3]),
            json!([1, 3]),
        ))))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let closes = response
        .headers()
        .get(hyper::header::CONNECTION)
        .is_some_and(|v| v == "close");
    Ok((response.status(), closes))
}

#[tokio::test]
async fn shutdown_turns_unready_and_drains_answering_late_connections_once() {
    let svc = service(
        Duration::from_millis(300),
        16,
        Duration::from_secs(5),
        false,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::serve(
        Arc::clone(&svc),
        crate::server::Listeners::rest(listener),
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(5),
    ));
    while !svc.ready.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let in_hand = tokio::spawn(post_over_tcp(addr));
    while svc.metrics.in_flight.get() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(()).unwrap();
    while svc.is_ready() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The request in hand (held by the 300 ms queue delay) keeps the drain
    // open; a client that a proxy still routes here is answered, and told
    // to close.
    assert_eq!(
        post_over_tcp(addr).await,
        Ok((StatusCode::OK, true)),
        "a connection made while draining is answered once"
    );
    assert_eq!(
        in_hand.await.unwrap(),
        Ok((StatusCode::OK, true)),
        "the request in hand finished"
    );
    assert_eq!(
        call(&svc, Method::GET, "/v2/health/ready", "").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        post_over_tcp(addr).await.is_err(),
        "no new connections once drained"
    );
}

/// The value of the first sample of `name` whose labels include `labels`
/// (label order in the text format is not fixed).
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|l| rest.contains(l)))
                .then(|| value.parse().ok())?
        })
}

#[tokio::test]
async fn injected_faults_fail_exactly_every_nth_inference_with_500() {
    let svc = service_with_faults(Duration::ZERO, 16, Duration::from_secs(5), true, Some(3));
    let mut codes = Vec::new();
    for _ in 0..6 {
        let body = infer_body(json!([1, 2, 3]), json!([1, 3]));
        let (status, answer) = call(&svc, Method::POST, "/v2/models/fraud/infer", body).await;
        if status != StatusCode::OK {
            assert!(
                answer["error"].as_str().unwrap().contains("fault injected"),
                "{answer}"
            );
        }
        codes.push(status.as_u16());
    }
    assert_eq!(codes, [200, 200, 500, 200, 200, 500]);
}

#[tokio::test]
async fn injected_latency_holds_every_inference() {
    let mut svc = service(Duration::ZERO, 16, Duration::from_secs(5), true);
    Arc::get_mut(&mut svc).unwrap().faults =
        FaultInjection::every(None).with_delay(Duration::from_millis(100));
    let started = tokio::time::Instant::now();
    let body = infer_body(json!([1, 2, 3]), json!([1, 3]));
    let (status, _) = call(&svc, Method::POST, "/v2/models/fraud/infer", body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(100));
    let faults = FaultInjection::every(None).armed(Duration::from_millis(100));
    assert_eq!(faults.delay(), Duration::ZERO, "armed, not on");
    assert!(faults.toggle());
    assert_eq!(faults.delay(), Duration::from_millis(100));
    assert!(!faults.toggle());
    assert_eq!(faults.delay(), Duration::ZERO);
}

#[test]
fn an_audit_record_keeps_a_bounded_prefix_of_the_path() {
    let long = format!("/v2/models/{}", "é".repeat(60 * 1024));
    let recorded = super::recorded_operation(&hyper::Method::GET, &long);
    assert!(
        recorded.chars().count() <= 4 + 128 + 1,
        "{}",
        recorded.len()
    );
    assert!(recorded.starts_with("GET /v2/models/éé") && recorded.ends_with('…'));
    assert_eq!(
        super::recorded_operation(&hyper::Method::POST, "/v2/models/m/infer"),
        "POST /v2/models/m/infer"
    );
}

/// The fraud service counting drift against a baseline of its three
/// features (`f0` numbers from 0 to 10, `f1` codes 2 and 3, `f2` numbers)
/// and its score, with `rules`.
fn drifting_service(rules: &[&str]) -> Arc<Service> {
    let mut svc = default_service();
    let baseline: aimass_drift::Baseline = serde_json::from_value(json!({
        "rows": 100,
        "features": [
            {"name": "f0", "tensor": "features", "index": 0, "edges": [1.5, 2.5], "proportions": [0.5, 0.3, 0.2], "min": 0.0, "max": 10.0},
            {"name": "f1", "tensor": "features", "index": 1, "categories": ["2", "3"], "proportions": [0.6, 0.4, 0.0]},
            {"name": "f2", "tensor": "features", "index": 2, "edges": [0.0], "proportions": [0.5, 0.5]}
        ],
        "scores": [{"name": "score", "tensor": "score", "index": 0, "edges": [5.0], "proportions": [0.3, 0.7]}]
    }))
    .unwrap();
    let rules: Vec<crate::drift::FeatureRule> = rules.iter().map(|r| r.parse().unwrap()).collect();
    let service = Arc::get_mut(&mut svc).unwrap();
    service.drift = Some(
        crate::drift::Drift::new(
            baseline,
            "digest".into(),
            service.backend.signature(),
            &rules,
            service.metrics.out_of_contract.clone(),
        )
        .unwrap(),
    );
    svc
}

/// The value of `aimass_input_out_of_contract_total` for a feature and rule.
fn out_of_contract(svc: &Service, feature: &str, action: &str) -> Option<u64> {
    let text = svc.metrics.render().unwrap();
    let (input, action) = (
        format!("input=\"{feature}\""),
        format!("action=\"{action}\""),
    );
    text.lines()
        .filter(|l| l.starts_with("aimass_input_out_of_contract_total{"))
        .find(|l| l.contains(&input) && l.contains(&action))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn drift_counts(svc: &Arc<Service>) -> Value {
    let request = Request::builder()
        .uri("/drift")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = crate::http::handle_admin(Arc::clone(svc), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

#[tokio::test]
async fn rows_are_counted_into_the_baseline_bins_and_the_warm_up_is_not() {
    let svc = drifting_service(&["f1=Flag", "amount=Reject"]);
    let body = json!({"inputs": [{"name": "features", "shape": [3, 3], "datatype": "FP32", "data": [1, 2, 3, 2, 3, -1, 9, 7, 1]}]}).to_string();
    assert_eq!(
        call(&svc, Method::POST, "/v2/models/fraud/infer", body)
            .await
            .0,
        StatusCode::OK
    );
    let warm_up = Request::builder()
        .method(Method::POST)
        .uri("/warm-up")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = crate::http::handle_admin(Arc::clone(&svc), warm_up)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let counts = drift_counts(&svc).await;
    assert_eq!(counts["rows"], 3, "{counts}");
    assert_eq!(counts["baselineSha256"], "digest");
    // f0: 1 → bin 0, 2 → bin 1, 9 → bin 2.
    assert_eq!(counts["features"][0]["counts"], json!([1, 1, 1]));
    // f1: 2, 3 known; 7 is another value, outside, flagged.
    assert_eq!(counts["features"][1]["counts"], json!([1, 1, 1]));
    assert_eq!(counts["features"][1]["outside"], 1);
    assert_eq!(counts["features"][2]["counts"], json!([1, 2]));
    // Scores (sums): 6, 4, 17 against the edge 5.
    assert_eq!(counts["scores"][0]["counts"], json!([1, 2]));
    assert_eq!(counts["scores"][0]["expected"], json!([0.3, 0.7]));
    assert_eq!(counts["unknownRules"], json!(["amount"]));
    assert_eq!(out_of_contract(&svc, "f1", "Flag"), Some(1));
}

#[tokio::test]
async fn a_reject_rule_answers_400_naming_the_input_row_and_position() {
    let svc = drifting_service(&["f0=Reject"]);
    let body = |data: Value| {
        json!({"inputs": [{"name": "features", "shape": [2, 3], "datatype": "FP32", "data": data}]})
            .to_string()
    };
    let (status, answer) = call(
        &svc,
        Method::POST,
        "/v2/models/fraud/infer",
        body(json!([1, 2, 3, 30, 2, 3])),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.contains(r#"input "features", row 1, position 0 (feature "f0"): 30 is outside what the model was trained on (from 0 to 10)"#),
        "{message}"
    );
    // Nothing of a refused request is counted; missing values pass.
    assert_eq!(drift_counts(&svc).await["rows"], 0);
    let (status, answer) = call(
        &svc,
        Method::POST,
        "/v2/models/fraud/infer",
        body(json!([1, 2, 3, 10, 2, 3])),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(out_of_contract(&svc, "f0", "Reject"), Some(1));
}

#[tokio::test]
async fn without_a_baseline_the_admin_port_says_drift_is_not_counted() {
    let svc = default_service();
    let request = Request::builder()
        .uri("/drift")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = crate::http::handle_admin(svc, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[test]
fn feature_rules_parse_or_say_what_they_should_be() {
    let rule: crate::drift::FeatureRule = "amount=Reject".parse().unwrap();
    assert_eq!(
        (rule.feature.as_str(), rule.rule),
        ("amount", crate::drift::Rule::Reject)
    );
    assert!(
        "amount"
            .parse::<crate::drift::FeatureRule>()
            .unwrap_err()
            .contains("NAME=Reject")
    );
    assert!(
        "amount=Drop"
            .parse::<crate::drift::FeatureRule>()
            .unwrap_err()
            .contains("not \"Drop\"")
    );
}
