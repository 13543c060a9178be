//! A tiny HTTP server for cluster tests: answers every request with the pod
//! it runs in, so tests can see which replica served them.
//!
//! `GET /` → `{"pod": "<HOSTNAME>", "path": "/"}`; `GET /healthz` → `ok`.
//! Listens on `0.0.0.0:$PORT` (default 8080); exits cleanly on SIGTERM.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let pod = std::env::var("HOSTNAME").unwrap_or_default();
    let listener = TcpListener::bind(("0.0.0.0", port)).await?;
    println!("echo-server {pod} listening on port {port}");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (stream, _) = tokio::select! {
            conn = listener.accept() => conn?,
            _ = term.recv() => {
                println!("echo-server {pod} stopping");
                return Ok(());
            }
        };
        let pod = pod.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let body = match req.uri().path() {
                    "/healthz" => "ok".to_owned(),
                    path => serde_json::json!({"pod": pod, "path": path}).to_string(),
                };
                async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
