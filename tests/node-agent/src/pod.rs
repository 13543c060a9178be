//! One pod's life on a node: sandbox (network and volumes), init containers
//! in order, containers with probes and restarts, status reports, and
//! graceful termination when the pod is deleted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, ObjectReference, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder};
use nix::sys::signal::Signal;
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

use crate::config::ImageMap;
use crate::env::{self, PodFacts};
use crate::error::{Error, Result};
use crate::logs::{LogRegistry, PodLogs};
use crate::network::{Cidr, Network, PodNetwork};
use crate::process::{self, Launch};
use crate::status::{self, ContainerRecord, Exit, PodReport, State};
use crate::{probe, volumes};

/// What a node offers its pods.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The node's pod range.
    pub cidr: Cidr,
    /// CPU capacity in cores.
    pub cpu: f64,
    /// Memory capacity in bytes.
    pub memory: f64,
}

/// What every pod supervisor shares.
pub struct Ctx {
    /// API client.
    pub client: kube::Client,
    /// Image → program map.
    pub images: ImageMap,
    /// Pod networking.
    pub network: Network,
    /// Root of the pods' state.
    pub state_dir: PathBuf,
    /// Where the kubelet API finds logs.
    pub logs: LogRegistry,
    /// The agent's nodes.
    pub nodes: HashMap<String, NodeInfo>,
    /// This executable, re-run as the `exec-in-pod` helper.
    pub agent: PathBuf,
    /// First delay before restarting a crashed container; doubles up to 5 min.
    pub restart_backoff: Duration,
    /// Event recorders, one per node.
    pub recorders: HashMap<String, Recorder>,
    /// Becomes true when the agent stops.
    pub shutdown: watch::Receiver<bool>,
}

/// How long a stop may take; `None` until a stop is asked for.
type StopSignal = watch::Receiver<Option<Duration>>;

/// Which list a container is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Init,
    Main,
}

#[derive(Default)]
struct Records {
    init: Vec<ContainerRecord>,
    main: Vec<ContainerRecord>,
    initialized: bool,
    init_failed: bool,
    reason: Option<(String, String)>,
    pod_ip: Option<String>,
}

/// A pod being run.
struct PodRun {
    ctx: Arc<Ctx>,
    pod: Pod,
    node: String,
    dir: PathBuf,
    logs: Arc<PodLogs>,
    records: Mutex<Records>,
    changed: Notify,
    start_time: Timestamp,
    reference: ObjectReference,
}

impl PodRun {
    fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }

    fn restart_policy(&self) -> &str {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always")
    }

    fn containers(&self, kind: Kind) -> &[Container] {
        let spec = self.pod.spec.as_ref();
        match kind {
            Kind::Init => spec
                .and_then(|s| s.init_containers.as_deref())
                .unwrap_or_default(),
            Kind::Main => spec.map(|s| s.containers.as_slice()).unwrap_or_default(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Records)) {
        f(&mut self.records.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.notify_one();
    }

    fn update_container(&self, kind: Kind, idx: usize, f: impl FnOnce(&mut ContainerRecord)) {
        self.update(|r| {
            let list = match kind {
                Kind::Init => &mut r.init,
                Kind::Main => &mut r.main,
            };
            if let Some(c) = list.get_mut(idx) {
                f(c);
            }
        });
    }

    /// Whether the container already waits on a failed image pull.
    fn image_pull_failed_before(&self, kind: Kind, idx: usize) -> bool {
        let r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let list = match kind {
            Kind::Init => &r.init,
            Kind::Main => &r.main,
        };
        list.get(idx).is_some_and(|c| {
            matches!(&c.state, State::Waiting { reason, .. }
                if reason == "ErrImagePull" || reason == "ImagePullBackOff")
        })
    }

    fn phase(&self) -> &'static str {
        let r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        status::phase(r.initialized, r.init_failed, &r.main, self.restart_policy())
    }

    fn report(&self) -> serde_json::Value {
        let r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        PodReport {
            phase: status::phase(r.initialized, r.init_failed, &r.main, self.restart_policy()),
            pod_ip: r.pod_ip.clone(),
            host_ip: self.ctx.network.gateway().to_string(),
            start_time: self.start_time,
            initialized: r.initialized,
            init_containers: &r.init,
            containers: &r.main,
            reason: r.reason.clone(),
        }
        .to_patch()
    }

    async fn event(&self, type_: EventType, reason: &str, note: String) {
        if let Some(recorder) = self.ctx.recorders.get(&self.node) {
            let event = Event {
                type_,
                reason: reason.into(),
                note: Some(note),
                action: reason.into(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&event, &self.reference).await {
                debug!(pod = self.name(), error = %e, "could not publish event");
            }
        }
    }

    fn pod_ip(&self) -> String {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pod_ip
            .clone()
            .unwrap_or_default()
    }

    fn facts(&self) -> PodFacts<'_> {
        let node = self.ctx.nodes.get(&self.node);
        PodFacts {
            pod: &self.pod,
            pod_ip: self.pod_ip(),
            host_ip: self.ctx.network.gateway().to_string(),
            node_cpu: node.map_or(1.0, |n| n.cpu),
            node_memory: node.map_or(1e9, |n| n.memory),
        }
    }
}

/// Runs the pod in `updates` until it is deleted (or the agent stops).
pub async fn supervise(ctx: Arc<Ctx>, mut updates: watch::Receiver<Option<Pod>>) {
    let Some(pod) = updates.borrow_and_update().clone() else {
        return;
    };
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let terminal = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    if terminal {
        // Finished before this agent started: nothing runs; delete it when asked.
        wait_for_deletion(&mut updates, &ctx.shutdown).await;
        finalize(&ctx, &pod, Duration::ZERO, &updates).await;
        return;
    }
    let dir = ctx.state_dir.join("pods").join(&uid);
    let run = Arc::new(PodRun {
        logs: Arc::new(PodLogs::new(dir.join("logs"))),
        records: Mutex::new(Records::default()),
        changed: Notify::new(),
        start_time: Timestamp::now(),
        reference: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        ctx: Arc::clone(&ctx),
        node,
        dir,
        pod,
    });
    run.update(|r| {
        r.init = run
            .containers(Kind::Init)
            .iter()
            .map(|c| ContainerRecord::new(&c.name, image(c)))
            .collect();
        r.main = run
            .containers(Kind::Main)
            .iter()
            .map(|c| ContainerRecord::new(&c.name, image(c)))
            .collect();
    });
    ctx.logs
        .insert(run.namespace(), run.name(), Arc::clone(&run.logs));
    let writer = tokio::spawn(write_status(Arc::clone(&run)));
    let (stop_tx, stop) = watch::channel(None);
    let lifecycle = tokio::spawn(run_lifecycle(Arc::clone(&run), stop));

    // Wait for deletion or the agent's shutdown; the lifecycle runs meanwhile.
    let grace = wait_for_deletion(&mut updates, &ctx.shutdown).await;
    let _ = stop_tx.send(Some(grace));
    if let Err(e) = lifecycle.await {
        warn!(pod = run.name(), error = %e, "pod lifecycle task failed");
    }
    run.changed.notify_one();
    tokio::task::yield_now().await;
    writer.abort();
    ctx.logs.remove(run.namespace(), run.name(), &run.logs);
    let _ = tokio::fs::remove_dir_all(&run.dir).await;
    if !*ctx.shutdown.borrow() {
        finalize(&ctx, &run.pod, grace, &updates).await;
    }
}

/// Resolves when the pod is marked for deletion (with its grace period), is
/// gone, or the agent stops.
async fn wait_for_deletion(
    updates: &mut watch::Receiver<Option<Pod>>,
    shutdown: &watch::Receiver<bool>,
) -> Duration {
    let mut shutdown = shutdown.clone();
    loop {
        {
            let current = updates.borrow_and_update();
            match current.as_ref() {
                None => return Duration::from_secs(2),
                Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
                    let seconds = pod
                        .metadata
                        .deletion_grace_period_seconds
                        .or_else(|| {
                            pod.spec
                                .as_ref()
                                .and_then(|s| s.termination_grace_period_seconds)
                        })
                        .unwrap_or(30);
                    return Duration::from_secs(seconds.max(0).unsigned_abs());
                }
                Some(_) => {}
            }
        }
        if *shutdown.borrow_and_update() {
            return Duration::from_secs(2);
        }
        tokio::select! {
            changed = updates.changed() => if changed.is_err() { return Duration::from_secs(2) },
            _ = shutdown.changed() => {}
        }
    }
}

/// The kubelet's last word on a deleted pod: remove the object for good.
async fn finalize(ctx: &Ctx, pod: &Pod, _grace: Duration, updates: &watch::Receiver<Option<Pod>>) {
    if updates.borrow().is_none() {
        return;
    }
    let api: Api<Pod> = Api::namespaced(
        ctx.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    match api.delete(name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => warn!(pod = name, error = %e, "could not finalize pod deletion"),
    }
}

/// Patches the pod's status whenever the records change.
async fn write_status(run: Arc<PodRun>) {
    let api: Api<Pod> = Api::namespaced(run.ctx.client.clone(), run.namespace());
    loop {
        run.changed.notified().await;
        let patch = run.report();
        if let Err(e) = api
            .patch_status(
                run.name(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        {
            warn!(pod = run.name(), error = %e, "status update failed; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
            run.changed.notify_one();
        }
    }
}

/// Sandbox, init containers, then containers; tears the sandbox down once
/// everything has stopped.
async fn run_lifecycle(run: Arc<PodRun>, mut stop: StopSignal) {
    let network = match prepare_sandbox(&run, &mut stop).await {
        Some(network) => network,
        None => return,
    };
    let mut init_ok = true;
    for idx in 0..run.containers(Kind::Init).len() {
        match run_container(
            Arc::clone(&run),
            Kind::Init,
            idx,
            network.as_ref(),
            stop.clone(),
        )
        .await
        {
            Some(exit) if exit.exit_code == 0 => {}
            _ => {
                init_ok = false;
                break;
            }
        }
    }
    let stopping = stop.borrow().is_some();
    if init_ok && !stopping {
        run.update(|r| r.initialized = true);
        let tasks: Vec<_> = (0..run.containers(Kind::Main).len())
            .map(|idx| {
                let run = Arc::clone(&run);
                let network = network.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    run_container(run, Kind::Main, idx, network.as_ref(), stop).await
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    } else if !init_ok && !stopping {
        run.update(|r| r.init_failed = true);
    }
    if let Some(network) = &network {
        run.ctx.network.teardown(&run.node, network).await;
    }
    info!(
        pod = run.name(),
        namespace = run.namespace(),
        phase = run.phase(),
        "pod stopped"
    );
}

/// Creates the network and volumes, retrying (as the kubelet does) until it
/// works or the pod is stopped. `None` when stopped first.
async fn prepare_sandbox(run: &Arc<PodRun>, stop: &mut StopSignal) -> Option<Option<PodNetwork>> {
    let host_network = run
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let mut network: Option<Option<PodNetwork>> = None;
    loop {
        let result: Result<()> = async {
            if network.is_none() {
                if host_network {
                    network = Some(None);
                    let ip = run.ctx.network.gateway().to_string();
                    run.update(|r| r.pod_ip = Some(ip));
                } else {
                    let node = run
                        .ctx
                        .nodes
                        .get(&run.node)
                        .ok_or_else(|| Error::Config(format!("unknown node {}", run.node)))?;
                    let uid = run.pod.metadata.uid.clone().unwrap_or_default();
                    let net = run.ctx.network.setup(&run.node, node.cidr, &uid).await?;
                    let ip = net.ip.to_string();
                    network = Some(Some(net));
                    run.update(|r| r.pod_ip = Some(ip));
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => return network,
            Err(e) => {
                warn!(pod = run.name(), error = %e, "pod sandbox failed");
                run.update(|r| r.reason = Some(("SandboxFailed".into(), e.to_string())));
                run.event(EventType::Warning, "FailedCreatePodSandBox", e.to_string())
                    .await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop.changed() => return None,
                }
            }
        }
    }
}

fn image(container: &Container) -> &str {
    container.image.as_deref().unwrap_or_default()
}

/// The program, environment and mounts of a container.
async fn build_launch(
    run: &PodRun,
    container: &Container,
    network: Option<&PodNetwork>,
) -> Result<Launch> {
    let spec = run
        .ctx
        .images
        .resolve(image(container))
        .cloned()
        .unwrap_or_default();
    let facts = run.facts();
    let env = env::build(&run.ctx.client, &facts, container, &spec.env).await?;
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    let argv: Vec<String> = if !command.is_empty() {
        command.into_iter().chain(args).collect()
    } else if !args.is_empty() {
        spec.entrypoint.iter().cloned().chain(args).collect()
    } else {
        spec.entrypoint
            .iter()
            .chain(spec.cmd.iter())
            .cloned()
            .collect()
    };
    if argv.is_empty() {
        return Err(Error::Unsupported {
            // What a kubelet reports for an image it cannot pull.
            reason: "ErrImagePull",
            message: format!(
                "image {:?} has no entry in the node agent's image map and the container gives no command",
                image(container)
            ),
        });
    }
    let volumes = volumes::materialize(&run.ctx.client, &facts, &run.dir.join("volumes")).await?;
    Ok(Launch {
        argv: argv.iter().map(|a| env::expand(a, &env)).collect(),
        mounts: volumes::mounts(container, &volumes)?,
        env,
        netns: network.map(PodNetwork::netns_path),
        workdir: container.working_dir.clone().or(spec.working_dir),
    })
}

/// Runs one container until it ends for good (per restart policy) or the pod
/// stops; returns its last exit.
async fn run_container(
    run: Arc<PodRun>,
    kind: Kind,
    idx: usize,
    network: Option<&PodNetwork>,
    mut stop: StopSignal,
) -> Option<Exit> {
    let container = run.containers(kind).get(idx)?.clone();
    let policy = run.restart_policy().to_owned();
    let groups = run.dir.join("groups");
    let mut last: Option<Exit> = None;
    let mut attempt: u32 = 0;
    loop {
        if stop.borrow().is_some() {
            return last;
        }
        let launch = match build_launch(&run, &container, network).await {
            Ok(launch) => launch,
            Err(e) => {
                let reason = match &e {
                    // Like a kubelet: the first failed pull is ErrImagePull,
                    // later ones wait in ImagePullBackOff.
                    Error::Unsupported { reason, .. }
                        if *reason == "ErrImagePull" && run.image_pull_failed_before(kind, idx) =>
                    {
                        "ImagePullBackOff"
                    }
                    Error::Unsupported { reason, .. } => *reason,
                    _ => "CreateContainerConfigError",
                };
                run.update_container(kind, idx, |c| {
                    c.state = State::Waiting {
                        reason: reason.into(),
                        message: Some(e.to_string()),
                    }
                });
                run.event(EventType::Warning, "Failed", format!("Error: {e}"))
                    .await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    _ = stop.changed() => return last,
                }
            }
        };
        let started_at = Timestamp::now();
        let mut child = match launch.spawn(&run.ctx.agent) {
            Ok(child) => child,
            Err(e) => {
                run.update_container(kind, idx, |c| {
                    c.state = State::Waiting {
                        reason: "RunContainerError".into(),
                        message: Some(e.to_string()),
                    }
                });
                tokio::select! {
                    _ = tokio::time::sleep(run.ctx.restart_backoff) => continue,
                    _ = stop.changed() => return last,
                }
            }
        };
        let pgid = child.id().unwrap_or_default();
        let group_name = format!("{}-{attempt}", container.name);
        process::record_group(&groups, &group_name, pgid);
        let capture = match (child.stdout.take(), child.stderr.take()) {
            (Some(out), Some(err)) => run.logs.capture(&container.name, attempt, out, err).ok(),
            _ => None,
        };
        run.update_container(kind, idx, |c| {
            c.state = State::Running { started_at };
            c.ready = false;
            c.started = container.startup_probe.is_none();
        });
        run.event(
            EventType::Normal,
            "Started",
            format!("Started container {}", container.name),
        )
        .await;

        let liveness_failed = Arc::new(Notify::new());
        let probes = (kind == Kind::Main).then(|| {
            tokio::spawn(run_probes(
                Arc::clone(&run),
                idx,
                container.clone(),
                launch.clone(),
                Arc::clone(&liveness_failed),
            ))
        });

        let mut killed_reason: Option<&str> = None;
        let exit_status = tokio::select! {
            status = child.wait() => status.ok(),
            _ = stop.changed() => {
                let grace = stop.borrow().unwrap_or_default();
                run.event(EventType::Normal, "Killing", format!("Stopping container {}", container.name)).await;
                pre_stop(&run, &container, &launch, grace).await;
                process::terminate(&mut child, grace).await
            }
            _ = liveness_failed.notified() => {
                killed_reason = Some("LivenessProbeFailed");
                let grace = Duration::from_secs(run.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30).max(0).unsigned_abs());
                run.event(EventType::Normal, "Killing", format!("Container {} failed liveness probe, will be restarted", container.name)).await;
                process::terminate(&mut child, grace).await
            }
        };
        process::signal_group(pgid, Signal::SIGKILL);
        process::forget_group(&groups, &group_name);
        if let Some(probes) = probes {
            probes.abort();
        }
        if let Some(capture) = capture {
            let _ = capture.await;
        }
        let (exit_code, signal) = match exit_status {
            Some(s) => {
                use std::os::unix::process::ExitStatusExt;
                match (s.code(), s.signal()) {
                    (Some(code), _) => (code, None),
                    (None, Some(sig)) => (128 + sig, Some(sig)),
                    _ => (255, None),
                }
            }
            None => (255, None),
        };
        let exit = Exit {
            exit_code,
            signal,
            reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
            message: killed_reason.map(|r| format!("{r}: the container was restarted")),
            started_at,
            finished_at: Timestamp::now(),
        };
        run.update_container(kind, idx, |c| {
            c.state = State::Terminated(exit.clone());
            c.ready = false;
            c.started = false;
        });
        last = Some(exit.clone());
        if stop.borrow().is_some() {
            return last;
        }
        let restart = match (kind, policy.as_str()) {
            (_, "Always") if kind == Kind::Main => true,
            (Kind::Init, "Never") | (Kind::Main, "Never") => false,
            _ => exit_code != 0,
        };
        if !restart {
            return last;
        }
        let delay = run
            .ctx
            .restart_backoff
            .saturating_mul(1 << attempt.min(5))
            .min(Duration::from_secs(300));
        run.update_container(kind, idx, |c| {
            c.last = Some(exit.clone());
            c.state = State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!(
                    "back-off {}s restarting failed container={} pod={}",
                    delay.as_secs(),
                    container.name,
                    run.name()
                )),
            };
        });
        run.event(
            EventType::Warning,
            "BackOff",
            format!("Back-off restarting failed container {}", container.name),
        )
        .await;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return last,
        }
        attempt += 1;
        run.update_container(kind, idx, |c| c.restart_count += 1);
    }
}

/// Runs the container's preStop hook, bounded by the grace period.
async fn pre_stop(run: &PodRun, container: &Container, launch: &Launch, grace: Duration) {
    let Some(hook) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
    else {
        return;
    };
    let ip = run.pod_ip().parse().unwrap_or(run.ctx.network.gateway());
    let result = tokio::time::timeout(grace, run_hook(run, hook, container, launch, ip)).await;
    if let Ok(Err(e)) | Err(e) = result.map_err(|_| "timed out".to_owned()) {
        run.event(
            EventType::Warning,
            "FailedPreStopHook",
            format!("PreStopHook failed: {e}"),
        )
        .await;
    }
}

async fn run_hook(
    run: &PodRun,
    hook: &LifecycleHandler,
    container: &Container,
    launch: &Launch,
    ip: std::net::Ipv4Addr,
) -> Result<(), String> {
    if let Some(sleep) = &hook.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0).unsigned_abs())).await;
        return Ok(());
    }
    if let Some(http) = &hook.http_get {
        let port = probe::resolve_port(&http.port, container)?;
        return probe::http_get(ip, port, http.path.as_deref().unwrap_or("/"), &[]).await;
    }
    if let Some(exec) = &hook.exec {
        let launch = Launch {
            argv: exec.command.clone().unwrap_or_default(),
            ..launch.clone()
        };
        let mut child = launch.spawn(&run.ctx.agent).map_err(|e| e.to_string())?;
        return match child.wait().await {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("command {:?} exited with {s}", launch.argv)),
            Err(e) => Err(e.to_string()),
        };
    }
    Err("unsupported hook handler".into())
}

/// Startup, readiness and liveness probes of a running container.
async fn run_probes(
    run: Arc<PodRun>,
    idx: usize,
    container: Container,
    launch: Launch,
    liveness_failed: Arc<Notify>,
) {
    let ip = run.pod_ip().parse().unwrap_or(run.ctx.network.gateway());
    let agent = run.ctx.agent.clone();
    if let Some(startup) = &container.startup_probe {
        if !probe_until(&run, startup, &container, &launch, ip, "Startup").await {
            liveness_failed.notify_one();
            return;
        }
        run.update_container(Kind::Main, idx, |c| c.started = true);
    }
    let readiness = container.readiness_probe.clone();
    let liveness = container.liveness_probe.clone();
    if readiness.is_none() {
        run.update_container(Kind::Main, idx, |c| c.ready = true);
    }
    let start = tokio::time::Instant::now();
    let mut ready_streak = (0, 0);
    let mut live_failures = 0;
    let mut next_ready = start + secs(readiness.as_ref().and_then(|p| p.initial_delay_seconds));
    let mut next_live = start + secs(liveness.as_ref().and_then(|p| p.initial_delay_seconds));
    loop {
        let wake = match (&readiness, &liveness) {
            (Some(_), Some(_)) => next_ready.min(next_live),
            (Some(_), None) => next_ready,
            (None, Some(_)) => next_live,
            (None, None) => return,
        };
        tokio::time::sleep_until(wake).await;
        let now = tokio::time::Instant::now();
        if let Some(p) = &readiness
            && now >= next_ready
        {
            let ok = probe::check(p, ip, &container, &launch, &agent).await;
            let (successes, failures) = &mut ready_streak;
            if ok.is_ok() {
                *successes += 1;
                *failures = 0;
                if *successes >= p.success_threshold.unwrap_or(1) {
                    run.update_container(Kind::Main, idx, |c| c.ready = true);
                }
            } else {
                *failures += 1;
                *successes = 0;
                if *failures >= p.failure_threshold.unwrap_or(3) {
                    run.update_container(Kind::Main, idx, |c| c.ready = false);
                }
                if let Err(e) = ok {
                    run.event(
                        EventType::Warning,
                        "Unhealthy",
                        format!("Readiness probe failed: {e}"),
                    )
                    .await;
                }
            }
            next_ready = now + secs(Some(p.period_seconds.unwrap_or(10)));
        }
        if let Some(p) = &liveness
            && now >= next_live
        {
            match probe::check(p, ip, &container, &launch, &agent).await {
                Ok(()) => live_failures = 0,
                Err(e) => {
                    live_failures += 1;
                    run.event(
                        EventType::Warning,
                        "Unhealthy",
                        format!("Liveness probe failed: {e}"),
                    )
                    .await;
                    if live_failures >= p.failure_threshold.unwrap_or(3) {
                        liveness_failed.notify_one();
                        return;
                    }
                }
            }
            next_live = now + secs(Some(p.period_seconds.unwrap_or(10)));
        }
    }
}

/// Runs a startup probe until it succeeds (`true`) or fails too often.
async fn probe_until(
    run: &PodRun,
    p: &k8s_openapi::api::core::v1::Probe,
    container: &Container,
    launch: &Launch,
    ip: std::net::Ipv4Addr,
    what: &str,
) -> bool {
    tokio::time::sleep(secs(p.initial_delay_seconds)).await;
    let mut failures = 0;
    loop {
        match probe::check(p, ip, container, launch, &run.ctx.agent).await {
            Ok(()) => return true,
            Err(e) => {
                failures += 1;
                run.event(
                    EventType::Warning,
                    "Unhealthy",
                    format!("{what} probe failed: {e}"),
                )
                .await;
                if failures >= p.failure_threshold.unwrap_or(3) {
                    return false;
                }
            }
        }
        tokio::time::sleep(secs(Some(p.period_seconds.unwrap_or(10)))).await;
    }
}

fn secs(s: Option<i32>) -> Duration {
    Duration::from_secs(s.unwrap_or(0).max(0).unsigned_abs().into())
}
