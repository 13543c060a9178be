//! The OIP gRPC service against Triton's own gRPC client, behind the same
//! security layer as REST (tokens reviewed and calls authorised by a
//! stand-in API server): answers identical to the bit to REST's, raw and
//! typed tensors, the refusals a caller can meet with their gRPC codes, and
//! every call in the audit trail as a gRPC call; and frames as a hostile
//! client writes them (undecodable, oversized, lying about their length,
//! compressed, for no method), each answered with a status, none a crash.

mod support;

use std::sync::Arc;
use std::time::Duration;

use aimass_audit::Record;
use aimass_inference_server::security::stub;
use serde_json::{Value, json};

/// The stand-in API server: `alice-token` is alice, who may run and read
/// the model; `bob-token` is bob, who may do nothing.
fn review(path: &str, body: &Value) -> (u16, Value) {
    let mut answer = body.clone();
    answer["status"] = if path.ends_with("/tokenreviews") {
        match body["spec"]["token"].as_str() {
            Some(token @ ("alice-token" | "bob-token")) => {
                let user = token.trim_end_matches("-token");
                json!({"authenticated": true, "user": {"username": user, "groups": ["risk-desk"]}, "audiences": ["aimass"]})
            }
            _ => json!({"authenticated": false, "error": "invalid bearer token"}),
        }
    } else {
        json!({"allowed": body["spec"]["user"] == "alice"})
    };
    (201, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triton_grpc_client_gets_rest_answers_to_the_bit_and_refusals_with_grpc_codes() {
    let python = tokio::task::spawn_blocking(support::clients_python)
        .await
        .unwrap();
    let (_, client) = stub::serve(Arc::new(review), Arc::new(|| Duration::ZERO))
        .await
        .unwrap();
    let mut service = support::load("torch_mlp", &["--model-version", "2"]).await;
    let audit =
        std::env::temp_dir().join(format!("aimass-grpc-audit-{}.jsonl", std::process::id()));
    service.enforcement = Some(support::enforcement(
        client,
        &audit,
        Arc::clone(&service.metrics),
    ));
    service.admin_separate = true;
    let (rest_addr, grpc_addr) = support::serve_rest_and_grpc(Arc::new(service)).await;

    let check = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python.join("python"))
            .arg(support::repo().join("tests/clients/grpc_check.py"))
            .arg(rest_addr.to_string())
            .arg(grpc_addr.to_string())
            .arg("fraud")
            .arg(support::repo().join("tests/zoo/models/torch_mlp.json"))
            .args(["alice-token", "bob-token"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && stdout.ends_with("ok\n"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let records: Vec<Record> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let infer = "gRPC /inference.GRPCInferenceService/ModelInfer";
    let outcomes: Vec<(&str, u16)> = records
        .iter()
        .filter(|r| r.operation == infer)
        .map(|r| (r.actor.user.as_str(), r.status))
        .collect();
    // Raw, typed; no token; bob; another model; a wrong shape.
    assert_eq!(
        outcomes,
        [
            ("alice", 200),
            ("alice", 200),
            ("", 401),
            ("bob", 403),
            ("alice", 404),
            ("alice", 400)
        ],
        "{records:#?}"
    );
    let served = records.iter().find(|r| r.operation == infer).unwrap();
    assert_eq!(served.inputs.len(), 1, "the inputs' shapes are recorded");
    assert!(
        records
            .iter()
            .any(|r| r.operation == "POST /v2/models/fraud/infer" && r.status == 200),
        "the REST call beside them"
    );
    assert!(
        records
            .iter()
            .any(|r| r.operation == "gRPC /inference.GRPCInferenceService/ModelMetadata"),
        "reads are recorded too"
    );
    let _ = std::fs::remove_file(&audit);
}

/// One gRPC call of `method` with `body` (the whole HTTP/2 body: frames as
/// a hostile client writes them) on a fresh connection to `addr`; the
/// grpc-status and grpc-message answered, from the headers of a
/// trailers-only answer or from the trailers.
#[cfg(test)]
async fn raw_call(
    addr: std::net::SocketAddr,
    method: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (String, String) {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::post(format!(
        "http://{addr}/inference.GRPCInferenceService/{method}"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers");
    let request = headers
        .iter()
        .fold(request, |request, (name, value)| {
            request.header(*name, *value)
        })
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let field = |name: &str| {
        parts
            .headers
            .get(name)
            .or_else(|| trailers.get(name))
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (field("grpc-status"), field("grpc-message"))
}

/// A gRPC message frame: uncompressed, `length` as declared.
#[cfg(test)]
fn frame(length: u32, message: &[u8]) -> Vec<u8> {
    let mut framed = vec![0];
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_grpc_messages_get_a_status_and_never_a_crash() {
    let service = Arc::new(support::load("torch_mlp", &["--max-request-bytes", "4096"]).await);
    let (_, addr) = support::serve_rest_and_grpc(Arc::clone(&service)).await;
    // 0: OK, 3: INVALID_ARGUMENT, 8: RESOURCE_EXHAUSTED, 11: OUT_OF_RANGE
    // and 13: INTERNAL (tonic's words for a frame past the limit and a
    // message that does not decode), 12: UNIMPLEMENTED.
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("ServerLive", frame(0, &[]), "0", ""),
        ("ModelInfer", frame(5, &[0xff; 5]), "13", "decode"),
        // A frame claiming more than the limit: refused by its header.
        ("ModelInfer", frame(1_000_000, &[0; 16]), "11", "too large"),
        ("ModelInfer", frame(5000, &[0; 5000]), "8", "4096"),
        (
            "ModelInfer",
            vec![1, 0, 0, 0, 1, 0],
            "13",
            "compressed-flag",
        ),
        ("NoSuchMethod", frame(0, &[]), "12", ""),
        // A request with no inputs: the decoder names what the model needs.
        (
            "ModelInfer",
            frame(7, &[0x0a, 0x05, b'f', b'r', b'a', b'u', b'd']),
            "3",
            "missing input",
        ),
    ];
    for (method, body, status, says) in cases {
        let (got, message) = raw_call(addr, method, body, &[]).await;
        assert_eq!(got, status, "{method}: {message}");
        let message = percent_decoded(&message);
        assert!(
            message.contains(says),
            "{method}: {message:?} should say {says:?}"
        );
    }
    // Still serving, and nothing panicked.
    assert_eq!(
        raw_call(addr, "ServerReady", frame(0, &[]), &[]).await.0,
        "0"
    );
    assert_eq!(
        service.metrics.panics.with_label_values(&["request"]).get(),
        0
    );
}

/// A grpc-message as sent: percent-encoded.
#[cfg(test)]
fn percent_decoded(message: &str) -> String {
    let bytes = message.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => {
                out.push(u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap());
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_deadline_sooner_than_the_servers_is_kept() {
    // Every scoring call is held 500 ms (a rehearsal fault).
    let service = Arc::new(support::load("torch_mlp", &["--fault-latency-millis", "500"]).await);
    let (_, addr) = support::serve_rest_and_grpc(service).await;
    // A request naming the model and no input: refused once it is decoded.
    let request = || frame(7, &[0x0a, 0x05, b'f', b'r', b'a', b'u', b'd']);
    let started = std::time::Instant::now();
    let (status, message) =
        raw_call(addr, "ModelInfer", request(), &[("grpc-timeout", "50m")]).await;
    assert_eq!(status, "4", "DEADLINE_EXCEEDED: {message}");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "answered at the caller's deadline"
    );
    // Without a deadline the call waits out the fault and is answered.
    let (status, message) = raw_call(addr, "ModelInfer", request(), &[]).await;
    assert_eq!(status, "3", "{message}");
}
