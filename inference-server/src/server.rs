//! Start-up and shutdown: fetch, check and load the model, start the
//! batcher, serve, and on SIGTERM turn unready and drain: every connection
//! ends after its current request, new ones are still answered once, and
//! the server exits when none is left (bounded by the drain timeout).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::Error;
use crate::batching::{Batcher, BatchingConfig};
use crate::config::{Combine, Config, EnsemblePlan};
use crate::connections::{Activity, Pool, Watched};
use crate::grpc::Grpc;
use crate::http::{Limits, Service, handle_admin, handle_api};
use crate::metrics::Metrics;
use crate::security::mtls::{Alpn, ClientCertificate, ReloadingAcceptor};
use aimass_engine::ensemble::{Ensemble, Member};
use aimass_engine::{Backend, EngineError, TractBackend};

mod enforcement;
use enforcement::enforcement;

/// Longest a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Loads the model and builds the service (not yet ready) with the security
/// layer the configuration asks for.
pub async fn prepare(config: &Config) -> Result<Arc<Service>, Error> {
    let mut service = load(config).await?;
    service.enforcement = enforcement(config, &service.metrics).await?;
    if let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) {
        let files = crate::security::mtls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: config.client_ca_file.clone(),
            client_ca_name: config.client_ca_name.clone(),
            client_crls: config.client_crl_file.clone(),
        };
        service.tls = Some(Arc::new(
            crate::security::mtls::ReloadingAcceptor::new(files).map_err(Error::Security)?,
        ));
    }
    service.admin_separate = config.admin_port.is_some();
    Ok(Arc::new(service))
}

/// Fetches the model at `uri`, checks its digest, loads, optimises and
/// warms it up.
async fn load_model(uri: &str, sha256: Option<&str>) -> Result<Arc<dyn Backend>, Error> {
    let bytes = aimass_storage::fetch(uri).await?;
    if let Some(expected) = sha256 {
        aimass_storage::verify_sha256(&bytes, expected)?;
    }
    let backend = tokio::task::spawn_blocking(move || {
        let backend = TractBackend::load(&bytes);
        drop(bytes);
        // Walks every arena under its lock: off the runtime's threads.
        crate::memory::release_freed();
        backend
    })
    .await
    .map_err(|e| Error::Engine(EngineError::Invalid(e.to_string())))??;
    Ok(Arc::new(backend))
}

/// Loads the members of `plan` side by side and combines them by its rule;
/// an error names the member.
async fn load_ensemble(plan: &EnsemblePlan) -> Result<Arc<dyn Backend>, Error> {
    let invalid = |why: String| Error::Engine(EngineError::Invalid(why));
    if plan.members.len() < 2 {
        return Err(invalid("an ensemble needs at least two members".into()));
    }
    for m in &plan.members {
        if plan.members.iter().filter(|n| n.name == m.name).count() > 1 {
            return Err(invalid(format!("member {} is named twice", m.name)));
        }
    }
    match (plan.combine, &plan.meta) {
        (Combine::Stack, None) => {
            return Err(invalid("stack needs a meta-model (--meta)".into()));
        }
        (Combine::Stack, Some(_)) | (_, None) => {}
        (_, Some(_)) => return Err(invalid("only stack takes a meta-model".into())),
    }
    // The members and the meta-model are fetched and loaded side by side.
    let members = futures::future::join_all(plan.members.iter().map(|m| async move {
        load_model(&m.uri, m.sha256.as_deref())
            .await
            .map_err(|e| invalid(format!("member {}: {e}", m.name)))
    }));
    let meta = async {
        match &plan.meta {
            Some(meta) => Some(
                load_model(&meta.uri, meta.sha256.as_deref())
                    .await
                    .map_err(|e| invalid(format!("the meta-model: {e}"))),
            ),
            None => None,
        }
    };
    let (loaded, meta) = futures::join!(members, meta);
    let mut members = Vec::new();
    for (m, backend) in plan.members.iter().zip(loaded) {
        members.push(Member {
            name: m.name.clone(),
            backend: backend?,
            weight: m.weight,
        });
    }
    Ok(match meta {
        Some(meta) => Arc::new(Ensemble::stacked(members, &plan.output, meta?)?),
        None => Arc::new(Ensemble::new(members, plan.combine.into(), &plan.output)?),
    })
}

/// Loads the model and builds the service without any security layer.
pub async fn load(config: &Config) -> Result<Service, Error> {
    let metrics = Arc::new(Metrics::new(&config.model_name, &config.model_version)?);
    let started = Instant::now();
    let plan = config
        .ensemble_plan()
        .map_err(|why| Error::Engine(EngineError::Invalid(why)))?;
    let backend: Arc<dyn Backend> = match (&plan, &config.model_uri) {
        (Some(plan), _) => load_ensemble(plan).await?,
        (None, Some(uri)) => load_model(uri, config.model_sha256.as_deref()).await?,
        (None, None) => {
            return Err(Error::Engine(EngineError::Invalid(
                "nothing to serve: give --model-uri, --member or --ensemble".into(),
            )));
        }
    };
    let load_seconds = started.elapsed().as_secs_f64();
    metrics.load_seconds.set(load_seconds);
    let signature = backend.signature();
    let drift = match &config.baseline_uri {
        Some(uri) => Some(
            crate::drift::Drift::load(
                uri,
                config.baseline_sha256.as_deref(),
                signature,
                &config.feature_rules,
                metrics.out_of_contract.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let shadow = match &config.shadow_uri {
        Some(uri) => {
            let shadow = load_model(uri, config.shadow_sha256.as_deref()).await?;
            let started = crate::shadow::Shadow::start(
                shadow,
                signature,
                config.shadow_percent,
                &config.shadow_version,
                &metrics.registry,
            )
            .map_err(|why| Error::Engine(EngineError::Invalid(format!("shadow: {why}"))))?;
            info!(
                version = %config.shadow_version,
                percent = config.shadow_percent,
                "the shadow scores beside the model"
            );
            Some(started)
        }
        None => None,
    };
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
            inline_below: Duration::from_micros(config.inline_below_micros),
        },
        Arc::clone(&metrics),
    );
    Ok(Service {
        model_name: config.model_name.clone(),
        model_version: config.model_version.clone(),
        backend,
        batcher,
        metrics,
        ready: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        limits: Limits {
            max_request_bytes: config.max_request_bytes,
            request_timeout: Duration::from_millis(config.request_timeout_millis),
            body_read_timeout: Duration::from_millis(config.body_read_timeout_millis),
            connections: crate::connections::Limits {
                max_connections: usize::try_from(config.max_connections).unwrap_or(usize::MAX),
                header_timeout: Duration::from_millis(config.header_read_timeout_millis),
                idle_timeout: Duration::from_secs(config.idle_timeout_seconds),
                max_age: Duration::from_secs(config.max_connection_age_seconds),
            },
        },
        bodies: crate::http::BodyBudget::new(
            config
                .max_body_bytes_in_flight
                .max(config.max_request_bytes),
        ),
        faults: crate::http::FaultInjection::every(config.fault_error_every)
            .with_delay(std::time::Duration::from_millis(
                config.fault_latency_millis,
            ))
            .armed(std::time::Duration::from_millis(
                config.fault_latency_on_signal_millis,
            )),
        enforcement: None,
        admin_separate: false,
        tls: None,
        drift,
        shadow,
    })
}

/// Prefix of the variables holding the archive's object store settings.
const ARCHIVE_SETTINGS_PREFIX: &str = "AIMASS_AUDIT_ARCHIVE_";

/// The shipper of the audit trail to `--audit-archive`, if asked for.
pub fn archiver(config: &Config) -> Result<Option<crate::archive::Archiver>, Error> {
    let (Some(archive), Some(trail)) = (&config.audit_archive, &config.audit_log) else {
        return Ok(None);
    };
    let settings: std::collections::BTreeMap<String, String> = std::env::vars()
        .filter_map(|(name, value)| {
            let name = name.strip_prefix(ARCHIVE_SETTINGS_PREFIX)?;
            ["AWS_", "GOOGLE_", "AZURE_"]
                .iter()
                .any(|p| name.starts_with(p))
                .then(|| (name.to_owned(), value))
        })
        .collect();
    let credentials = if settings.is_empty() {
        aimass_storage::Credentials::Environment
    } else {
        aimass_storage::Credentials::Static(settings)
    };
    let pod = if config.pod_name.is_empty() {
        "local"
    } else {
        &config.pod_name
    };
    let destination = aimass_storage::open(archive, &credentials)?.child(&format!(
        "{}/{}/{pod}",
        config.namespace.as_deref().unwrap_or("default"),
        config.model_name
    ));
    Ok(Some(crate::archive::Archiver::new(
        trail.clone(),
        destination,
    )))
}

/// The ports a server listens on.
pub struct Listeners {
    /// The REST API.
    pub api: TcpListener,
    /// The gRPC API, when served.
    pub grpc: Option<TcpListener>,
    /// Probes and metrics, when on a port of their own.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Only the REST API on `api`.
    pub fn rest(api: TcpListener) -> Self {
        Self {
            api,
            grpc: None,
            admin: None,
        }
    }
}

/// Which protocol an API port speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    /// OIP REST over HTTP/1.1.
    Rest,
    /// OIP gRPC over HTTP/2.
    Grpc,
}

/// Serves the APIs on their listeners (and probes and metrics on the admin
/// port, when given) until `shutdown` resolves, then drains for at most
/// `drain`. Each port caps its connections and holds each to the
/// connection limits ([`crate::connections`]), so a flood on an API port
/// never closes the probes.
pub async fn serve(
    service: Arc<Service>,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let Listeners { api, grpc, admin } = listeners;
    let limits = service.limits.connections;
    let rest_pool = Arc::new(Pool::new(limits));
    let grpc_pool = Arc::new(Pool::new(limits));
    service.ready.store(true, Ordering::Release);
    info!(
        addr = ?api.local_addr().ok(),
        grpc = ?grpc.as_ref().and_then(|g| g.local_addr().ok()),
        admin = ?admin.as_ref().and_then(|a| a.local_addr().ok()),
        "ready"
    );
    // Probes keep answering (not ready) while the APIs drain.
    let _admin_task = admin.map(|admin| tokio::spawn(serve_admin(Arc::clone(&service), admin)));
    let front = Grpc::new(Arc::clone(&service));
    let serving = async {
        tokio::join!(
            accept_api(&service, &front, api, &rest_pool, Api::Rest),
            async {
                if let Some(grpc) = grpc {
                    accept_api(&service, &front, grpc, &grpc_pool, Api::Grpc).await;
                }
            }
        )
    };
    tokio::pin!(serving);
    tokio::select! {
        _ = &mut serving => {}
        () = shutdown => {}
    }
    service.draining.store(true, Ordering::Release);
    info!(
        in_flight = service.metrics.in_flight.get(),
        connections = rest_pool.open() + grpc_pool.open(),
        "draining"
    );
    // Still accepting while draining: a Service's proxies may route here
    // for a while after the endpoint was withdrawn, and a refused
    // connection is a failed request. A connection accepted now serves
    // one request and closes ([`crate::connections::Slot::draining`]).
    let (rest, grpc) = tokio::select! {
        drained = async { tokio::join!(rest_pool.drain(drain), grpc_pool.drain(drain)) } => drained,
        _ = serving => (false, false),
    };
    if rest && grpc {
        info!("drained; exiting");
    } else {
        warn!(
            ?drain,
            "drain timeout reached with requests still open; exiting"
        );
    }
}

/// Accepts connections to an API port into `pool` until dropped (the
/// listener closes with it).
async fn accept_api(
    service: &Arc<Service>,
    front: &Grpc,
    listener: TcpListener,
    pool: &Pool,
    api: Api,
) {
    loop {
        let Some((stream, peer)) = accept(&listener).await else {
            continue;
        };
        let Some(slot) = pool.admit() else {
            // Over the cap: closed at once.
            service.metrics.connections_refused.inc();
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = ApiConnection {
            service: Arc::clone(service),
            front: front.clone(),
            peer,
            api,
        };
        tokio::spawn(connection.serve(stream, slot));
    }
}

/// Answers probes and metrics on `admin`, in a pool of its own.
async fn serve_admin(service: Arc<Service>, admin: TcpListener) {
    let pool = Pool::new(crate::connections::Limits {
        max_connections: ADMIN_CONNECTIONS,
        ..service.limits.connections
    });
    loop {
        let Some((stream, _)) = accept(&admin).await else {
            continue;
        };
        let Some(slot) = pool.admit() else { continue };
        let service = Arc::clone(&service);
        tokio::spawn(async move {
            let activity = Activity::new();
            let io = TokioIo::new(Watched::new(stream, Arc::clone(&activity)));
            let connection = watched_connection(io, &activity, true, move |req| {
                handle_admin(Arc::clone(&service), req)
            });
            slot.serve(connection, &activity).await;
        });
    }
}

/// One connection to an API port.
struct ApiConnection {
    service: Arc<Service>,
    front: Grpc,
    peer: SocketAddr,
    api: Api,
}

impl ApiConnection {
    /// Serves the connection in its `slot`, after the TLS handshake when
    /// the server has TLS.
    async fn serve(self, stream: tokio::net::TcpStream, slot: crate::connections::Slot) {
        let activity = Activity::new();
        let Some(reloading) = self.service.tls.clone() else {
            self.serve_io(stream, None, slot, activity).await;
            return;
        };
        let alpn = match self.api {
            Api::Rest => Alpn::Http1,
            Api::Grpc => Alpn::H2,
        };
        // Off the accept loop: this may re-read the TLS files once a second.
        let acceptor = reloading.current(alpn);
        let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
        let Ok(Ok(tls)) = handshake else {
            // A certificate that does not verify (or a revoked one) ends
            // here, before any route.
            return;
        };
        let certificate = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| reloading.client_certificate(chain))
            .map(|c| (Arc::new(c), reloading));
        self.serve_io(tls, certificate, slot, activity).await;
    }

    /// Serves requests on `io` in `slot`, REST over HTTP/1.1 or gRPC over
    /// HTTP/2.
    ///
    /// A client certificate is checked again on each request: once it has
    /// expired or its CA's current CRL revokes it, the connection's requests
    /// are no longer authenticated by it.
    async fn serve_io<I>(
        self,
        io: I,
        certificate: Option<(Arc<ClientCertificate>, Arc<ReloadingAcceptor>)>,
        slot: crate::connections::Slot,
        activity: Arc<Activity>,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let certificate = move || {
            certificate
                .as_ref()
                .filter(|(certificate, tls)| certificate.still_valid(tls))
                .map(|(certificate, _)| Arc::new(certificate.principal.clone()))
        };
        let Self {
            service,
            front,
            peer,
            api,
        } = self;
        match api {
            Api::Rest => {
                let io = TokioIo::new(Watched::new(io, Arc::clone(&activity)));
                let keep_alive = !slot.draining();
                let connection = watched_connection(io, &activity, keep_alive, move |req| {
                    handle_api(Arc::clone(&service), req, peer, certificate())
                });
                slot.serve(connection, &activity).await;
            }
            Api::Grpc => {
                // Many calls at once: the activity counts them; reads are
                // not watched (see `crate::connections`).
                let watcher = Arc::clone(&activity);
                let handler = service_fn(move |req| {
                    watcher.request_started();
                    let front = front.clone();
                    let certificate = certificate();
                    let watcher = Arc::clone(&watcher);
                    async move {
                        let response = front.handle(req, peer, certificate).await;
                        watcher.request_finished();
                        response
                    }
                });
                let connection = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(GRPC_STREAMS_PER_CONNECTION)
                    .keep_alive_interval(Some(GRPC_KEEP_ALIVE))
                    .serve_connection(TokioIo::new(io), handler);
                slot.serve(connection, &activity).await;
            }
        }
    }
}

/// Most calls open at once on one gRPC connection.
const GRPC_STREAMS_PER_CONNECTION: u32 = 256;

/// How often an idle gRPC connection is pinged (one that does not answer
/// in 20 s is closed).
const GRPC_KEEP_ALIVE: Duration = Duration::from_secs(60);

/// Most connections on the admin port: the kubelet, the operator and a
/// scraper.
const ADMIN_CONNECTIONS: usize = 64;

/// The next connection; `None` after a failed accept (out of file
/// descriptors, say), after a short pause so the loop does not spin.
async fn accept(listener: &TcpListener) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    match listener.accept().await {
        Ok(accepted) => Some(accepted),
        Err(error) => {
            warn!(%error, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// A connection over `io` answered by `handle`, telling `activity` when each
/// request's head has arrived and when it has been answered; without
/// `keep_alive`, it closes after its first request.
fn watched_connection<I, H, F>(
    io: I,
    activity: &Arc<Activity>,
    keep_alive: bool,
    handle: H,
) -> impl crate::connections::Graceful
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    H: Fn(hyper::Request<hyper::body::Incoming>) -> F + Send + 'static,
    F: std::future::Future<
            Output = Result<
                hyper::Response<http_body_util::Full<hyper::body::Bytes>>,
                std::convert::Infallible,
            >,
        > + Send
        + 'static,
{
    let activity = Arc::clone(activity);
    http1::Builder::new()
        .keep_alive(keep_alive)
        .serve_connection(
            io,
            service_fn(move |req| {
                activity.request_started();
                // Boxed: the handler's future is large, and hyper moves the
                // future it is given (at c=32, memmove fell from 5.7 % to
                // 4.0 % of the server's samples, measured together with the
                // lone-row tree walk).
                let answered = Box::pin(handle(req));
                let activity = Arc::clone(&activity);
                async move {
                    let response = answered.await;
                    activity.request_finished();
                    response
                }
            }),
        )
}

/// Binds the listen address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}
