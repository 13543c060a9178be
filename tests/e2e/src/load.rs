//! Calling a served model: where and as whom ([`Endpoint`]), and a bounded
//! load of one-at-a-time callers that keeps every failure ([`Load`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use crate::post_as;

/// Where and as whom the tests call the model.
#[derive(Clone)]
pub struct Endpoint {
    /// The inference URL.
    pub url: String,
    /// The bearer token sent.
    pub token: String,
}

impl Endpoint {
    /// Waits (30 s at most) until `calls` calls in a row answer 200: a
    /// ClusterIP freed by an earlier test can still point at old pods for a
    /// moment.
    pub async fn answers_steadily(&self, request: &Value, calls: usize) -> Result<()> {
        crate::wait(
            Duration::from_secs(30),
            "the Service to answer steadily",
            || async move {
                for _ in 0..calls {
                    if !self.call(request).await.is_ok_and(|(s, _)| s == 200) {
                        return Ok(false);
                    }
                }
                Ok(true)
            },
        )
        .await
    }

    /// Calls it once: (status, body).
    pub async fn call(&self, request: &Value) -> Result<(u16, Value)> {
        post_as(&self.url, request, Some(&self.token)).await
    }
}

/// A bounded load through the Service: `clients` callers, each one request
/// at a time on a fresh connection, until stopped or 150 s have passed;
/// every failure is kept.
pub struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` callers of `request` at `endpoint`.
    pub fn start(endpoint: &Endpoint, request: &Value, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut load = Self {
            stop,
            sent,
            failures,
            clients: Vec::new(),
        };
        load.add(endpoint, request, clients);
        load
    }

    /// Adds `clients` callers.
    pub fn add(&mut self, endpoint: &Endpoint, request: &Value, clients: usize) {
        for _ in 0..clients {
            let (stop, sent, failures) =
                (self.stop.clone(), self.sent.clone(), self.failures.clone());
            let (endpoint, request) = (endpoint.clone(), request.clone());
            let started = tokio::time::Instant::now();
            self.clients.push(tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
                while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
                    sent.fetch_add(1, Ordering::Relaxed);
                    match endpoint.call(&request).await {
                        Ok((200, _)) => {}
                        other => failures
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(format!(
                                "after {:.1}s: {other:?}",
                                started.elapsed().as_secs_f64()
                            )),
                    }
                }
            }));
        }
    }

    /// Stops the clients and checks that more than `at_least` requests were
    /// sent and none failed; the requests sent.
    pub async fn finish_without_failures(self, at_least: usize) -> Result<usize> {
        let (sent, failures) = self.finish().await?;
        anyhow::ensure!(
            sent > at_least,
            "the load generator sent only {sent} requests"
        );
        anyhow::ensure!(
            failures.is_empty(),
            "{} of {sent} requests failed: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        Ok(sent)
    }

    /// Stops the clients: (requests sent, failures).
    pub async fn finish(self) -> Result<(usize, Vec<String>)> {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.await?;
        }
        let failures =
            std::mem::take(&mut *self.failures.lock().unwrap_or_else(|p| p.into_inner()));
        Ok((self.sent.load(Ordering::Relaxed), failures))
    }
}
