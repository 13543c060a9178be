//! Benchmark of the inference server against its own engine, measured in the
//! same run: for each zoo model and batch size, the in-process engine's
//! throughput (the baseline), then the server's over loopback HTTP with many
//! keep-alive connections, its p50/p99 latency at peak and at half of peak
//! load, and the time from start to ready. Prints ratios, asserts nothing.
//! A model named `a+b` is an ensemble of zoo models `a` and `b` (an equal
//! weighted sum of their `probabilities`), served from one process: run it
//! with `a` and `b` alone to compare its latency with its members'.
//!
//! `cargo run --release -p aimass-inference-server --bin aimass-bench -- --help`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aimass_engine::ensemble::{Ensemble, Member, Rule};
use aimass_engine::tensor::{Tensor, TensorData};
use aimass_engine::{Backend, TractBackend};
use aimass_inference_server::config::Config;
use aimass_inference_server::server;
use anyhow::{Context, Result};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};

/// Measures the server against its engine on zoo models.
#[derive(Debug, Parser)]
struct Args {
    /// Zoo models (names in tests/zoo/models).
    #[arg(long, value_delimiter = ',', default_values_t = ["gbdt_classifier".to_owned(), "decision_tree_multiclass".to_owned(), "torch_mlp".to_owned()])]
    models: Vec<String>,
    /// Rows per request.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 64])]
    rows: Vec<usize>,
    /// Requests per measurement.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// The zoo directory.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/zoo/models"))]
    zoo: PathBuf,
}

fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    println!(
        "{:<26} {:>4} {:>12} {:>12} {:>7} {:>9} {:>9} {:>12} {:>9}",
        "model",
        "rows",
        "engine req/s",
        "server req/s",
        "ratio",
        "p50 ms",
        "p99 ms",
        "p99@50% ms",
        "ready ms"
    );
    for model in &args.models {
        for &rows in &args.rows {
            match measure(&args, model, rows) {
                Ok(line) => println!("{line}"),
                Err(e) => println!("{model:<26} {rows:>4} skipped: {e:#}"),
            }
        }
    }
    Ok(())
}

/// A request of `rows` rows built from the model's reference inputs.
fn inputs(reference: &Value, rows: usize) -> Result<(Vec<Tensor>, Value)> {
    let mut tensors = Vec::new();
    let mut json_inputs = Vec::new();
    for input in reference["inputs"].as_array().context("reference inputs")? {
        let shape: Vec<usize> = input["shape"]
            .as_array()
            .context("shape")?
            .iter()
            .filter_map(Value::as_u64)
            .map(|d| d as usize)
            .collect();
        let row_len: usize = shape[1..].iter().product();
        let data: Vec<f32> = input["data"]
            .as_array()
            .context("data")?
            .iter()
            .map(|v| v.as_f64().unwrap_or(0.0) as f32)
            .cycle()
            .take(rows * row_len)
            .collect();
        let mut request_shape = shape.clone();
        request_shape[0] = rows;
        json_inputs.push(json!({"name": input["name"], "shape": request_shape, "datatype": "FP32", "data": data}));
        tensors.push(Tensor::new(request_shape, TensorData::Fp32(data)).context("tensor")?);
    }
    Ok((tensors, json!({"inputs": json_inputs})))
}

fn measure(args: &Args, model: &str, rows: usize) -> Result<String> {
    let members: Vec<&str> = model.split('+').collect();
    let path = |member: &str| args.zoo.join(format!("{member}.onnx"));
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(
        args.zoo.join(format!("{}.json", members[0])),
    )?)?;
    if reference["inputs"][0]["datatype"] != "FP32" {
        anyhow::bail!("the bench sends FP32 inputs only");
    }
    let load_zoo = |member: &str| -> Result<Arc<dyn Backend>> {
        Ok(Arc::new(
            TractBackend::load(&std::fs::read(path(member))?)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ))
    };
    let label = |member: &str| member.replace('_', "-");
    let backend: Arc<dyn Backend> = match members.as_slice() {
        [one] => load_zoo(one)?,
        many => Arc::new(
            Ensemble::new(
                many.iter()
                    .map(|m| {
                        Ok(Member {
                            name: label(m),
                            backend: load_zoo(m)?,
                            weight: 1.0 / many.len() as f64,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
                Rule::WeightedSum,
                "probabilities",
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
    };
    let mut model_args: Vec<String> = Vec::new();
    match members.as_slice() {
        [one] => model_args.extend(["--model-uri".into(), path(one).display().to_string()]),
        many => {
            for m in many {
                model_args.extend([
                    "--member".into(),
                    format!("{}={}", label(m), path(m).display()),
                    "--member-weight".into(),
                    format!("{}={}", label(m), 1.0 / many.len() as f64),
                ]);
            }
            model_args.extend(["--combine".into(), "weighted-sum".into()]);
        }
    }
    let (tensors, body) = inputs(&reference, rows)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());

    // Baseline: the engine alone, one call per request, on as many threads
    // as the server runs the model on.
    let per_thread = args.requests / workers;
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let backend = Arc::clone(&backend);
            let tensors = tensors.clone();
            s.spawn(move || {
                for _ in 0..per_thread {
                    let _ = backend.run(tensors.clone());
                }
            });
        }
    });
    let engine_rps = (per_thread * workers) as f64 / started.elapsed().as_secs_f64();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let name = label(model).replace('+', "-");
        let mut config_args: Vec<&str> = vec!["aimass-inference-server"];
        config_args.extend(model_args.iter().map(String::as_str));
        config_args.extend([
            "--model-name",
            &name,
            "--address",
            "127.0.0.1",
            "--port",
            "0",
            "--max-batch-size",
            "64",
            "--max-queue-delay",
            "200",
        ]);
        let config = Config::try_parse_from(config_args)?;
        let started = Instant::now();
        let service = server::prepare(&config).await?;
        let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
        let listener = server::bind(SocketAddr::new(config.address, 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server::serve(service, server::Listeners::rest(listener), async move { let _ = stopped.await; }, Duration::from_secs(5)));
        let url = format!("/v2/models/{name}/infer");
        let body = Bytes::from(body.to_string());

        let (rps, mut latencies) = load(addr, &url, &body, args.connections, args.requests, None).await?;
        let (_, mut paced) = load(addr, &url, &body, args.connections, args.requests / 2, Some(rps / 2.0)).await?;
        let _ = stop.send(());
        let _ = serving.await;
        let p = |v: &mut Vec<f64>, q: f64| {
            v.sort_by(f64::total_cmp);
            v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or(f64::NAN) * 1000.0
        };
        Ok(format!(
            "{model:<26} {rows:>4} {engine_rps:>12.0} {rps:>12.0} {:>7.2} {:>9.3} {:>9.3} {:>12.3} {ready_ms:>9.1}",
            rps / engine_rps,
            p(&mut latencies, 0.5),
            p(&mut latencies, 0.99),
            p(&mut paced, 0.99),
        ))
    })
}

/// Sends `total` requests over `connections` keep-alive connections, paced
/// to `rate` requests per second when given; returns throughput and each
/// request's latency in seconds.
async fn load(
    addr: SocketAddr,
    url: &str,
    body: &Bytes,
    connections: usize,
    total: usize,
    rate: Option<f64>,
) -> Result<(f64, Vec<f64>)> {
    let per_connection = total / connections;
    let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (url, body) = (url.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut latencies = Vec::with_capacity(per_connection);
            // Spread paced connections over the interval.
            let mut next = Instant::now()
                + interval.map_or(Duration::ZERO, |i| i.mul_f64(c as f64 / connections as f64));
            for _ in 0..per_connection {
                if let Some(i) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += i;
                }
                let request = hyper::Request::post(url.as_str())
                    .header(hyper::header::HOST, "bench")
                    .body(Full::new(body.clone()))?;
                let sent = Instant::now();
                let response = sender.send_request(request).await?;
                let ok = response.status().is_success();
                response.into_body().collect().await?;
                anyhow::ensure!(ok, "the server answered with an error");
                latencies.push(sent.elapsed().as_secs_f64());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok((
        latencies.len() as f64 / started.elapsed().as_secs_f64(),
        latencies,
    ))
}
