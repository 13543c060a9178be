//! An Open Inference Protocol client that exists independently of aimass,
//! tritonclient[http] (from the zoo's Python environment), reads metadata and
//! runs inference with JSON and binary tensors against the real server
//! binary, and gets the onnxruntime reference answers.

mod support;

use std::process::Command;

#[test]
fn tritonclient_reads_metadata_and_infers_with_json_and_binary_tensors() {
    let python = support::zoo_python().join("python");
    let model = support::repo().join("tests/zoo/models/torch_mlp.onnx");
    let (_server, port) =
        support::start_server(model.to_str().unwrap(), &["--model-version", "2"], &[]);
    let out = Command::new(python)
        .arg(support::repo().join("tests/zoo/oip_client_check.py"))
        .arg(format!("127.0.0.1:{port}"))
        .arg("fraud")
        .arg(support::repo().join("tests/zoo/models/torch_mlp.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tritonclient check failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("binary inference")
            && stdout.contains("JSON inference")
            && stdout.ends_with("ok\n"),
        "{stdout}"
    );
}
