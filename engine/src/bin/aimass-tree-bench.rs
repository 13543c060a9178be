//! Tree-ensemble benchmark: our ONNX-ML tree operators against onnxruntime
//! (through the zoo's Python environment), on the same models, in the same
//! run, for 1, 256 and 4,096 rows: one thread each, and every CPU each for
//! 1,024 rows or more (ours splits such batches over the CPUs, onnxruntime
//! gets as many intra-op threads). Rows cycle through the reference's
//! inputs, so a reference of many rows makes the rows take different
//! paths. Prints the speed ratio (onnxruntime time / ours: above 1 means
//! faster than onnxruntime).
//!
//! `cargo run --release -p aimass-engine --bin aimass-tree-bench`, or
//! `make bench-trees` for the deep ensembles of `bench/models.py`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use aimass_engine::tensor::{Tensor, TensorData};
use aimass_engine::{Backend, TractBackend};
use anyhow::{Context, Result};
use clap::Parser;
use serde_json::Value;

/// Our tree operators against onnxruntime.
#[derive(Debug, Parser)]
struct Args {
    /// Zoo models.
    #[arg(long, value_delimiter = ',', default_values_t = [
        "decision_tree_multiclass", "random_forest_classifier", "random_forest_regressor", "extra_trees_regressor",
        "gbdt_classifier", "gbdt_multiclass", "gbdt_regressor", "hist_gbdt_classifier_missing",
        "xgboost_classifier_missing", "xgboost_regressor", "lightgbm_classifier", "lightgbm_regressor",
    ].map(String::from))]
    models: Vec<String>,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 256, 4096])]
    rows: Vec<usize>,
    /// Seconds of timed runs per measurement.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// The zoo directory.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/zoo/models"))]
    zoo: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = Command::new("bash")
        .arg(repo.join("scripts/zoo-venv.sh"))
        .output()?;
    anyhow::ensure!(
        venv.status.success(),
        "cannot create the zoo's Python environment"
    );
    let python = PathBuf::from(String::from_utf8(venv.stdout)?.trim()).join("bin/python");
    println!(
        "{:<30} {:>5} {:>14} {:>14} {:>8}",
        "model", "rows", "ours µs/run", "ort µs/run", "ratio"
    );
    for model in &args.models {
        for &rows in &args.rows {
            let onnx = args.zoo.join(format!("{model}.onnx"));
            let reference = args.zoo.join(format!("{model}.json"));
            let ours =
                ours(&onnx, &reference, rows, args.seconds).with_context(|| model.clone())?;
            let out = Command::new(&python)
                .arg(repo.join("tests/zoo/ort_bench.py"))
                .args([&onnx, &reference])
                .args([rows.to_string(), args.seconds.to_string()])
                .arg(ort_threads(rows).to_string())
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let ort: f64 = String::from_utf8(out.stdout)?.trim().parse()?;
            println!(
                "{model:<30} {rows:>5} {:>14.2} {:>14.2} {:>8.2}",
                ours * 1e6,
                ort * 1e6,
                ort / ours
            );
        }
    }
    Ok(())
}

/// onnxruntime's intra-op threads for a batch of `rows`: as many as ours
/// uses (every CPU from 1,024 rows).
fn ort_threads(rows: usize) -> usize {
    if rows >= 1024 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    }
}

/// Mean seconds per run of our engine (one thread below 1,024 rows).
fn ours(onnx: &PathBuf, reference: &PathBuf, rows: usize, seconds: f64) -> Result<f64> {
    let backend = TractBackend::load(&std::fs::read(onnx)?).map_err(|e| anyhow::anyhow!("{e}"))?;
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(reference)?)?;
    let input = &reference["inputs"][0];
    let width = input["shape"][1].as_u64().context("shape")? as usize;
    let data: Vec<f32> = input["data"]
        .as_array()
        .context("data")?
        .iter()
        .map(|v| v.as_f64().map_or(f32::NAN, |x| x as f32))
        .cycle()
        .take(rows * width)
        .collect();
    let tensor = Tensor::new(vec![rows, width], TensorData::Fp32(data)).context("tensor")?;
    for _ in 0..50 {
        backend
            .run(vec![tensor.clone()])
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let (mut n, start) = (0u64, Instant::now());
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        backend
            .run(vec![tensor.clone()])
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        n += 1;
    }
    Ok(start.elapsed().as_secs_f64() / n as f64)
}
