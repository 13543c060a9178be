//! An Open Inference Protocol client that exists independently of aimass,
//! tritonclient[http] (from the zoo's Python environment), reads metadata and
//! runs inference with JSON and binary tensors against the real server
//! binary, and gets the onnxruntime reference answers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Stops the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tritonclient_reads_metadata_and_infers_with_json_and_binary_tensors() {
    let venv = Command::new("bash")
        .arg(repo().join("scripts/zoo-venv.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        venv.status.success(),
        "could not create the zoo's Python environment"
    );
    let python = PathBuf::from(String::from_utf8(venv.stdout).unwrap().trim()).join("bin/python");

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let model = repo().join("tests/zoo/models/torch_mlp.onnx");
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_aimass-inference-server"))
            .args([
                "--model-uri",
                model.to_str().unwrap(),
                "--model-name",
                "fraud-mlp",
                "--model-version",
                "2",
            ])
            .args(["--address", "127.0.0.1", "--port", &port.to_string()])
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the server did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new(python)
        .arg(repo().join("tests/zoo/oip_client_check.py"))
        .arg(format!("127.0.0.1:{port}"))
        .arg("fraud-mlp")
        .arg(repo().join("tests/zoo/models/torch_mlp.json"))
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
