//! The HTTP ceiling of this machine, for the serving benchmark
//! (`make bench-serving`): a bare hyper server on the same runtime as the
//! inference server, answering every request, whatever it is, with the same
//! fixed 200-byte JSON body after reading the request's body. Whatever the
//! inference server spends beyond this is its own.

use std::convert::Infallible;
use std::net::SocketAddr;

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Serves a fixed 200-byte JSON answer to every request.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port to listen on (loopback).
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

/// The answer: an inference response's size and shape, 200 bytes.
fn answer() -> Bytes {
    let head = r#"{"model_name":"m","model_version":"1","outputs":[{"name":"probabilities","datatype":"FP32","shape":[1,2],"data":[0.25,0.75]}],"pad":""#;
    let mut body = head.to_owned();
    while body.len() < 198 {
        body.push('x');
    }
    body.push_str("\"}");
    Bytes::from(body)
}

async fn respond(
    request: Request<Incoming>,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the request as a server must; its content is not looked at.
    let _ = request.into_body().collect().await;
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port))).await?;
    let body = answer();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| respond(request, body.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_200_bytes_of_json() {
        let body = answer();
        assert_eq!(body.len(), 200);
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(parsed["outputs"][0]["name"], "probabilities");
    }
}
