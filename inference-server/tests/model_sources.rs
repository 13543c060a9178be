//! The server fetches its model from where banks keep them: over HTTP, and
//! from an S3-compatible store at a configured endpoint (moto's S3 server on
//! loopback), checking the sha256; a mismatch stops it with the reason.

mod support;

use std::process::Command;

use support::{
    Process, assert_serves_the_mlp, free_port, mlp_sha256, repo, start_server, wait_for_port,
    zoo_python,
};

#[test]
fn loads_over_http_and_checks_the_sha256() {
    let bin = zoo_python();
    let port = free_port();
    let mut files = Command::new(bin.join("python"))
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(repo().join("tests/zoo/models"))
        .spawn()
        .unwrap();
    wait_for_port(port, &mut files);
    let _files = Process(files);
    let uri = format!("http://127.0.0.1:{port}/torch_mlp.onnx");
    let (_server, server_port) = start_server(&uri, &["--model-sha256", &mlp_sha256()], &[]);
    assert_serves_the_mlp(server_port);

    let wrong = "0".repeat(64);
    let out = support::server(
        &[
            "--model-uri",
            &uri,
            "--model-name",
            "fraud",
            "--model-sha256",
            &wrong,
            "--port",
            &free_port().to_string(),
        ],
        &[],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a wrong sha256 must stop the server");
    assert!(
        stderr.contains("sha256") && stderr.contains(&mlp_sha256()),
        "{stderr}"
    );
}

#[test]
fn loads_from_an_s3_compatible_store_at_a_configured_endpoint() {
    let bin = zoo_python();
    let port = free_port();
    let mut s3 = Command::new(bin.join("moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .spawn()
        .unwrap();
    wait_for_port(port, &mut s3);
    let _s3 = Process(s3);
    let endpoint = format!("http://127.0.0.1:{port}");
    let upload = Command::new(bin.join("python"))
        .arg("-c")
        .arg(
            "import boto3, sys\n\
             s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1')\n\
             s3.create_bucket(Bucket='model-registry')\n\
             s3.upload_file(sys.argv[2], 'model-registry', 'risk/fraud/1/model.onnx')\n",
        )
        .arg(&endpoint)
        .arg(repo().join("tests/zoo/models/torch_mlp.onnx"))
        .output()
        .unwrap();
    assert!(
        upload.status.success(),
        "{}",
        String::from_utf8_lossy(&upload.stderr)
    );
    let env = [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
    ];
    let (_server, server_port) = start_server(
        "s3://model-registry/risk/fraud/1/model.onnx",
        &["--model-sha256", &mlp_sha256()],
        &env,
    );
    assert_serves_the_mlp(server_port);

    let out = support::server(
        &[
            "--model-uri",
            "s3://model-registry/risk/fraud/9/model.onnx",
            "--model-name",
            "fraud",
            "--port",
            &free_port().to_string(),
        ],
        &env,
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains(
                "cannot fetch the model from s3://model-registry/risk/fraud/9/model.onnx"
            ),
        "{stderr}"
    );
}
