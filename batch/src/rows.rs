//! A data set's rows as the scoring loop reads them, whatever the format: a
//! cell is text (CSV) or a typed value (Parquet), and becomes a model's
//! element the same way in both.

use std::borrow::Cow;

/// One cell as read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell<'a> {
    /// Text, as CSV holds every cell (and Parquet strings).
    Text(&'a [u8]),
    /// A single-precision float, taken as it is.
    Float32(f32),
    /// A double.
    Float(f64),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// Null, or a column the row does not reach.
    Missing,
    /// A type the loop does not read; its name.
    Unsupported(&'static str),
}

impl Cell<'_> {
    /// The cell as text, for the outputs' id, label and segment columns.
    pub fn text(&self) -> Cow<'_, [u8]> {
        match self {
            Self::Text(t) => Cow::Borrowed(t),
            Self::Float32(v) => Cow::Owned(v.to_string().into_bytes()),
            Self::Float(v) => Cow::Owned(v.to_string().into_bytes()),
            Self::Int(v) => Cow::Owned(v.to_string().into_bytes()),
            Self::Bool(v) => Cow::Owned(v.to_string().into_bytes()),
            Self::Missing | Self::Unsupported(_) => Cow::Borrowed(b""),
        }
    }
}

/// A row of the data set.
pub trait Row {
    /// The cell of column `column`.
    fn cell(&self, column: usize) -> Cell<'_>;
    /// Where the row is: its line in a CSV file (the header is line 1), its
    /// row number in a Parquet file (from 1).
    fn line(&self) -> u64;
}

/// A CSV record and the line it starts on.
pub struct CsvRow<'a> {
    /// The record.
    pub record: &'a csv::ByteRecord,
    /// Its line.
    pub line: u64,
}

impl Row for CsvRow<'_> {
    fn cell(&self, column: usize) -> Cell<'_> {
        self.record.get(column).map_or(Cell::Missing, Cell::Text)
    }

    fn line(&self) -> u64 {
        self.line
    }
}
