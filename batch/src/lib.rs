//! Batch scoring: a ScoringJob's pods run the inference server's binary
//! with `score` (one shard of the data set, every version) and then
//! `report` (the shards' tallies merged into the report). The models run
//! in the very engine the server serves them with, so a row scores the same
//! in batch and online. The same reading computes a version's drift
//! baseline from a data set (`baseline`).
//!
//! Everything here runs in the tenant's namespace, under the tenant's
//! ServiceAccount, with the tenant's storage credentials as environment;
//! the operator only reads the one line the pods print.

pub mod baseline;
mod columns;
pub mod command;
mod distribution;
mod error;
mod io;
mod parquet;
pub mod report;
mod rows;
mod shard;
pub mod summary;

use aimass_crds::scoring::ScoringPlan;
use aimass_crds::v1alpha1::conditions::reasons;
use aimass_crds::v1alpha1::{DataFormat, ScoringReport};
use aimass_engine::tensor::DataType;
use aimass_engine::{Backend, TractBackend};
use aimass_storage::{Credentials, Location};

pub use error::Error;

use crate::columns::{Header, Roles};
use crate::summary::ShardSummary;

/// The name of shard `shard`'s output below the output prefix.
pub fn part_name(shard: u32, format: DataFormat) -> String {
    match format {
        DataFormat::Csv => format!("part-{shard:05}.csv"),
        DataFormat::Parquet => format!("part-{shard:05}.parquet"),
    }
}

/// The name of shard `shard`'s tallies below the output prefix.
fn summary_name(shard: u32) -> String {
    format!("shards/{shard:05}.json")
}

/// The report's name below the output prefix.
pub const REPORT_FILE: &str = "report.json";

/// The largest shard summary the report reads.
const SUMMARY_LIMIT: usize = 512 << 20;

/// How long reading a shard summary may take.
const SUMMARY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The rows of a data set, and its column names.
type Opened = (shard::Input<io::BlockingRead>, Vec<String>);

/// Opens the data set at `uri` (in `format`) for reading.
async fn open_input(uri: &str, format: DataFormat) -> Result<Opened, Error> {
    let unavailable = |message: String| Error::Refused {
        reason: reasons::DATASET_UNAVAILABLE,
        message,
    };
    let dataset = aimass_storage::open(uri, &Credentials::Environment)
        .map_err(|e| unavailable(e.to_string()))?;
    let handle = tokio::runtime::Handle::current();
    Ok(match format {
        DataFormat::Csv => {
            let stream = match dataset.stream().await {
                Ok(Some(stream)) => stream,
                Ok(None) => {
                    return Err(unavailable(format!(
                        "there is no data set at {}",
                        dataset.uri
                    )));
                }
                Err(e) => return Err(unavailable(e.to_string())),
            };
            let source = dataset.uri.clone();
            let reading = handle.clone();
            let lines = std::sync::Arc::new(std::sync::Mutex::new(io::Lines::default()));
            let counting = std::sync::Arc::clone(&lines);
            let (reader, names) = tokio::task::spawn_blocking(move || {
                let mut reader = csv::ReaderBuilder::new()
                    .flexible(true)
                    .from_reader(io::BlockingRead::new(reading, stream, counting));
                let names: Vec<String> = reader
                    .headers()
                    .map_err(|e| unavailable(format!("{source} has no readable CSV header: {e}")))?
                    .iter()
                    .map(str::to_owned)
                    .collect();
                Ok::<_, Error>((reader, names))
            })
            .await
            .map_err(|e| Error::Data(format!("the reading thread ended: {e}")))??;
            (shard::Input::Csv(reader, lines), names)
        }
        DataFormat::Parquet => {
            let Some(size) = dataset
                .size()
                .await
                .map_err(|e| unavailable(e.to_string()))?
            else {
                return Err(unavailable(format!(
                    "there is no data set at {}",
                    dataset.uri
                )));
            };
            let (batches, names) =
                parquet::Batches::open(handle.clone(), &dataset, size, shard::BATCH)
                    .await
                    .map_err(unavailable)?;
            (shard::Input::Parquet(batches), names)
        }
    })
}

/// Scores shard `shard` of `plan`: writes its outputs and its tallies.
pub async fn score_shard(plan: &ScoringPlan, shard: u32) -> Result<(), Error> {
    let output = open_output(plan)?;
    let handle = tokio::runtime::Handle::current();
    let (input, names) = open_input(&plan.dataset, plan.input_format()).await?;
    let header = Header::new(names)?;
    let roles = Roles::find(
        &header,
        plan.label_column.as_deref(),
        plan.segment_column.as_deref(),
        plan.id_column.as_deref(),
    )?;
    let mut versions = Vec::with_capacity(plan.versions.len());
    for scored in &plan.versions {
        let loading = Loading {
            uri: &scored.uri,
            sha256: Some(&scored.sha256),
            version: scored.version,
            max_bytes: plan.max_model_bytes,
            columns: &plan.columns,
            score: plan.score.as_ref(),
        };
        versions.push(load(&loading, &header, &roles).await?);
    }
    let format = plan.output_format();
    let part = output.child(&part_name(shard, format));
    let plan_owned = plan.clone();
    let summary = tokio::task::spawn_blocking(move || {
        let work = shard::Work {
            plan: &plan_owned,
            shard,
            header: &header,
            roles: &roles,
            versions: &versions,
        };
        shard::run(
            &handle,
            &work,
            input,
            format == DataFormat::Parquet,
            part.writer(),
        )
    })
    .await
    .map_err(|e| Error::Data(format!("the scoring thread ended: {e}")))??;
    let bytes = serde_json::to_vec(&summary).map_err(|e| Error::Data(e.to_string()))?;
    output.child(&summary_name(shard)).put(bytes).await?;
    Ok(())
}

/// Merges the shards' tallies into the report and writes `report.json`.
pub async fn report(plan: &ScoringPlan) -> Result<ScoringReport, Error> {
    let output = open_output(plan)?;
    let mut merged = ShardSummary::new(plan.versions.len());
    for shard in 0..plan.shards {
        let location = output.child(&summary_name(shard));
        let bytes = location
            .get_bounded(SUMMARY_LIMIT, SUMMARY_TIMEOUT)
            .await?
            .ok_or_else(|| {
                Error::Data(format!("shard {shard} left no tallies at {}", location.uri))
            })?;
        let summary: ShardSummary = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Data(format!("{} does not parse: {e}", location.uri)))?;
        merged.merge(&summary);
    }
    let numbers: Vec<i64> = plan.versions.iter().map(|v| v.version).collect();
    let report = report::build(
        &merged,
        &numbers,
        &plan.thresholds,
        plan.label_column.is_some(),
    );
    let bytes = serde_json::to_vec_pretty(&report).map_err(|e| Error::Data(e.to_string()))?;
    output.child(REPORT_FILE).put(bytes).await?;
    Ok(report)
}

fn open_output(plan: &ScoringPlan) -> Result<Location, Error> {
    aimass_storage::open(&plan.output, &Credentials::Environment).map_err(|e| Error::Refused {
        reason: reasons::OUTPUT_UNAVAILABLE,
        message: e.to_string(),
    })
}

/// A version to load, and how its inputs and score are read.
struct Loading<'a> {
    uri: &'a str,
    sha256: Option<&'a str>,
    version: i64,
    max_bytes: usize,
    columns: &'a [aimass_crds::v1alpha1::InputColumns],
    score: Option<&'a aimass_crds::v1alpha1::ScoreOutput>,
}

/// Fetches, checks and loads one version, and lays its inputs over the data.
async fn load(
    loading: &Loading<'_>,
    header: &Header,
    roles: &Roles,
) -> Result<shard::Version, Error> {
    let version = loading.version;
    let invalid = |message: String| Error::Refused {
        reason: reasons::ARTIFACT_INVALID,
        message: format!("version {version}: {message}"),
    };
    let bytes = aimass_engine::validation::fetch(loading.uri, loading.max_bytes)
        .await
        .map_err(invalid)?;
    if let Some(sha256) = loading.sha256 {
        aimass_storage::verify_sha256(&bytes, sha256).map_err(|e| invalid(e.to_string()))?;
    }
    let backend = tokio::task::spawn_blocking(move || TractBackend::load(&bytes))
        .await
        .map_err(|e| invalid(e.to_string()))?
        .map_err(|e| invalid(e.to_string()))?;
    let signature = backend.signature().clone();
    let layout = columns::layout(header, &signature, loading.columns, roles, version)?;
    let outputs = signature
        .outputs
        .iter()
        .map(|o| {
            let width = o
                .shape
                .iter()
                .skip(1)
                .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
                .product::<Option<usize>>();
            shard::Output {
                name: o.name.clone(),
                datatype: o.datatype,
                width,
            }
        })
        .collect::<Vec<_>>();
    let score = score_element(loading.score, &signature, &outputs, version)?;
    Ok(shard::Version {
        number: version,
        backend: Box::new(backend),
        layout,
        outputs,
        score,
    })
}

/// The output and element the report measures: as the spec says, or the
/// first floating-point output's last element.
fn score_element(
    score: Option<&aimass_crds::v1alpha1::ScoreOutput>,
    signature: &aimass_engine::Signature,
    outputs: &[shard::Output],
    version: i64,
) -> Result<(usize, usize), Error> {
    let numeric = |d: DataType| d != DataType::Bytes;
    match score {
        Some(score) => {
            let o = signature
                .outputs
                .iter()
                .position(|o| o.name == score.output && numeric(o.datatype))
                .ok_or_else(|| {
                    Error::invalid_spec(format!(
                        "spec.score.output names {:?}, which is not a numeric output of version {version}",
                        score.output
                    ))
                })?;
            let element = usize::try_from(score.index).unwrap_or(usize::MAX);
            match outputs[o].width {
                Some(width) if element < width => Ok((o, element)),
                width => Err(Error::invalid_spec(format!(
                    "spec.score.index {} is beyond output {:?} of version {version} ({} per row)",
                    score.index,
                    score.output,
                    width.map_or("a varying number".to_owned(), |w| w.to_string())
                ))),
            }
        }
        None => signature
            .outputs
            .iter()
            .position(|o| matches!(o.datatype, DataType::Fp32 | DataType::Fp64))
            .or_else(|| signature.outputs.iter().position(|o| numeric(o.datatype)))
            .map(|o| (o, outputs[o].width.unwrap_or(1).saturating_sub(1)))
            .ok_or_else(|| {
                Error::invalid_spec(format!(
                    "version {version} has no numeric output to measure; name one in spec.score"
                ))
            }),
    }
}
