//! Start-up and shutdown: fetch, check and load the model, start the
//! batcher, serve, and on SIGTERM turn unready, stop accepting, and let the
//! requests in hand finish (bounded by the drain timeout).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::batching::{Batcher, BatchingConfig};
use crate::config::Config;
use crate::engine::{Backend, TractBackend};
use crate::http::{Limits, Service, handle};
use crate::metrics::Metrics;
use crate::{Error, source};

/// Loads the model and builds the service (not yet ready).
pub async fn prepare(config: &Config) -> Result<Arc<Service>, Error> {
    let metrics = Arc::new(Metrics::new(&config.model_name, &config.model_version)?);
    let started = Instant::now();
    let bytes = source::fetch(&config.model_uri).await?;
    if let Some(expected) = &config.model_sha256 {
        source::verify_sha256(&bytes, expected)?;
    }
    let backend: Arc<dyn Backend> = Arc::new(
        tokio::task::spawn_blocking(move || TractBackend::load(&bytes))
            .await
            .map_err(|e| Error::Engine(crate::engine::EngineError::Invalid(e.to_string())))??,
    );
    let load_seconds = started.elapsed().as_secs_f64();
    metrics.load_seconds.set(load_seconds);
    let signature = backend.signature();
    info!(
        model = %config.model_name,
        version = %config.model_version,
        load_ms = (load_seconds * 1000.0).round(),
        inputs = ?signature.inputs.iter().map(|s| format!("{}:{}{:?}", s.name, s.datatype, s.shape)).collect::<Vec<_>>(),
        outputs = ?signature.outputs.iter().map(|s| format!("{}:{}{:?}", s.name, s.datatype, s.shape)).collect::<Vec<_>>(),
        "model loaded and warmed up"
    );
    if backend.batch_dependent() {
        warn!(
            "the model's outputs depend on the whole batch (dynamic quantization): requests are never merged"
        );
    }
    let workers = config
        .inference_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let batcher = Batcher::start(
        Arc::clone(&backend),
        BatchingConfig {
            max_batch_size: usize::try_from(config.max_batch_size).unwrap_or(1),
            max_queue_delay: std::time::Duration::from_micros(config.max_queue_delay),
            queue_capacity: usize::try_from(config.queue_capacity).unwrap_or(1),
            workers,
        },
        Arc::clone(&metrics),
    );
    Ok(Arc::new(Service {
        model_name: config.model_name.clone(),
        model_version: config.model_version.clone(),
        backend,
        batcher,
        metrics,
        ready: AtomicBool::new(false),
        limits: Limits {
            max_request_bytes: config.max_request_bytes,
            request_timeout: std::time::Duration::from_millis(config.request_timeout_millis),
        },
        faults: crate::http::FaultInjection::every(config.fault_error_every)
            .with_delay(std::time::Duration::from_millis(
                config.fault_latency_millis,
            ))
            .armed(std::time::Duration::from_millis(
                config.fault_latency_on_signal_millis,
            )),
    }))
}

/// Serves until `shutdown` resolves, then drains for at most `drain`.
pub async fn serve(
    service: Arc<Service>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
    drain: std::time::Duration,
) {
    let graceful = GracefulShutdown::new();
    service.ready.store(true, Ordering::Release);
    info!(addr = ?listener.local_addr().ok(), "ready");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                let _ = stream.set_nodelay(true);
                let service = Arc::clone(&service);
                let connection = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(move |req| handle(Arc::clone(&service), req)));
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = watched.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    service.ready.store(false, Ordering::Release);
    drop(listener);
    info!(in_flight = service.metrics.in_flight.get(), "draining");
    match tokio::time::timeout(drain, graceful.shutdown()).await {
        Ok(()) => info!("drained; exiting"),
        Err(_) => warn!(
            ?drain,
            "drain timeout reached with requests still open; exiting"
        ),
    }
}

/// Binds the listen address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}
