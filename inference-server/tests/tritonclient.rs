//! An Open Inference Protocol client that exists independently of aimass,
//! tritonclient[http] (from the zoo's Python environment), reads metadata and
//! runs inference with JSON and binary tensors against the real server
//! binary, and gets the onnxruntime reference answers.

mod support;

#[test]
fn tritonclient_reads_metadata_and_infers_with_json_and_binary_tensors() {
    let stdout = support::client_check(&support::zoo_python(), "tests/zoo/oip_client_check.py");
    assert!(
        stdout.contains("binary inference")
            && stdout.contains("JSON inference")
            && stdout.ends_with("ok\n"),
        "{stdout}"
    );
}
