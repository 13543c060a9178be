//! Parquet in and out: a data set's record batches read from the object
//! store one batch at a time (the footer, then each row group's pages as
//! they are needed), their cells typed as Parquet holds them; and the
//! outputs written as Parquet, one row group per flush.

use std::sync::Arc;

use aimass_engine::tensor::{DataType, TensorData};
use aimass_storage::Location;
use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStream};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use tokio::runtime::Handle;

use crate::Error;
use crate::rows::{Cell, Row};

/// The most bytes one read of a Parquet file may ask for (its footer's
/// metadata, one column chunk): a file that claims more is refused, never
/// read into memory.
const RANGE_LIMIT: u64 = 256 << 20;

/// A Parquet file in the object store, read by ranges.
#[derive(Clone)]
struct StoreFile {
    location: Location,
    size: u64,
}

impl AsyncFileReader for StoreFile {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.location
                .read_range(range, RANGE_LIMIT)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(&mut *self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// A Parquet data set's record batches, read on a blocking thread.
pub struct Batches {
    handle: Handle,
    stream: ParquetRecordBatchStream<StoreFile>,
}

impl Batches {
    /// Opens the file at `location`, `size` bytes (reading its footer), for
    /// batches of `rows`; returns its column names too.
    pub async fn open(
        handle: Handle,
        location: &Location,
        size: u64,
        rows: usize,
    ) -> Result<(Self, Vec<String>), String> {
        let reader = StoreFile {
            location: location.clone(),
            size,
        };
        let builder = parquet::arrow::ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(|e| format!("{} is not a readable Parquet file: {e}", location.uri))?;
        let names = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let stream = builder
            .with_batch_size(rows)
            .build()
            .map_err(|e| format!("{}: {e}", location.uri))?;
        Ok((Self { handle, stream }, names))
    }

    /// The next batch, or `None` at the end.
    pub fn next(&mut self) -> Result<Option<RecordBatch>, Error> {
        match self.handle.block_on(self.stream.next()) {
            None => Ok(None),
            Some(Ok(batch)) => Ok(Some(batch)),
            Some(Err(e)) => Err(Error::Data(format!("reading the data set: {e}"))),
        }
    }
}

/// A row of a record batch.
pub struct ParquetRow<'a> {
    /// The batch.
    pub batch: &'a RecordBatch,
    /// The row in it.
    pub row: usize,
    /// The row's number in the file, from 1.
    pub line: u64,
}

impl Row for ParquetRow<'_> {
    fn cell(&self, column: usize) -> Cell<'_> {
        let Some(array) = self.batch.columns().get(column) else {
            return Cell::Missing;
        };
        let row = self.row;
        if row >= array.len() || array.is_null(row) {
            return Cell::Missing;
        }
        match array.data_type() {
            ArrowType::Float32 => Cell::Float32(array.as_primitive::<Float32Type>().value(row)),
            ArrowType::Float64 => Cell::Float(array.as_primitive::<Float64Type>().value(row)),
            ArrowType::Int8 => Cell::Int(i64::from(array.as_primitive::<Int8Type>().value(row))),
            ArrowType::Int16 => Cell::Int(i64::from(array.as_primitive::<Int16Type>().value(row))),
            ArrowType::Int32 => Cell::Int(i64::from(array.as_primitive::<Int32Type>().value(row))),
            ArrowType::Int64 => Cell::Int(array.as_primitive::<Int64Type>().value(row)),
            ArrowType::UInt8 => Cell::Int(i64::from(array.as_primitive::<UInt8Type>().value(row))),
            ArrowType::UInt16 => {
                Cell::Int(i64::from(array.as_primitive::<UInt16Type>().value(row)))
            }
            ArrowType::UInt32 => {
                Cell::Int(i64::from(array.as_primitive::<UInt32Type>().value(row)))
            }
            ArrowType::UInt64 => i64::try_from(array.as_primitive::<UInt64Type>().value(row))
                .map_or(Cell::Unsupported("UInt64 above the INT64 range"), Cell::Int),
            ArrowType::Boolean => Cell::Bool(array.as_boolean().value(row)),
            ArrowType::Utf8 => Cell::Text(array.as_string::<i32>().value(row).as_bytes()),
            ArrowType::LargeUtf8 => Cell::Text(array.as_string::<i64>().value(row).as_bytes()),
            ArrowType::Utf8View => Cell::Text(array.as_string_view().value(row).as_bytes()),
            _ => Cell::Unsupported("this column's Parquet type"),
        }
    }

    fn line(&self) -> u64 {
        self.line
    }
}

/// One output column being built.
pub enum Column {
    /// FP32 elements.
    Float32(Float32Builder),
    /// FP64 elements.
    Float64(Float64Builder),
    /// Integers (INT64, and the narrower integer types widened).
    Int64(Int64Builder),
    /// INT32 elements.
    Int32(Int32Builder),
    /// BOOL elements.
    Bool(BooleanBuilder),
    /// Text: ids, labels, segments, reasons, BYTES elements.
    Text(StringBuilder),
}

impl Column {
    /// A column for elements of `datatype` (text when `None`), and its
    /// field.
    pub fn of(name: String, datatype: Option<DataType>) -> (Field, Self) {
        let (kind, column) = match datatype {
            Some(DataType::Fp32) => (ArrowType::Float32, Self::Float32(Float32Builder::new())),
            Some(DataType::Fp64) => (ArrowType::Float64, Self::Float64(Float64Builder::new())),
            Some(DataType::Int32) => (ArrowType::Int32, Self::Int32(Int32Builder::new())),
            Some(DataType::Bool) => (ArrowType::Boolean, Self::Bool(BooleanBuilder::new())),
            Some(DataType::Bytes) | None => (ArrowType::Utf8, Self::Text(StringBuilder::new())),
            Some(_) => (ArrowType::Int64, Self::Int64(Int64Builder::new())),
        };
        (Field::new(name, kind, true), column)
    }

    /// Appends element `i` of `data` (null when it has none).
    pub fn element(&mut self, data: &TensorData, i: usize) {
        macro_rules! int {
            ($v:expr) => {
                $v.get(i).map(|x| i64::try_from(*x).unwrap_or(i64::MAX))
            };
        }
        match self {
            Self::Float32(b) => b.append_option(match data {
                TensorData::Fp32(v) => v.get(i).copied(),
                _ => None,
            }),
            Self::Float64(b) => b.append_option(match data {
                TensorData::Fp64(v) => v.get(i).copied(),
                _ => None,
            }),
            Self::Int32(b) => b.append_option(match data {
                TensorData::Int32(v) => v.get(i).copied(),
                _ => None,
            }),
            Self::Bool(b) => b.append_option(match data {
                TensorData::Bool(v) => v.get(i).copied(),
                _ => None,
            }),
            Self::Int64(b) => b.append_option(match data {
                TensorData::Int64(v) => v.get(i).copied(),
                TensorData::Int8(v) => int!(v),
                TensorData::Int16(v) => int!(v),
                TensorData::Uint8(v) => int!(v),
                TensorData::Uint16(v) => int!(v),
                TensorData::Uint32(v) => int!(v),
                TensorData::Uint64(v) => int!(v),
                _ => None,
            }),
            Self::Text(b) => b.append_option(match data {
                TensorData::Bytes(v) => v.get(i).map(|x| String::from_utf8_lossy(x).into_owned()),
                _ => None,
            }),
        }
    }

    /// Appends `text`, or null.
    pub fn text(&mut self, text: Option<&str>) {
        match self {
            Self::Text(b) => b.append_option(text),
            _ => self.null(),
        }
    }

    /// Appends an integer.
    pub fn int(&mut self, value: i64) {
        match self {
            Self::Int64(b) => b.append_value(value),
            _ => self.null(),
        }
    }

    /// Appends a null.
    pub fn null(&mut self) {
        match self {
            Self::Float32(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::Int32(b) => b.append_null(),
            Self::Bool(b) => b.append_null(),
            Self::Text(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Text(b) => Arc::new(b.finish()),
        }
    }
}

/// The outputs written as Parquet.
pub struct Writer {
    schema: SchemaRef,
    /// The columns of the rows not written yet.
    pub columns: Vec<Column>,
    arrow: ArrowWriter<Vec<u8>>,
}

impl Writer {
    /// A writer of columns `fields`, built in `columns`.
    pub fn new(fields: Vec<Field>, columns: Vec<Column>) -> Result<Self, Error> {
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let properties = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build();
        let arrow = ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(properties))
            .map_err(|e| Error::Data(format!("writing Parquet: {e}")))?;
        Ok(Self {
            schema,
            columns,
            arrow,
        })
    }

    /// Writes the rows built so far as a row group; returns the file's bytes
    /// that are ready.
    pub fn flush(&mut self) -> Result<Vec<u8>, Error> {
        let fail = |e: parquet::errors::ParquetError| Error::Data(format!("writing Parquet: {e}"));
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        if arrays.first().is_some_and(|a| !a.is_empty()) {
            let batch = RecordBatch::try_new(Arc::clone(&self.schema), arrays)
                .map_err(|e| Error::Data(format!("writing Parquet: {e}")))?;
            self.arrow.write(&batch).map_err(fail)?;
            self.arrow.flush().map_err(fail)?;
        }
        Ok(std::mem::take(self.arrow.inner_mut()))
    }

    /// Writes what is left and the footer; returns the last bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, Error> {
        let mut bytes = self.flush()?;
        let rest = self
            .arrow
            .into_inner()
            .map_err(|e| Error::Data(format!("writing Parquet: {e}")))?;
        bytes.extend(rest);
        Ok(bytes)
    }
}
