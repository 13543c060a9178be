//! One shard: every `shards`-th row of the data set (CSV or Parquet),
//! scored by every version in batches, written out (CSV or Parquet) and
//! tallied. Runs on a blocking thread; memory holds one batch, one output
//! buffer and the tallies, whatever the data set's size.

use std::fmt::Write as _;

use aimass_crds::scoring::ScoringPlan;
use aimass_engine::Backend;
use aimass_engine::tensor::{DataType, Tensor, TensorData};
use tokio::runtime::Handle;

use crate::Error;
use crate::columns::{Builder, Header, Layout, Roles};
use crate::io::Lines;
use crate::parquet::{Batches, Column, ParquetRow};
use crate::report::Outcome;
use crate::rows::{CsvRow, Row};
use crate::summary::ShardSummary;

/// Rows scored together: the batch the tree operators are fastest with.
pub const BATCH: usize = 256;
/// Output bytes gathered before they are sent to the store.
const FLUSH_BYTES: usize = 4 << 20;
/// Rows of a Parquet output's row group.
const ROW_GROUP: usize = 64 * BATCH;
/// The longest segment value kept, in characters.
const SEGMENT_CHARS: usize = 128;

/// One output of a version.
pub struct Output {
    /// Its name.
    pub name: String,
    /// Its element type.
    pub datatype: DataType,
    /// Elements per row (`None` when not fixed).
    pub width: Option<usize>,
}

/// A version ready to score.
pub struct Version {
    /// Its number.
    pub number: i64,
    /// The loaded model.
    pub backend: Box<dyn Backend>,
    /// How its inputs are read from a row.
    pub layout: Layout,
    /// Its outputs.
    pub outputs: Vec<Output>,
    /// The output and element the report measures.
    pub score: (usize, usize),
}

/// Where the rows come from.
pub enum Input<R: std::io::Read> {
    /// A CSV file and its line numbers.
    Csv(csv::Reader<R>, std::sync::Arc<std::sync::Mutex<Lines>>),
    /// A Parquet file's record batches.
    Parquet(Batches),
}

/// What a shard works with.
pub struct Work<'a> {
    /// The plan.
    pub plan: &'a ScoringPlan,
    /// This shard.
    pub shard: u32,
    /// The data set's columns.
    pub header: &'a Header,
    /// The label, segment and id columns.
    pub roles: &'a Roles,
    /// The versions.
    pub versions: &'a [Version],
}

/// What takes a data set's rows, a batch at a time.
pub trait Consumer {
    /// Takes one batch of rows.
    fn batch<R: Row>(&mut self, rows: &[R]) -> Result<(), Error>;
    /// Whether it has read enough (no more rows are read).
    fn enough(&self) -> bool {
        false
    }
}

/// This shard's scoring: every batch scored, tallied, written and sent.
struct Scoring<'a, 'w> {
    handle: &'a Handle,
    work: &'a Work<'w>,
    summary: ShardSummary,
    out: Sink,
    writer: aimass_storage::Writer,
}

impl Consumer for Scoring<'_, '_> {
    fn batch<R: Row>(&mut self, rows: &[R]) -> Result<(), Error> {
        score_batch(rows, self.work, &mut self.summary, &mut self.out)?;
        self.out.flush(self.handle, &mut self.writer, false)
    }
}

/// Scores this shard's rows from `input` into `writer` (as Parquet when
/// `parquet`); returns its tallies once the output is complete.
pub fn run<R: std::io::Read>(
    handle: &Handle,
    work: &Work<'_>,
    input: Input<R>,
    parquet: bool,
    writer: aimass_storage::Writer,
) -> Result<ShardSummary, Error> {
    let shards = u64::from(work.plan.shards.max(1));
    let mut scoring = Scoring {
        handle,
        work,
        summary: ShardSummary::new(work.versions.len()),
        out: Sink::new(work, parquet)?,
        writer,
    };
    read(
        input,
        |index| index % shards == u64::from(work.shard),
        &mut scoring,
    )?;
    let Scoring {
        mut out,
        mut writer,
        summary,
        ..
    } = scoring;
    out.flush(handle, &mut writer, true)?;
    handle.block_on(writer.finish())?;
    Ok(summary)
}

/// Feeds the rows of `input` whose index (from 0) is `mine` to `sink`, in
/// batches of at most [`BATCH`], until the input ends or it has enough.
pub fn read<R: std::io::Read>(
    input: Input<R>,
    mine: impl Fn(u64) -> bool,
    sink: &mut impl Consumer,
) -> Result<(), Error> {
    match input {
        Input::Csv(mut reader, lines) => {
            let mut batch: Vec<csv::ByteRecord> = vec![csv::ByteRecord::new(); BATCH];
            let mut batch_lines = vec![0u64; BATCH];
            let mut scratch = csv::ByteRecord::new();
            let (mut filled, mut index) = (0usize, 0u64);
            loop {
                let owned = mine(index);
                let record = if owned {
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
                // Every record, so the count moves on and its window stays
                // small; the reader feeds the count while it reads, so it is
                // never held across a read.
                let inside = record.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
                let line = lines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .record_line(reader.position().byte(), inside);
                index += 1;
                if owned {
                    batch_lines[filled] = line;
                    filled += 1;
                    if filled == BATCH {
                        sink.batch(&csv_rows(&batch, &batch_lines))?;
                        filled = 0;
                        if sink.enough() {
                            return Ok(());
                        }
                    }
                }
            }
            sink.batch(&csv_rows(&batch[..filled], &batch_lines[..filled]))?;
        }
        Input::Parquet(mut batches) => {
            let mut index = 0u64;
            while let Some(batch) = batches.next()? {
                let rows: Vec<ParquetRow<'_>> = (0..batch.num_rows())
                    .filter_map(|row| {
                        let global = index + row as u64;
                        mine(global).then_some(ParquetRow {
                            batch: &batch,
                            row,
                            line: global + 1,
                        })
                    })
                    .collect();
                index += batch.num_rows() as u64;
                sink.batch(&rows)?;
                if sink.enough() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

fn csv_rows<'a>(records: &'a [csv::ByteRecord], lines: &[u64]) -> Vec<CsvRow<'a>> {
    records
        .iter()
        .zip(lines)
        .map(|(record, &line)| CsvRow { record, line })
        .collect()
}

/// What a row's label cell says: `1`/`true` bad, `0`/`false` good.
pub fn outcome(cell: &[u8]) -> Outcome {
    match std::str::from_utf8(cell).map(|s| s.trim().to_ascii_lowercase()) {
        Ok(s) if s == "1" || s == "true" || s == "1.0" => Outcome::Bad,
        Ok(s) if s == "0" || s == "false" || s == "0.0" => Outcome::Good,
        _ => Outcome::Unknown,
    }
}

/// What a batch came to: for each version, each row's place in its
/// outputs (or why it was refused), and the outputs with the rows they
/// hold.
struct Scored {
    answers: Vec<Vec<Result<usize, String>>>,
    results: Vec<(Vec<Tensor>, usize)>,
}

fn score_batch<R: Row>(
    rows: &[R],
    work: &Work<'_>,
    summary: &mut ShardSummary,
    out: &mut Sink,
) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let (roles, versions) = (work.roles, work.versions);
    let outcomes: Vec<Option<Outcome>> = rows
        .iter()
        .map(|row| roles.label.map(|c| outcome(&row.cell(c).text())))
        .collect();
    let segments: Vec<Option<String>> = rows
        .iter()
        .map(|row| {
            roles.segment.map(|c| {
                String::from_utf8_lossy(&row.cell(c).text())
                    .chars()
                    .take(SEGMENT_CHARS)
                    .collect()
            })
        })
        .collect();
    for outcome in &outcomes {
        summary.count_row(*outcome);
    }
    let mut scored = Scored {
        answers: Vec::with_capacity(versions.len()),
        results: Vec::with_capacity(versions.len()),
    };
    for (v, version) in versions.iter().enumerate() {
        let Built {
            mut answers,
            accepted,
            inputs,
        } = build(version, rows, work.header)?;
        let outputs = match inputs {
            Some(tensors) => version.backend.run(tensors)?,
            None => Vec::new(),
        };
        // Tally, refusing rows the model scored as NaN.
        for (r, answer) in answers.iter_mut().enumerate() {
            let position = match answer {
                Ok(position) => *position,
                Err(why) => {
                    summary.versions[v].refuse(rows[r].line(), why.clone());
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
                    summary.versions[v].refuse(rows[r].line(), why.clone());
                    *answer = Err(why);
                }
            }
        }
        scored.answers.push(answers);
        scored.results.push((outputs, accepted));
    }
    out.write(rows, work, &scored)
}

/// A batch's rows laid out for one version.
pub struct Built {
    /// Each row's place in the inputs, or why it was refused.
    pub answers: Vec<Result<usize, String>>,
    /// How many rows were accepted.
    pub accepted: usize,
    /// The inputs, when any row was accepted.
    pub inputs: Option<Vec<Tensor>>,
}

/// Lays `rows` out as `version`'s inputs; a row with a cell that does not
/// read is refused, with why.
pub fn build<R: Row>(version: &Version, rows: &[R], header: &Header) -> Result<Built, Error> {
    let mut builders: Vec<Builder> = version
        .layout
        .iter()
        .map(|input| Builder::new(input, rows.len()))
        .collect();
    let mut accepted = 0usize;
    let mut answers = Vec::with_capacity(rows.len());
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
        answers.push(match refused {
            Some(why) => Err(why),
            None => {
                accepted += 1;
                Ok(accepted - 1)
            }
        });
    }
    let inputs = if accepted == 0 {
        None
    } else {
        Some(
            builders
                .into_iter()
                .zip(&version.layout)
                .map(|(b, input)| b.finish(input))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    Ok(Built {
        answers,
        accepted,
        inputs,
    })
}

/// Element `element` of row `row` of `tensor` (of `rows` rows), as a number.
pub fn element_f64(tensor: &Tensor, row: usize, rows: usize, element: usize) -> Option<f64> {
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

/// The output columns, in order: `line`, the id, label and segment
/// columns, then each version's outputs and why a row was refused; the
/// element type of each (`None` for text).
fn columns(work: &Work<'_>) -> Vec<(String, Option<DataType>)> {
    let mut columns = vec![("line".to_owned(), Some(DataType::Int64))];
    let roles = work.roles;
    for role in [roles.id, roles.label, roles.segment].into_iter().flatten() {
        columns.extend(work.header.names().get(role).map(|n| (n.clone(), None)));
    }
    for version in work.versions {
        let n = version.number;
        for output in &version.outputs {
            let name = &output.name;
            match output.width {
                Some(w) if w != 1 => columns
                    .extend((0..w).map(|j| (format!("v{n}.{name}[{j}]"), Some(output.datatype)))),
                Some(_) => columns.push((format!("v{n}.{name}"), Some(output.datatype))),
                // Elements of a varying count: one text cell of them all.
                None => columns.push((format!("v{n}.{name}"), None)),
            }
        }
        columns.push((format!("v{n}.refused"), None));
    }
    columns
}

/// The shard's output being written.
enum Sink {
    Csv(csv::Writer<Vec<u8>>),
    Parquet {
        /// `None` once finished.
        writer: Option<crate::parquet::Writer>,
        rows: usize,
    },
}

impl Sink {
    fn new(work: &Work<'_>, parquet: bool) -> Result<Self, Error> {
        let columns = columns(work);
        if parquet {
            let (fields, builders) = columns
                .into_iter()
                .map(|(name, datatype)| Column::of(name, datatype))
                .unzip();
            return Ok(Self::Parquet {
                writer: Some(crate::parquet::Writer::new(fields, builders)?),
                rows: 0,
            });
        }
        let mut out = csv_buffer();
        out.write_record(columns.iter().map(|(name, _)| name))
            .map_err(csv_error)?;
        Ok(Self::Csv(out))
    }

    /// Adds a scored batch.
    fn write<R: Row>(&mut self, rows: &[R], work: &Work<'_>, scored: &Scored) -> Result<(), Error> {
        let roles = work.roles;
        let role_columns: Vec<usize> = [roles.id, roles.label, roles.segment]
            .into_iter()
            .flatten()
            .collect();
        match self {
            Self::Csv(out) => {
                let mut cell = String::new();
                for (r, row) in rows.iter().enumerate() {
                    let mut record = csv::ByteRecord::new();
                    cell.clear();
                    let _ = write!(cell, "{}", row.line());
                    record.push_field(cell.as_bytes());
                    for &c in &role_columns {
                        record.push_field(&row.cell(c).text());
                    }
                    for (v, version) in work.versions.iter().enumerate() {
                        let (tensors, accepted) = &scored.results[v];
                        match &scored.answers[v][r] {
                            Ok(position) => {
                                for (o, output) in version.outputs.iter().enumerate() {
                                    let tensor = tensors.get(o);
                                    let elements =
                                        tensor.map_or(0, |t| t.data.len() / (*accepted).max(1));
                                    match output.width {
                                        Some(each) => {
                                            for j in 0..each {
                                                cell.clear();
                                                if let Some(t) = tensor {
                                                    format_element(
                                                        &mut cell,
                                                        t,
                                                        position * elements + j,
                                                    );
                                                }
                                                record.push_field(cell.as_bytes());
                                            }
                                        }
                                        None => {
                                            cell.clear();
                                            for j in 0..elements {
                                                if j > 0 {
                                                    cell.push(' ');
                                                }
                                                if let Some(t) = tensor {
                                                    format_element(
                                                        &mut cell,
                                                        t,
                                                        position * elements + j,
                                                    );
                                                }
                                            }
                                            record.push_field(cell.as_bytes());
                                        }
                                    }
                                }
                                record.push_field(b"");
                            }
                            Err(why) => {
                                for output in &version.outputs {
                                    for _ in 0..output.width.unwrap_or(1) {
                                        record.push_field(b"");
                                    }
                                }
                                record.push_field(why.as_bytes());
                            }
                        }
                    }
                    out.write_byte_record(&record).map_err(csv_error)?;
                }
            }
            Self::Parquet { writer, rows: held } => {
                let writer = writer.as_mut().ok_or_else(missing_column)?;
                let mut columns = writer.columns.iter_mut();
                let mut next = || columns.next();
                let line = next().ok_or_else(missing_column)?;
                for row in rows {
                    line.int(i64::try_from(row.line()).unwrap_or(i64::MAX));
                }
                for &c in &role_columns {
                    let column = next().ok_or_else(missing_column)?;
                    for row in rows {
                        column.text(Some(&String::from_utf8_lossy(&row.cell(c).text())));
                    }
                }
                for (v, version) in work.versions.iter().enumerate() {
                    let (tensors, accepted) = &scored.results[v];
                    for (o, output) in version.outputs.iter().enumerate() {
                        let tensor = tensors.get(o);
                        let elements = tensor.map_or(0, |t| t.data.len() / (*accepted).max(1));
                        let each = output.width.unwrap_or(1);
                        for j in 0..each {
                            let column = next().ok_or_else(missing_column)?;
                            for answer in &scored.answers[v] {
                                match (answer, tensor) {
                                    (Ok(position), Some(t)) if output.width.is_some() => {
                                        column.element(&t.data, position * elements + j);
                                    }
                                    (Ok(position), Some(t)) => {
                                        let mut cell = String::new();
                                        for k in 0..elements {
                                            if k > 0 {
                                                cell.push(' ');
                                            }
                                            format_element(&mut cell, t, position * elements + k);
                                        }
                                        column.text(Some(&cell));
                                    }
                                    _ => column.null(),
                                }
                            }
                        }
                    }
                    let refused = next().ok_or_else(missing_column)?;
                    for answer in &scored.answers[v] {
                        refused.text(answer.as_ref().err().map(String::as_str));
                    }
                }
                *held += rows.len();
            }
        }
        Ok(())
    }

    /// Sends what is ready to the store: at every [`FLUSH_BYTES`] of CSV or
    /// [`ROW_GROUP`] rows of Parquet, and everything when `last`.
    fn flush(
        &mut self,
        handle: &Handle,
        writer: &mut aimass_storage::Writer,
        last: bool,
    ) -> Result<(), Error> {
        let bytes = match self {
            Self::Csv(out) => {
                out.flush().map_err(|e| Error::Data(e.to_string()))?;
                if !last && out.get_ref().len() < FLUSH_BYTES {
                    return Ok(());
                }
                let full = std::mem::replace(out, csv_buffer());
                full.into_inner().map_err(|e| Error::Data(e.to_string()))?
            }
            Self::Parquet {
                writer: parquet,
                rows,
            } => {
                if !last && *rows < ROW_GROUP {
                    return Ok(());
                }
                *rows = 0;
                match (last, parquet.take()) {
                    (true, Some(done)) => done.finish()?,
                    (false, Some(mut going)) => {
                        let bytes = going.flush()?;
                        *parquet = Some(going);
                        bytes
                    }
                    (_, None) => Vec::new(),
                }
            }
        };
        if !bytes.is_empty() {
            handle.block_on(writer.write(bytes))?;
        }
        Ok(())
    }
}

fn missing_column() -> Error {
    Error::Data("the Parquet output lost track of its columns".to_owned())
}

/// A fresh buffer of output rows.
fn csv_buffer() -> csv::Writer<Vec<u8>> {
    csv::Writer::from_writer(Vec::with_capacity(FLUSH_BYTES + (1 << 16)))
}

fn csv_error(e: csv::Error) -> Error {
    Error::Data(format!("writing the output: {e}"))
}
