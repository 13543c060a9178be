//! KServe's own Python client (`kserve.InferenceRESTClient`, protocol v2),
//! as KServe's users call a model, against the real server binary: JSON and
//! binary tensors get the onnxruntime reference answers, and a body naming
//! another model than its path is refused with a 400 that says so.

mod support;

use std::process::Command;

#[test]
fn kserves_client_infers_with_json_and_binary_tensors_and_is_told_of_another_model() {
    let python = support::clients_python().join("python");
    let model = support::repo().join("tests/zoo/models/torch_mlp.onnx");
    let (_server, port) =
        support::start_server(model.to_str().unwrap(), &["--model-version", "2"], &[]);
    let out = Command::new(python)
        .arg(support::repo().join("tests/clients/kserve_client_check.py"))
        .arg(format!("127.0.0.1:{port}"))
        .arg("fraud")
        .arg(support::repo().join("tests/zoo/models/torch_mlp.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "KServe's client check failed:\n{stdout}\n{stderr}"
    );
    for step in [
        "kserve JSON inference",
        "kserve binary inference",
        "kserve another model in the body: 400",
    ] {
        assert!(stdout.contains(step), "{step} missing:\n{stdout}");
    }
    assert!(stdout.ends_with("ok\n"), "{stdout}");
}
