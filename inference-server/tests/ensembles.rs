//! The server binary serving an ensemble: two zoo models loaded as
//! members, combined 0.7 × GBDT + 0.3 × MLP over one request, each
//! member's own outputs beside the blend when asked for; an incompatible
//! member stops it at start with the member named.

// Test support: a failed step should stop the test with its error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{free_port, post_json, repo, server, start_serving};

fn zoo(name: &str) -> String {
    repo()
        .join(format!("tests/zoo/models/{name}.onnx"))
        .display()
        .to_string()
}

fn values(answer: &Value, name: &str) -> Vec<f64> {
    answer["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["name"] == name)
        .and_then(|o| o["data"].as_array())
        .unwrap_or_else(|| panic!("no output {name} in {answer}"))
        .iter()
        .filter_map(Value::as_f64)
        .collect()
}

#[test]
fn an_ensemble_answers_the_blend_and_each_members_outputs() {
    let (gbdt, mlp) = (
        format!("gbdt={}", zoo("gbdt_classifier")),
        format!("mlp={}", zoo("mlp_classifier")),
    );
    let (_server, port) = start_serving(
        &[
            "--member",
            &gbdt,
            "--member",
            &mlp,
            "--member-weight",
            "gbdt=0.7",
            "--member-weight",
            "mlp=0.3",
            "--combine",
            "weighted-sum",
        ],
        &[],
        &[],
    );
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/zoo/models/gbdt_classifier.json")).unwrap(),
    )
    .unwrap();
    // Unasked, only the blend.
    let request = json!({"inputs": [reference["inputs"][0]]}).to_string();
    let (status, body) = post_json(port, "/v2/models/fraud/infer", &request);
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = answer["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(names, ["probabilities"]);
    let unasked = values(&answer, "probabilities");
    // Asked, the members' answers beside it.
    let request = json!({"inputs": [reference["inputs"][0]], "outputs": [
        {"name": "probabilities"}, {"name": "gbdt.probabilities"}, {"name": "mlp.probabilities"}]})
    .to_string();
    let (status, body) = post_json(port, "/v2/models/fraud/infer", &request);
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let blend = values(&answer, "probabilities");
    let (g, m) = (
        values(&answer, "gbdt.probabilities"),
        values(&answer, "mlp.probabilities"),
    );
    assert_eq!(blend, unasked);
    assert_eq!(blend.len(), 32);
    for i in 0..32 {
        let by_hand = 0.7 * g[i] + 0.3 * m[i];
        assert!(
            (blend[i] - by_hand).abs() < 1e-6,
            "{i}: {} vs {by_hand}",
            blend[i]
        );
    }
    // Each member answers what it answers alone (onnxruntime's, to 1e-5).
    let alone = reference["outputs"][1]["data"].as_array().unwrap();
    for (ours, theirs) in g.iter().zip(alone) {
        assert!((ours - theirs.as_f64().unwrap()).abs() < 1e-5);
    }
    // The labels of both members, asked for by name, and nothing else.
    let request = json!({"inputs": [reference["inputs"][0]],
        "outputs": [{"name": "gbdt.label"}, {"name": "mlp.label"}]})
    .to_string();
    let (status, body) = post_json(port, "/v2/models/fraud/infer", &request);
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["outputs"].as_array().map(Vec::len),
        Some(2),
        "{answer}"
    );
}

#[test]
fn an_incompatible_member_stops_the_server_with_its_name() {
    let (binary, three) = (
        format!("binary={}", zoo("gbdt_classifier")),
        format!("three={}", zoo("gbdt_multiclass")),
    );
    let refused = |members: &[&str]| {
        let port = free_port().to_string();
        let mut args = members.to_vec();
        args.extend([
            "--combine",
            "maximum",
            "--model-name",
            "fraud",
            "--address",
            "127.0.0.1",
            "--port",
            &port,
        ]);
        let out = server(&args, &[]).output().unwrap();
        assert!(!out.status.success(), "{members:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = refused(&["--member", &binary, "--member", &three]);
    assert!(
        stderr.contains("member three returns probabilities as FP32"),
        "{stderr}"
    );
    // A member whose digest is not the one given is named too.
    let (other, digest) = (
        three.replace("three=", "other="),
        format!("other={}", "0".repeat(64)),
    );
    let stderr = refused(&[
        "--member",
        &binary,
        "--member",
        &other,
        "--member-sha256",
        &digest,
    ]);
    assert!(stderr.contains("member other:"), "{stderr}");
}
