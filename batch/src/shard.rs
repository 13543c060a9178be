//! One shard: every `shards`-th row of the data set, scored by every
//! version in batches, written out row by row and tallied. Runs on a
//! blocking thread; memory holds one batch, one output buffer and the
//! tallies, whatever the data set's size.

use std::fmt::Write as _;

use aimass_crds::scoring::ScoringPlan;
use aimass_engine::Backend;
use aimass_engine::tensor::{Tensor, TensorData};
use tokio::runtime::Handle;

use crate::Error;
use crate::columns::{Builder, Header, Layout, Roles};
use crate::report::Outcome;
use crate::summary::ShardSummary;

/// Rows scored together: the batch the tree operators are fastest with.
pub const BATCH: usize = 256;
/// Output bytes gathered before they are sent to the store.
const FLUSH_BYTES: usize = 4 << 20;
/// The longest segment value kept, in characters.
const SEGMENT_CHARS: usize = 128;

/// A version ready to score.
pub struct Version {
    /// Its number.
    pub number: i64,
    /// The loaded model.
    pub backend: Box<dyn Backend>,
    /// How its inputs are read from a row.
    pub layout: Layout,
    /// Its outputs: name and elements per row (`None` when not fixed).
    pub outputs: Vec<(String, Option<usize>)>,
    /// The output and element the report measures.
    pub score: (usize, usize),
}

/// Where rows come from and go to.
pub struct Streams<R: std::io::Read> {
    /// The data set, as CSV.
    pub reader: csv::Reader<R>,
    /// Its line numbers.
    pub lines: std::sync::Arc<std::sync::Mutex<crate::io::Lines>>,
    /// The shard's output.
    pub writer: aimass_storage::Writer,
}

/// Scores this shard's rows; returns its tallies once the output is
/// complete.
pub fn run<R: std::io::Read>(
    handle: &Handle,
    plan: &ScoringPlan,
    shard: u32,
    header: &Header,
    roles: &Roles,
    versions: &[Version],
    streams: Streams<R>,
) -> Result<ShardSummary, Error> {
    let Streams {
        mut reader,
        lines,
        mut writer,
    } = streams;
    let mut out = buffer();
    write_header(&mut out, header, roles, versions)?;
    let mut summary = ShardSummary::new(versions.len());
    let mut batch: Vec<csv::ByteRecord> = vec![csv::ByteRecord::new(); BATCH];
    let mut batch_lines = vec![0u64; BATCH];
    let mut scratch = csv::ByteRecord::new();
    let (mut filled, mut index) = (0usize, 0u64);
    let shards = u64::from(plan.shards.max(1));
    loop {
        let mine = index % shards == u64::from(shard);
        let record = if mine {
            &mut batch[filled]
        } else {
            &mut scratch
        };
        let more = reader
            .read_byte_record(record)
            .map_err(|e| Error::Data(format!("reading the data set: {e}")))?;
        if !more {
            break;
        }
        // Every record, so the count moves on and its window stays small.
        let inside = record.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
        // The reader feeds the count while it reads: never held across a read.
        let line = lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record_line(reader.position().byte(), inside);
        index += 1;
        if mine {
            batch_lines[filled] = line;
            filled += 1;
            if filled == BATCH {
                let rows = Rows {
                    records: &batch,
                    lines: &batch_lines,
                };
                score_batch(&rows, header, roles, versions, &mut summary, &mut out)?;
                filled = 0;
                flush(handle, &mut out, &mut writer, false)?;
            }
        }
    }
    let rows = Rows {
        records: &batch[..filled],
        lines: &batch_lines[..filled],
    };
    score_batch(&rows, header, roles, versions, &mut summary, &mut out)?;
    flush(handle, &mut out, &mut writer, true)?;
    handle.block_on(writer.finish())?;
    Ok(summary)
}

fn write_header(
    out: &mut csv::Writer<Vec<u8>>,
    header: &Header,
    roles: &Roles,
    versions: &[Version],
) -> Result<(), Error> {
    let mut names = vec!["line".to_owned()];
    for role in [roles.id, roles.label, roles.segment].into_iter().flatten() {
        names.extend(header.names().get(role).cloned());
    }
    for version in versions {
        for (name, width) in &version.outputs {
            match width {
                Some(w) if *w != 1 => {
                    names.extend((0..*w).map(|j| format!("v{}.{name}[{j}]", version.number)));
                }
                _ => names.push(format!("v{}.{name}", version.number)),
            }
        }
        names.push(format!("v{}.refused", version.number));
    }
    out.write_record(&names).map_err(csv_error)
}

/// What a row's label cell says: `1`/`true` bad, `0`/`false` good.
pub fn outcome(cell: &[u8]) -> Outcome {
    match std::str::from_utf8(cell).map(|s| s.trim().to_ascii_lowercase()) {
        Ok(s) if s == "1" || s == "true" || s == "1.0" => Outcome::Bad,
        Ok(s) if s == "0" || s == "false" || s == "0.0" => Outcome::Good,
        _ => Outcome::Unknown,
    }
}

/// A batch of rows and the lines they start on.
struct Rows<'a> {
    records: &'a [csv::ByteRecord],
    lines: &'a [u64],
}

fn score_batch(
    batch: &Rows<'_>,
    header: &Header,
    roles: &Roles,
    versions: &[Version],
    summary: &mut ShardSummary,
    out: &mut csv::Writer<Vec<u8>>,
) -> Result<(), Error> {
    let rows = batch.records;
    if rows.is_empty() {
        return Ok(());
    }
    let line = |r: usize| batch.lines.get(r).copied().unwrap_or(0);
    let outcomes: Vec<Option<Outcome>> = rows
        .iter()
        .map(|row| roles.label.map(|c| outcome(row.get(c).unwrap_or_default())))
        .collect();
    let segments: Vec<Option<String>> = rows
        .iter()
        .map(|row| {
            roles.segment.map(|c| {
                String::from_utf8_lossy(row.get(c).unwrap_or_default())
                    .chars()
                    .take(SEGMENT_CHARS)
                    .collect()
            })
        })
        .collect();
    for outcome in &outcomes {
        summary.count_row(*outcome);
    }
    // Per version: each row's outputs (or why it was refused).
    let mut answers: Vec<Vec<Result<usize, String>>> = Vec::with_capacity(versions.len());
    let mut results: Vec<(Vec<Tensor>, usize)> = Vec::with_capacity(versions.len());
    for (v, version) in versions.iter().enumerate() {
        let mut builders: Vec<Builder> = version
            .layout
            .iter()
            .map(|input| Builder::new(input, rows.len()))
            .collect();
        let mut accepted = 0usize;
        let mut rows_answer = Vec::with_capacity(rows.len());
        for row in rows {
            let mut refused = None;
            for (k, input) in version.layout.iter().enumerate() {
                if let Err(why) = builders[k].push(input, row, header) {
                    for (j, done) in version.layout.iter().enumerate().take(k) {
                        builders[j].undo_row(done);
                    }
                    refused = Some(why);
                    break;
                }
            }
            rows_answer.push(match refused {
                Some(why) => Err(why),
                None => {
                    accepted += 1;
                    Ok(accepted - 1)
                }
            });
        }
        let outputs = if accepted == 0 {
            Vec::new()
        } else {
            let tensors = builders
                .into_iter()
                .zip(&version.layout)
                .map(|(b, input)| b.finish(input))
                .collect::<Result<Vec<_>, _>>()?;
            version.backend.run(tensors)?
        };
        // Tally, refusing rows the model scored as NaN.
        for (r, answer) in rows_answer.iter_mut().enumerate() {
            let position = match answer {
                Ok(position) => *position,
                Err(why) => {
                    summary.versions[v].refuse(line(r), why.clone());
                    continue;
                }
            };
            let (output, element) = version.score;
            let score = outputs
                .get(output)
                .and_then(|t| element_f64(t, position, accepted, element));
            match score.filter(|s| s.is_finite()) {
                Some(score) => summary.versions[v].score(
                    score,
                    outcomes[r].unwrap_or(Outcome::Unknown),
                    segments[r].as_deref(),
                ),
                None => {
                    let why = "the model's score is not a finite number".to_owned();
                    summary.versions[v].refuse(line(r), why.clone());
                    *answer = Err(why);
                }
            }
        }
        answers.push(rows_answer);
        results.push((outputs, accepted));
    }
    let mut cell = String::new();
    for (r, row) in rows.iter().enumerate() {
        let mut record = csv::ByteRecord::new();
        cell.clear();
        let _ = write!(cell, "{}", line(r));
        record.push_field(cell.as_bytes());
        for role in [roles.id, roles.label, roles.segment].into_iter().flatten() {
            record.push_field(row.get(role).unwrap_or_default());
        }
        for (v, version) in versions.iter().enumerate() {
            let (tensors, accepted) = &results[v];
            match &answers[v][r] {
                Ok(position) => {
                    for (o, (_, width)) in version.outputs.iter().enumerate() {
                        let tensor = tensors.get(o);
                        let elements = tensor.map_or(0, |t| t.data.len() / (*accepted).max(1));
                        let each = width.unwrap_or(1);
                        if width.is_some() {
                            for j in 0..each {
                                cell.clear();
                                if let Some(t) = tensor {
                                    format_element(&mut cell, t, position * elements + j);
                                }
                                record.push_field(cell.as_bytes());
                            }
                        } else {
                            cell.clear();
                            for j in 0..elements {
                                if j > 0 {
                                    cell.push(' ');
                                }
                                if let Some(t) = tensor {
                                    format_element(&mut cell, t, position * elements + j);
                                }
                            }
                            record.push_field(cell.as_bytes());
                        }
                    }
                    record.push_field(b"");
                }
                Err(why) => {
                    for (_, width) in &version.outputs {
                        for _ in 0..width.unwrap_or(1) {
                            record.push_field(b"");
                        }
                    }
                    record.push_field(why.as_bytes());
                }
            }
        }
        out.write_byte_record(&record).map_err(csv_error)?;
    }
    Ok(())
}

/// Element `element` of row `row` of `tensor` (of `rows` rows), as a number.
fn element_f64(tensor: &Tensor, row: usize, rows: usize, element: usize) -> Option<f64> {
    let width = tensor.data.len() / rows.max(1);
    let i = row.checked_mul(width)?.checked_add(element)?;
    if element >= width {
        return None;
    }
    Some(match &tensor.data {
        TensorData::Fp32(v) => f64::from(*v.get(i)?),
        TensorData::Fp64(v) => *v.get(i)?,
        TensorData::Int64(v) => *v.get(i)? as f64,
        TensorData::Int32(v) => f64::from(*v.get(i)?),
        TensorData::Bool(v) => f64::from(u8::from(*v.get(i)?)),
        _ => return None,
    })
}

/// Writes element `i` as the online API would: the shortest text that reads
/// back as the same value.
fn format_element(cell: &mut String, tensor: &Tensor, i: usize) {
    let _ = match &tensor.data {
        TensorData::Fp32(v) => v.get(i).map(|x| write!(cell, "{x}")),
        TensorData::Fp64(v) => v.get(i).map(|x| write!(cell, "{x}")),
        TensorData::Int64(v) => v.get(i).map(|x| write!(cell, "{x}")),
        TensorData::Int32(v) => v.get(i).map(|x| write!(cell, "{x}")),
        TensorData::Int16(v) => v.get(i).map(|x| write!(cell, "{x}")),
        TensorData::Int8(v) => v.get(i).map(|x| write!(cell, "{x}")),
        TensorData::Uint64(v) => v.get(i).map(|x| write!(cell, "{x}")),
        TensorData::Uint32(v) => v.get(i).map(|x| write!(cell, "{x}")),
        TensorData::Uint16(v) => v.get(i).map(|x| write!(cell, "{x}")),
        TensorData::Uint8(v) => v.get(i).map(|x| write!(cell, "{x}")),
        TensorData::Bool(v) => v.get(i).map(|x| write!(cell, "{x}")),
        TensorData::Bytes(v) => v
            .get(i)
            .map(|x| write!(cell, "{}", String::from_utf8_lossy(x))),
    };
}

fn flush(
    handle: &Handle,
    out: &mut csv::Writer<Vec<u8>>,
    writer: &mut aimass_storage::Writer,
    last: bool,
) -> Result<(), Error> {
    out.flush().map_err(|e| Error::Data(e.to_string()))?;
    if last || out.get_ref().len() >= FLUSH_BYTES {
        let full = std::mem::replace(out, buffer());
        let bytes = full.into_inner().map_err(|e| Error::Data(e.to_string()))?;
        if !bytes.is_empty() {
            handle.block_on(writer.write(bytes))?;
        }
    }
    Ok(())
}

/// A fresh buffer of output rows.
fn buffer() -> csv::Writer<Vec<u8>> {
    csv::Writer::from_writer(Vec::with_capacity(FLUSH_BYTES + (1 << 16)))
}

fn csv_error(e: csv::Error) -> Error {
    Error::Data(format!("writing the output: {e}"))
}
