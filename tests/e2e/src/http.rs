//! Calls to servers from the host, with or without a bearer token.

use std::time::Duration;

use anyhow::Result;

/// GET `url` with a short timeout: (status, body).
pub async fn http_get(url: &str) -> Result<(u16, String)> {
    http_get_as(url, None).await
}

/// As [`http_get`], trying up to three times when no answer comes (a
/// connection refused or timed out, as while a fresh cluster's network
/// settles); an answer of any status is returned at once.
pub async fn http_get_settled(url: &str) -> Result<(u16, String)> {
    let mut last = None;
    for _ in 0..3 {
        match http_get(url).await {
            Ok(answer) => return Ok(answer),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
}

/// As [`http_get`], with `Authorization: Bearer <token>` when given.
pub async fn http_get_as(url: &str, token: Option<&str>) -> Result<(u16, String)> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let mut request = hyper::Request::get(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(http_body_util::Empty::new())?;
    let response = tokio::time::timeout(Duration::from_secs(3), client.request(request)).await??;
    let status = response.status().as_u16();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// POSTs `body` as JSON on a fresh connection (`Connection: close`) with a
/// short timeout, and returns the status and parsed answer.
pub async fn post(url: &str, body: &serde_json::Value) -> Result<(u16, serde_json::Value)> {
    post_as(url, body, None).await
}

/// As [`post`], with `Authorization: Bearer <token>` when given.
pub async fn post_as(
    url: &str,
    body: &serde_json::Value,
    token: Option<&str>,
) -> Result<(u16, serde_json::Value)> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<hyper::body::Bytes>>();
    let mut request = hyper::Request::post(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .header("content-type", "application/json")
        .header("connection", "close")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.to_string(),
        )))?;
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request)).await??;
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    Ok((status, serde_json::from_slice(&bytes)?))
}

/// The `data` of output `name` among `outputs` (an OIP answer's, or a zoo
/// reference's).
pub fn output_data<'a>(
    outputs: &'a serde_json::Value,
    name: &str,
) -> Option<&'a serde_json::Value> {
    outputs
        .as_array()?
        .iter()
        .find(|o| o["name"] == name)
        .map(|o| &o["data"])
}

/// Whether two JSON arrays of numbers agree within a relative 1e-5.
pub fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_array(), b.as_array()) {
        (Some(a), Some(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| {
                    let (x, y) = (
                        x.as_f64().unwrap_or(f64::NAN),
                        y.as_f64().unwrap_or(f64::NAN),
                    );
                    (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1.0)
                })
        }
        _ => false,
    }
}
