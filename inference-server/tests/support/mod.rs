//! Helpers for the tests that run the real server binary next to real peers
//! (tritonclient, KServe's client, an HTTP file server, an S3-compatible
//! store).

#![allow(dead_code)]
// each test binary uses a different part
// Test support: a failed step should stop the test with its error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The zoo's Python, created on first use by `scripts/zoo-venv.sh`.
pub fn zoo_python() -> PathBuf {
    venv_bin("zoo-venv.sh")
}

/// The `bin` folder of the other projects' clients' Python environment
/// (KServe's SDK), created on first use.
pub fn clients_python() -> PathBuf {
    venv_bin("clients-venv.sh")
}

/// The `bin` folder of the virtualenv `script` (in `scripts/`) prints.
fn venv_bin(script: &str) -> PathBuf {
    let venv = Command::new("bash")
        .arg(repo().join("scripts").join(script))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        venv.status.success(),
        "could not create {script}'s Python environment"
    );
    PathBuf::from(String::from_utf8(venv.stdout).unwrap().trim()).join("bin")
}

/// Runs another project's client check, `script` (from the repository
/// root) with the `python` of `bin`, against the real server binary serving
/// the zoo's MLP as model `fraud` version 2 (arguments: the REST address,
/// the model, its reference, the gRPC address); returns what it printed,
/// once it succeeded.
pub fn client_check(bin: &Path, script: &str) -> String {
    let model = repo().join("tests/zoo/models/torch_mlp.onnx");
    let grpc = free_port().to_string();
    let (_server, port) = start_server(
        model.to_str().unwrap(),
        &["--model-version", "2", "--grpc-port", &grpc],
        &[],
    );
    let out = Command::new(bin.join("python"))
        .arg(repo().join(script))
        .arg(format!("127.0.0.1:{port}"))
        .arg("fraud")
        .arg(repo().join("tests/zoo/models/torch_mlp.json"))
        .arg(format!("127.0.0.1:{grpc}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    stdout
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process stopped when the test ends, however it ends.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the process exited with {status} before listening on {port}");
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port} after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the server binary with `args` and extra environment.
pub fn server(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aimass-inference-server"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Starts the server with `model_uri` on a free port; waits until it listens.
pub fn start_server(model_uri: &str, extra: &[&str], env: &[(&str, String)]) -> (Process, u16) {
    start_serving(&["--model-uri", model_uri], extra, env)
}

/// Starts the server with the model flags `model` (`--model-uri`, or an
/// ensemble's `--member`s) as `fraud` on a free port; waits until it
/// listens.
pub fn start_serving(model: &[&str], extra: &[&str], env: &[(&str, String)]) -> (Process, u16) {
    let port = free_port();
    let port_arg = port.to_string();
    let mut args = model.to_vec();
    args.extend([
        "--model-name",
        "fraud",
        "--address",
        "127.0.0.1",
        "--port",
        &port_arg,
    ]);
    args.extend_from_slice(extra);
    let mut child = server(&args, env).spawn().unwrap();
    wait_for_port(port, &mut child);
    (Process(child), port)
}

/// A minimal HTTP/1.1 POST of a JSON body; returns (status, body).
pub fn post_json(port: u16, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The torch-style MLP's reference request and first output value.
pub fn mlp_request() -> (String, f64) {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/zoo/models/torch_mlp.json")).unwrap(),
    )
    .unwrap();
    let input = &reference["inputs"][0];
    let body = serde_json::json!({"inputs": [input]}).to_string();
    (body, reference["outputs"][0]["data"][0].as_f64().unwrap())
}

/// Asserts the server on `port` gives the MLP's reference answer.
pub fn assert_serves_the_mlp(port: u16) {
    let (body, expected) = mlp_request();
    let (status, answer) = post_json(port, "/v2/models/fraud/infer", &body);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let got = answer["outputs"][0]["data"][0].as_f64().unwrap();
    assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
}

/// The sha256 of the zoo's torch-style MLP, as `sha256sum` computes it.
pub fn mlp_sha256() -> String {
    let out = Command::new("sha256sum")
        .arg(repo().join("tests/zoo/models/torch_mlp.onnx"))
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// The security layer of a server run in-process against the stand-in API
/// server (`client`): tokens reviewed for audience `aimass`, calls
/// authorised on model `fraud` of namespace `risk`, every call recorded in
/// the trail at `audit` (emptied first).
pub fn enforcement(
    client: kube::Client,
    audit: &Path,
    metrics: std::sync::Arc<aimass_inference_server::metrics::Metrics>,
) -> aimass_inference_server::security::Enforcement {
    use aimass_inference_server::security::{Authorizer, Enforcement, Guard, TokenAuthenticator};
    let _ = std::fs::remove_file(audit);
    let timeout = Duration::from_secs(1);
    Enforcement {
        guard: Some(Guard {
            api_keys: None,
            authn: TokenAuthenticator::new(client.clone(), "aimass".into(), timeout),
            authz: Authorizer::new(client, "risk".into(), "fraud".into(), timeout),
            limits: None,
            per_address: None,
        }),
        audit: Some(aimass_audit::AuditLog::open(audit, vec![7; 32]).unwrap()),
        target: aimass_audit::Target {
            namespace: "risk".into(),
            model: "fraud".into(),
            ..aimass_audit::Target::default()
        },
        fail_open: false,
        payload: None,
        metrics,
        warm_up_key: None,
    }
}

/// The zoo model `model` loaded in-process as model `fraud`, with `extra`
/// flags.
pub async fn load(model: &str, extra: &[&str]) -> aimass_inference_server::http::Service {
    use clap::Parser;
    let uri = repo().join(format!("tests/zoo/models/{model}.onnx"));
    let mut args = vec![
        "aimass-inference-server",
        "--model-uri",
        uri.to_str().unwrap(),
        "--model-name",
        "fraud",
    ];
    args.extend_from_slice(extra);
    let config = aimass_inference_server::config::Config::try_parse_from(args).unwrap();
    aimass_inference_server::server::load(&config)
        .await
        .unwrap()
}

/// Serves `service` in-process on loopback, REST and gRPC, until the test
/// ends; their addresses.
pub async fn serve_rest_and_grpc(
    service: std::sync::Arc<aimass_inference_server::http::Service>,
) -> (std::net::SocketAddr, std::net::SocketAddr) {
    use aimass_inference_server::server;
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addresses = (api.local_addr().unwrap(), grpc.local_addr().unwrap());
    tokio::spawn(server::serve(
        service,
        server::Listeners {
            api,
            grpc: Some(grpc),
            admin: None,
        },
        std::future::pending(),
        Duration::from_secs(1),
    ));
    addresses
}
