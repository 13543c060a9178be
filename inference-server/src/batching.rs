//! Continuous batching: requests wait in a bounded queue; worker threads
//! (off the async runtime) take the first waiting request at once, join to
//! it the others of the same shape that queued while the workers were busy,
//! up to the batch size (waiting for more only when a queue delay is set),
//! run the model once, and hand each request its rows of the outputs. A
//! lone request is never held for company.
//!
//! A request the model answers in less than the hand-off to a worker thread
//! costs (the model's cost per row, measured at load, times its rows, under
//! `inline_below`) runs on the thread that decoded it instead, in place:
//! for a small tree ensemble this halves a lone caller's latency.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::metrics::Metrics;
use aimass_engine::tensor::Tensor;
use aimass_engine::{Backend, EngineError};

/// How requests are batched.
#[derive(Clone, Copy, Debug)]
pub struct BatchingConfig {
    /// Most rows per model run.
    pub max_batch_size: usize,
    /// Longest a request waits for others; zero takes only those already
    /// queued.
    pub max_queue_delay: Duration,
    /// Requests that may wait.
    pub queue_capacity: usize,
    /// Worker threads running the model.
    pub workers: usize,
    /// Requests the model answers quicker than this run in place, not on a
    /// worker (only without a queue delay).
    pub inline_below: Duration,
}

/// What a request gets back.
pub type Reply = Result<Vec<Tensor>, EngineError>;

/// A request waiting for the model.
struct Job {
    inputs: Vec<Tensor>,
    rows: usize,
    enqueued: Instant,
    reply: oneshot::Sender<Reply>,
}

impl Job {
    /// Whether `other` can share a model run with this job.
    fn joins(&self, other: &Job) -> bool {
        self.inputs.len() == other.inputs.len()
            && self
                .inputs
                .iter()
                .zip(&other.inputs)
                .all(|(a, b)| a.stackable_with(b))
    }
}

/// Why a request was not queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full; the client should retry later.
    #[error("the request queue is full ({0} requests waiting); retry later")]
    QueueFull(usize),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    Closed,
}

/// The queue in front of the model.
pub struct Batcher {
    queue: SyncSender<Job>,
    capacity: usize,
    metrics: Arc<Metrics>,
    backend: Arc<dyn Backend>,
    /// Most rows a request may have to run in place; 0: none does.
    inline_rows: usize,
}

impl Batcher {
    /// Starts the worker threads.
    pub fn start(backend: Arc<dyn Backend>, config: BatchingConfig, metrics: Arc<Metrics>) -> Self {
        let (queue, receiver) = sync_channel::<Job>(config.queue_capacity);
        let receiver = Arc::new(Mutex::new(receiver));
        let merge = !backend.batch_dependent() && config.max_batch_size > 1;
        for i in 0..config.workers.max(1) {
            let worker = Worker {
                backend: Arc::clone(&backend),
                receiver: Arc::clone(&receiver),
                config,
                merge,
                metrics: Arc::clone(&metrics),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("inference-{i}"))
                .spawn(move || worker.run());
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start an inference worker");
            }
        }
        Self {
            queue,
            capacity: config.queue_capacity,
            inline_rows: inline_rows(backend.row_cost(), &config),
            metrics,
            backend,
        }
    }

    /// Whether a request of `rows` runs in place ([`Batcher::run_here`])
    /// rather than queued.
    pub fn runs_in_place(&self, rows: usize) -> bool {
        rows <= self.inline_rows
    }

    /// Runs a request on this thread (a panic in the model fails it only,
    /// counted).
    pub fn run_here(&self, inputs: Vec<Tensor>, rows: usize) -> Reply {
        let started = Instant::now();
        let reply = run_caught(&*self.backend, &self.metrics, inputs);
        self.metrics.batch_rows.observe(rows as f64);
        self.metrics
            .compute_seconds
            .observe(started.elapsed().as_secs_f64());
        reply
    }

    /// Queues a request; the receiver resolves with its outputs.
    pub fn submit(
        &self,
        inputs: Vec<Tensor>,
        rows: usize,
    ) -> Result<oneshot::Receiver<Reply>, SubmitError> {
        let (reply, receiver) = oneshot::channel();
        let job = Job {
            inputs,
            rows,
            enqueued: Instant::now(),
            reply,
        };
        // Counted before sending, so a worker's decrement never comes first.
        self.metrics.queue_depth.inc();
        let refused = match self.queue.try_send(job) {
            Ok(()) => return Ok(receiver),
            Err(TrySendError::Full(_)) => SubmitError::QueueFull(self.capacity),
            Err(TrySendError::Disconnected(_)) => SubmitError::Closed,
        };
        self.metrics.queue_depth.dec();
        Err(refused)
    }
}

struct Worker {
    backend: Arc<dyn Backend>,
    receiver: Arc<Mutex<Receiver<Job>>>,
    config: BatchingConfig,
    merge: bool,
    metrics: Arc<Metrics>,
}

impl Worker {
    fn run(self) {
        let mut carried: Option<Job> = None;
        loop {
            let Some(batch) = self.gather(&mut carried) else {
                return;
            };
            self.execute(batch);
        }
    }

    fn take(&self, job: Job) -> Option<Job> {
        self.metrics.queue_depth.dec();
        // A request whose client gave up (timeout, disconnect) is not run.
        (!job.reply.is_closed()).then_some(job)
    }

    /// The next batch; `None` when the queue is closed and empty.
    fn gather(&self, carried: &mut Option<Job>) -> Option<Vec<Job>> {
        let receiver = self.receiver.lock().unwrap_or_else(|p| p.into_inner());
        let first = loop {
            let next = match carried.take() {
                Some(job) => job,
                None => {
                    let job = receiver.recv().ok()?;
                    match self.take(job) {
                        Some(job) => job,
                        None => continue,
                    }
                }
            };
            break next;
        };
        let deadline = first.enqueued + self.config.max_queue_delay;
        let mut rows = first.rows;
        let mut batch = vec![first];
        while self.merge && rows < self.config.max_batch_size {
            let wait = deadline.saturating_duration_since(Instant::now());
            let job = match receiver.recv_timeout(wait) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            };
            let Some(job) = self.take(job) else { continue };
            if rows + job.rows > self.config.max_batch_size || !batch[0].joins(&job) {
                *carried = Some(job);
                break;
            }
            rows += job.rows;
            batch.push(job);
        }
        Some(batch)
    }

    /// Runs the model; a panic in it fails this run only (counted), and the
    /// worker goes on with the next batch.
    fn run_model(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, EngineError> {
        run_caught(&*self.backend, &self.metrics, inputs)
    }

    fn execute(&self, batch: Vec<Job>) {
        let started = Instant::now();
        for job in &batch {
            self.metrics
                .queue_seconds
                .observe(started.duration_since(job.enqueued).as_secs_f64());
        }
        let rows: Vec<usize> = batch.iter().map(|j| j.rows).collect();
        self.metrics
            .batch_rows
            .observe(rows.iter().sum::<usize>() as f64);
        if batch.len() == 1 {
            let job = batch.into_iter().next().map(|j| (j.inputs, j.reply));
            if let Some((inputs, reply)) = job {
                let result = self.run_model(inputs);
                self.metrics
                    .compute_seconds
                    .observe(started.elapsed().as_secs_f64());
                let _ = reply.send(result);
            }
            return;
        }
        let (inputs, replies): (Vec<Vec<Tensor>>, Vec<_>) =
            batch.into_iter().map(|j| (j.inputs, j.reply)).unzip();
        let joined: Result<Vec<Tensor>, EngineError> = (0..inputs[0].len())
            .map(|i| {
                let parts: Vec<&Tensor> = inputs.iter().map(|req| &req[i]).collect();
                Tensor::concat(&parts).map_err(|e| EngineError::Run(e.to_string()))
            })
            .collect();
        let result = joined.and_then(|joined| self.run_model(joined));
        self.metrics
            .compute_seconds
            .observe(started.elapsed().as_secs_f64());
        match result.and_then(|outputs| split(outputs, &rows)) {
            Ok(per_request) => {
                for (reply, outputs) in replies.into_iter().zip(per_request) {
                    let _ = reply.send(Ok(outputs));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(EngineError::Run(message.clone())));
                }
            }
        }
    }
}

/// Runs the model; a panic in it fails this run only, and is counted.
fn run_caught(backend: &dyn Backend, metrics: &Metrics, inputs: Vec<Tensor>) -> Reply {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| backend.run(inputs))).unwrap_or_else(
        |_| {
            metrics.panics.with_label_values(&["worker"]).inc();
            Err(EngineError::Run("the model run failed unexpectedly".into()))
        },
    )
}

/// Most rows a request may have to run in place: those the model answers
/// within `inline_below`, at its measured cost per row; none when the cost
/// is unknown or a queue delay asks for batches.
fn inline_rows(row_cost: Option<Duration>, config: &BatchingConfig) -> usize {
    match row_cost {
        Some(cost) if config.max_queue_delay.is_zero() && cost < config.inline_below => {
            usize::try_from(config.inline_below.as_nanos() / cost.as_nanos().max(1))
                .unwrap_or(usize::MAX)
        }
        _ => 0,
    }
}

/// Splits each batched output back into the requests' rows.
fn split(outputs: Vec<Tensor>, rows: &[usize]) -> Result<Vec<Vec<Tensor>>, EngineError> {
    let mut per_request: Vec<Vec<Tensor>> = rows
        .iter()
        .map(|_| Vec::with_capacity(outputs.len()))
        .collect();
    for output in outputs {
        let pieces = output
            .split(rows)
            .map_err(|e| EngineError::Run(e.to_string()))?;
        for (request, piece) in per_request.iter_mut().zip(pieces) {
            request.push(piece);
        }
    }
    Ok(per_request)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use aimass_engine::tensor::{DataType, TensorData};
    use aimass_engine::{Signature, TensorSpec};

    /// Doubles its input and records the batch sizes it saw.
    struct Doubler {
        signature: Signature,
        runs: Mutex<Vec<usize>>,
        delay: Duration,
        dependent: bool,
        calls: AtomicUsize,
    }

    impl Doubler {
        fn new(delay: Duration, dependent: bool) -> Arc<Self> {
            let spec = |name: &str| TensorSpec {
                name: name.into(),
                datatype: DataType::Fp32,
                shape: vec![-1, 2],
            };
            Arc::new(Self {
                signature: Signature {
                    inputs: vec![spec("x")],
                    outputs: vec![spec("y")],
                    on_request: 0,
                },
                runs: Mutex::new(Vec::new()),
                delay,
                dependent,
                calls: AtomicUsize::new(0),
            })
        }
    }

    impl Backend for Doubler {
        fn signature(&self) -> &Signature {
            &self.signature
        }
        fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, EngineError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.delay);
            let x = &inputs[0];
            self.runs.lock().unwrap().push(x.rows());
            let TensorData::Fp32(v) = &x.data else {
                unreachable!()
            };
            Ok(vec![
                Tensor::new(
                    x.shape.clone(),
                    TensorData::Fp32(v.iter().map(|a| a * 2.0).collect()),
                )
                .unwrap(),
            ])
        }
        fn batch_dependent(&self) -> bool {
            self.dependent
        }
    }

    fn rows(n: usize, value: f32) -> Vec<Tensor> {
        vec![Tensor::new(vec![n, 2], TensorData::Fp32(vec![value; n * 2])).unwrap()]
    }

    fn config(max: usize, delay_ms: u64, capacity: usize) -> BatchingConfig {
        BatchingConfig {
            max_batch_size: max,
            max_queue_delay: Duration::from_millis(delay_ms),
            queue_capacity: capacity,
            workers: 1,
            inline_below: Duration::from_micros(50),
        }
    }

    #[test]
    fn only_requests_cheaper_than_a_hand_off_run_in_place() {
        let quick = Some(Duration::from_micros(5));
        let no_delay = config(8, 0, 16);
        assert_eq!(inline_rows(quick, &no_delay), 10, "50 µs of 5 µs rows");
        assert_eq!(inline_rows(Some(Duration::from_micros(80)), &no_delay), 0);
        assert_eq!(inline_rows(None, &no_delay), 0, "cost unknown");
        assert_eq!(
            inline_rows(quick, &config(8, 1, 16)),
            0,
            "a delay asks for batches"
        );
        let off = BatchingConfig {
            inline_below: Duration::ZERO,
            ..no_delay
        };
        assert_eq!(inline_rows(quick, &off), 0);
    }

    /// The doubler with a measured cost per row.
    struct Measured(Arc<Doubler>);

    impl Backend for Measured {
        fn signature(&self) -> &Signature {
            self.0.signature()
        }
        fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, EngineError> {
            self.0.run(inputs)
        }
        fn batch_dependent(&self) -> bool {
            false
        }
        fn row_cost(&self) -> Option<Duration> {
            Some(Duration::from_micros(10))
        }
    }

    #[tokio::test]
    async fn a_cheap_request_runs_in_place_and_a_large_one_is_queued() {
        let doubler = Doubler::new(Duration::ZERO, false);
        let m = metrics();
        let batcher = Batcher::start(
            Arc::new(Measured(Arc::clone(&doubler))),
            config(64, 0, 16),
            Arc::clone(&m),
        );
        assert!(batcher.runs_in_place(5) && !batcher.runs_in_place(6));
        let out = batcher.run_here(rows(1, 3.0), 1).unwrap();
        assert_eq!(out[0].data, TensorData::Fp32(vec![6.0, 6.0]));
        let queued = batcher
            .submit(rows(6, 1.0), 6)
            .unwrap()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(queued[0].rows(), 6);
        assert_eq!(*doubler.runs.lock().unwrap(), [1, 6]);
        assert_eq!(m.batch_rows.get_sample_count(), 2, "both runs are counted");
    }

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new("m", "1").unwrap())
    }

    #[tokio::test]
    async fn concurrent_requests_share_a_run_and_get_their_own_rows() {
        let backend = Doubler::new(Duration::ZERO, false);
        let batcher = Batcher::start(backend.clone(), config(8, 200, 16), metrics());
        let receivers: Vec<_> = (0..4)
            .map(|i| batcher.submit(rows(2, i as f32), 2).unwrap())
            .collect();
        for (i, rx) in receivers.into_iter().enumerate() {
            let out = rx.await.unwrap().unwrap();
            assert_eq!(out[0].data, TensorData::Fp32(vec![i as f32 * 2.0; 4]));
        }
        assert_eq!(*backend.runs.lock().unwrap(), vec![8], "one run of 8 rows");
    }

    #[tokio::test]
    async fn a_lone_request_runs_at_once_and_those_queued_meanwhile_share_the_next_run() {
        let backend = Doubler::new(Duration::from_millis(200), false);
        let batcher = Batcher::start(backend.clone(), config(8, 0, 16), metrics());
        let lone = batcher.submit(rows(1, 1.0), 1).unwrap();
        // The worker took it alone, with room for 7 more rows.
        while backend.calls.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let queued: Vec<_> = (0..3)
            .map(|i| batcher.submit(rows(1, i as f32), 1).unwrap())
            .collect();
        lone.await.unwrap().unwrap();
        for (i, rx) in queued.into_iter().enumerate() {
            let out = rx.await.unwrap().unwrap();
            assert_eq!(out[0].data, TensorData::Fp32(vec![i as f32 * 2.0; 2]));
        }
        assert_eq!(*backend.runs.lock().unwrap(), vec![1, 3]);
    }

    #[tokio::test]
    async fn batch_dependent_models_never_merge_requests() {
        let backend = Doubler::new(Duration::ZERO, true);
        let batcher = Batcher::start(backend.clone(), config(8, 200, 16), metrics());
        let receivers: Vec<_> = (0..3)
            .map(|_| batcher.submit(rows(1, 1.0), 1).unwrap())
            .collect();
        for rx in receivers {
            rx.await.unwrap().unwrap();
        }
        assert_eq!(*backend.runs.lock().unwrap(), vec![1, 1, 1]);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_abandoned_requests_are_skipped() {
        let backend = Doubler::new(Duration::from_millis(300), false);
        let metrics = metrics();
        let batcher = Batcher::start(backend.clone(), config(1, 0, 1), Arc::clone(&metrics));
        let running = batcher.submit(rows(1, 1.0), 1).unwrap();
        // Let the worker pick the first request up; the queue then holds one.
        while backend.calls.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let abandoned = batcher.submit(rows(1, 2.0), 1).unwrap();
        assert_eq!(
            batcher.submit(rows(1, 3.0), 1).unwrap_err(),
            SubmitError::QueueFull(1)
        );
        drop(abandoned);
        running.await.unwrap().unwrap();
        // The worker takes the abandoned request off the queue and drops it.
        while metrics.queue_depth.get() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let later = batcher.submit(rows(1, 4.0), 1).unwrap();
        later.await.unwrap().unwrap();
        assert_eq!(
            backend.calls.load(Ordering::SeqCst),
            2,
            "the abandoned request never ran"
        );
    }

    #[tokio::test]
    async fn a_panicking_model_run_fails_that_request_and_the_worker_lives_on() {
        struct Panicky(Signature);
        impl Backend for Panicky {
            fn signature(&self) -> &Signature {
                &self.0
            }
            fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, EngineError> {
                match &inputs[0].data {
                    TensorData::Fp32(v) if v[0] < 0.0 => panic!("a bug in an operator"),
                    _ => Ok(inputs),
                }
            }
            fn batch_dependent(&self) -> bool {
                true
            }
        }
        let signature = Doubler::new(Duration::ZERO, false).signature.clone();
        let metrics = metrics();
        let batcher = Batcher::start(
            Arc::new(Panicky(signature)),
            config(1, 0, 4),
            Arc::clone(&metrics),
        );
        let failed = batcher.submit(rows(1, -1.0), 1).unwrap().await.unwrap();
        assert!(matches!(failed, Err(EngineError::Run(_))), "{failed:?}");
        assert_eq!(metrics.panics.with_label_values(&["worker"]).get(), 1);
        let answered = batcher.submit(rows(1, 2.0), 1).unwrap().await.unwrap();
        assert!(answered.is_ok(), "the worker stopped after a panic");
    }
}
