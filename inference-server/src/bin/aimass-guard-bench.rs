//! What the security layer costs, measured in one run against a baseline:
//! the same model served without the layer, then with token authentication
//! and RBAC authorisation answered from cache (the API server is a stand-in
//! on loopback) and a metadata audit record per call, then the same with an
//! API key instead of a token, all at a fixed arrival rate. Then the audit writer alone, records per second. Prints
//! figures and ratios, asserts nothing.
//!
//! `cargo run --release -p aimass-inference-server --bin aimass-guard-bench`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aimass_audit::{Actor, AuditLog, Record, Target};
use aimass_inference_server::config::Config;
use aimass_inference_server::http::{Service, handle_api};
use aimass_inference_server::security::{
    ApiKeys, Authorizer, Enforcement, Guard, TokenAuthenticator, stub,
};
use aimass_inference_server::server;
use anyhow::{Context, Result};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};

/// Measures the security layer's overhead and the audit writer's rate.
#[derive(Debug, Parser)]
struct Args {
    /// Zoo model served.
    #[arg(long, default_value = "gbdt_classifier")]
    model: String,
    /// Arrival rate, requests per second.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Records written in the audit writer measurement.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// The zoo directory.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/zoo/models"))]
    zoo: PathBuf,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("aimass-guard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = Config::try_parse_from([
        "aimass-inference-server",
        "--model-uri",
        &args
            .zoo
            .join(format!("{}.onnx", args.model))
            .to_string_lossy(),
        "--model-name",
        "fraud",
    ])?;
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(
        args.zoo.join(format!("{}.json", args.model)),
    )?)?;
    let input = &reference["inputs"][0];
    let body = json!({"inputs": [{"name": input["name"], "shape": input["shape"], "datatype": input["datatype"], "data": input["data"]}]}).to_string();

    let open = Arc::new(server::load(&config).await?);
    open.ready.store(true, std::sync::atomic::Ordering::Release);
    let (key, guarded) = guarded(&config, &dir).await?;

    println!(
        "{} at {} req/s for {} s each",
        args.model, args.rate, args.seconds
    );
    let token = "a-bench-token";
    let base = paced(&open, &body, token, &args).await?;
    let with = paced(&guarded, &body, token, &args).await?;
    let keyed = paced(&guarded, &body, &key, &args).await?;
    println!("{:<34} {:>9} {:>9} {:>7}", "", "p50 ms", "p99 ms", "errors");
    for (what, run) in [
        ("baseline (no layer)", base),
        ("authn + authz (cached) + audit", with),
        ("API key + authz (cached) + audit", keyed),
    ] {
        println!("{what:<34} {:>9.3} {:>9.3} {:>7}", run.0, run.1, run.2);
    }
    for (what, run) in [("token", with), ("API key", keyed)] {
        println!(
            "{what}: added p99 {:.3} ms (ratio {:.2}); added p50 {:.3} ms",
            run.1 - base.1,
            run.1 / base.1,
            run.0 - base.0
        );
    }
    audit_writer(&dir, args.records)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A server with every gate and the trail (writing under `dir`), against a
/// stub API server that approves every token and call; and an API key it
/// accepts.
async fn guarded(config: &Config, dir: &std::path::Path) -> Result<(String, Arc<Service>)> {
    let (_, client) = stub::serve(
        Arc::new(|path: &str, body: &Value| {
            let mut answer = body.clone();
            answer["status"] = if path.ends_with("/tokenreviews") {
                json!({"authenticated": true, "user": {"username": "system:serviceaccount:payments:bench"}, "audiences": ["aimass"]})
            } else {
                json!({"allowed": true})
            };
            (201, answer)
        }),
        Arc::new(|| Duration::ZERO),
    )
    .await?;
    let mut guarded = server::load(config).await?;
    let timeout = Duration::from_secs(2);
    let (key, api_keys) = bench_api_key()?;
    guarded.enforcement = Some(Enforcement {
        guard: Some(Guard {
            authn: TokenAuthenticator::new(client.clone(), "aimass".into(), timeout),
            authz: Authorizer::new(client, "risk".into(), "fraud".into(), timeout),
            api_keys: Some(api_keys),
            limits: None,
            per_address: None,
        }),
        audit: Some(AuditLog::open(&dir.join("calls.jsonl"), vec![7; 32])?),
        target: Target {
            namespace: "risk".into(),
            model: "fraud".into(),
            version: "1".into(),
            ..Target::default()
        },
        fail_open: false,
        payload: None,
        metrics: Arc::clone(&guarded.metrics),
        warm_up_key: None,
    });
    guarded.admin_separate = true;
    guarded
        .ready
        .store(true, std::sync::atomic::Ordering::Release);
    Ok((key, Arc::new(guarded)))
}

/// The audit writer alone: `records` appends, against the 5,000/s goal.
fn audit_writer(dir: &std::path::Path, records: u64) -> Result<()> {
    let log = AuditLog::open(&dir.join("writer.jsonl"), vec![9; 32])?;
    let record = Record {
        actor: Actor {
            user: "system:serviceaccount:payments:bench".into(),
            method: "ServiceAccountToken".into(),
            ..Actor::default()
        },
        operation: "POST /v2/models/fraud/infer".into(),
        status: 200,
        ..Record::default()
    };
    let started = Instant::now();
    for _ in 0..records {
        log.append(record.clone())?;
    }
    let rate = records as f64 / started.elapsed().as_secs_f64();
    println!(
        "audit writer: {rate:.0} records/s ({:.1}x the 5,000/s goal)",
        rate / 5000.0
    );
    Ok(())
}

/// A key of one ApiClient, and the key set that accepts it.
fn bench_api_key() -> Result<(String, Arc<ApiKeys>)> {
    let (key, client) = stub::api_client("bench", None)?;
    let keys = Arc::new(ApiKeys::default());
    keys.replace([&client]);
    Ok((key, keys))
}

/// p50 and p99 latency in ms, and errors, of calls arriving at `rate`,
/// each with `bearer` as its credential.
async fn paced(
    service: &Arc<Service>,
    body: &str,
    bearer: &str,
    args: &Args,
) -> Result<(f64, f64, usize)> {
    let total = u64::from(args.rate) * args.seconds;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / args.rate);
    let mut calls = Vec::new();
    for _ in 0..total {
        tick.tick().await;
        let service = Arc::clone(service);
        let body = body.to_owned();
        let authorization = format!("Bearer {bearer}");
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        calls.push(tokio::spawn(async move {
            let request = hyper::Request::post("/v2/models/fraud/infer")
                .header("authorization", authorization)
                .body(Full::new(Bytes::from(body)))?;
            let started = Instant::now();
            let response = handle_api(service, request, peer, None).await?;
            let ok = response.status().is_success();
            let _ = response.into_body().collect().await;
            Ok::<_, anyhow::Error>((started.elapsed(), ok))
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for call in calls {
        let (latency, ok) = call.await.context("call")??;
        latencies.push(latency.as_secs_f64() * 1000.0);
        errors += usize::from(!ok);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok((at(0.5), at(0.99), errors))
}
