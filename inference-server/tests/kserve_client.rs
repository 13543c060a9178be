//! KServe's own Python client (`kserve.InferenceRESTClient`, protocol v2),
//! as KServe's users call a model, against the real server binary: JSON and
//! binary tensors get the onnxruntime reference answers, and a body naming
//! another model than its path is refused with a 400 that says so; its gRPC
//! client (`kserve.InferenceGRPCClient`) gets the same answers to the bit,
//! and NOT_FOUND for another model.

mod support;

#[test]
fn kserves_client_infers_with_json_and_binary_tensors_and_is_told_of_another_model() {
    let stdout = support::client_check(
        &support::clients_python(),
        "tests/clients/kserve_client_check.py",
    );
    for step in [
        "kserve JSON inference",
        "kserve binary inference",
        "kserve another model in the body: 400",
        "kserve gRPC inference",
        "kserve gRPC another model: NOT_FOUND",
    ] {
        assert!(stdout.contains(step), "{step} missing:\n{stdout}");
    }
    assert!(stdout.ends_with("ok\n"), "{stdout}");
}
