//! The OIP gRPC service against Triton's own gRPC client, behind the same
//! security layer as REST (tokens reviewed and calls authorised by a
//! stand-in API server): answers identical to the bit to REST's, raw and
//! typed tensors, the refusals a caller can meet with their gRPC codes, and
//! every call in the audit trail as a gRPC call.

mod support;

use std::sync::Arc;
use std::time::Duration;

use aimass_audit::{AuditLog, Record, Target};
use aimass_inference_server::config::Config;
use aimass_inference_server::security::{Authorizer, Enforcement, Guard, TokenAuthenticator, stub};
use aimass_inference_server::server;
use clap::Parser;
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
    let model = support::repo().join("tests/zoo/models/torch_mlp.onnx");
    let config = Config::try_parse_from([
        "aimass-inference-server",
        "--model-uri",
        model.to_str().unwrap(),
        "--model-name",
        "fraud",
        "--model-version",
        "2",
    ])
    .unwrap();
    let mut service = server::load(&config).await.unwrap();
    let audit =
        std::env::temp_dir().join(format!("aimass-grpc-audit-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&audit);
    let timeout = Duration::from_secs(1);
    service.enforcement = Some(Enforcement {
        guard: Some(Guard {
            api_keys: None,
            authn: TokenAuthenticator::new(client.clone(), "aimass".into(), timeout),
            authz: Authorizer::new(client, "risk".into(), "fraud".into(), timeout),
            limits: None,
            per_address: None,
        }),
        audit: Some(AuditLog::open(&audit, vec![7; 32]).unwrap()),
        target: Target {
            namespace: "risk".into(),
            model: "fraud".into(),
            ..Target::default()
        },
        fail_open: false,
        payload: None,
        metrics: Arc::clone(&service.metrics),
        warm_up_key: None,
    });
    service.admin_separate = true;
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (rest_addr, grpc_addr) = (api.local_addr().unwrap(), grpc.local_addr().unwrap());
    tokio::spawn(server::serve(
        Arc::new(service),
        server::Listeners {
            api,
            grpc: Some(grpc),
            admin: None,
        },
        std::future::pending(),
        Duration::from_secs(1),
    ));

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
