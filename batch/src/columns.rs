//! Which columns of the data set feed which model input, for each version,
//! and how a cell becomes an element: the declared mapping, or the inferred
//! one. Pure.

use std::collections::HashMap;

use aimass_crds::v1alpha1::InputColumns;
use aimass_engine::Signature;
use aimass_engine::tensor::{DataType, Tensor, TensorData};

use crate::Error;
use crate::rows::{Cell, Row};

/// The data set's header: column names and their positions.
#[derive(Clone, Debug)]
pub struct Header {
    names: Vec<String>,
    positions: HashMap<String, usize>,
}

impl Header {
    /// The header of columns `names`; a name given twice is refused.
    pub fn new(names: Vec<String>) -> Result<Self, Error> {
        let mut positions = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            if positions.insert(name.clone(), i).is_some() {
                return Err(Error::invalid_spec(format!(
                    "the data set's header has column {name:?} twice"
                )));
            }
        }
        Ok(Self { names, positions })
    }

    /// The position of column `name`, or an `InvalidSpec` naming it and
    /// `role` (what the spec uses it for).
    pub fn position(&self, name: &str, role: &str) -> Result<usize, Error> {
        self.positions.get(name).copied().ok_or_else(|| {
            Error::invalid_spec(format!(
                "{role} names column {name:?}, which the data set does not have (its columns: {})",
                self.listing()
            ))
        })
    }

    /// Column names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn listing(&self) -> String {
        const SHOWN: usize = 20;
        let mut listing = self
            .names
            .iter()
            .take(SHOWN)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if self.names.len() > SHOWN {
            listing.push_str(&format!(", … {} in all", self.names.len()));
        }
        listing
    }
}

/// The columns with a role besides feeding the model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    /// The label column.
    pub label: Option<usize>,
    /// The segment column.
    pub segment: Option<usize>,
    /// The id column.
    pub id: Option<usize>,
}

impl Roles {
    /// The positions of the named role columns in `header`.
    pub fn find(
        header: &Header,
        label: Option<&str>,
        segment: Option<&str>,
        id: Option<&str>,
    ) -> Result<Self, Error> {
        let find =
            |name: Option<&str>, role: &str| name.map(|n| header.position(n, role)).transpose();
        Ok(Self {
            label: find(label, "spec.labelColumn")?,
            segment: find(segment, "spec.segmentColumn")?,
            id: find(id, "spec.idColumn")?,
        })
    }

    fn contains(&self, position: usize) -> bool {
        [self.label, self.segment, self.id].contains(&Some(position))
    }
}

/// How one model input is read from a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputLayout {
    /// The input's name.
    pub name: String,
    /// Its element type.
    pub datatype: DataType,
    /// One row's dimensions (the shape without the batch axis).
    pub row_shape: Vec<usize>,
    /// The columns, in element order.
    pub columns: Vec<usize>,
}

/// How a version's inputs are read from a row, in signature order.
pub type Layout = Vec<InputLayout>;

/// The layout of `signature`'s inputs over `header`: declared mappings
/// first, then an input of one element takes the column of its name, then
/// a single remaining input takes every free column in file order when
/// their count is its width.
pub fn layout(
    header: &Header,
    signature: &Signature,
    declared: &[InputColumns],
    roles: &Roles,
    version: i64,
) -> Result<Layout, Error> {
    for mapping in declared {
        if !signature.inputs.iter().any(|i| i.name == mapping.input) {
            return Err(Error::invalid_spec(format!(
                "spec.columns names input {:?}, which version {version} does not have (its inputs: {})",
                mapping.input,
                signature
                    .inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut used = vec![false; header.names().len()];
    let mut layout: Vec<Option<InputLayout>> = Vec::new();
    for input in &signature.inputs {
        let row_shape = row_shape(&input.name, &input.shape, version)?;
        let width: usize = row_shape.iter().product();
        readable(&input.name, input.datatype)?;
        let columns = match declared.iter().find(|m| m.input == input.name) {
            Some(mapping) => {
                let columns = mapping
                    .columns
                    .iter()
                    .map(|c| {
                        header.position(c, &format!("spec.columns for input {:?}", input.name))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if columns.len() != width {
                    return Err(Error::invalid_spec(format!(
                        "spec.columns gives input {:?} {} columns, but version {version} takes {width} values per row",
                        input.name,
                        columns.len()
                    )));
                }
                Some(columns)
            }
            None if width == 1 => header.positions.get(&input.name).map(|&p| vec![p]),
            None => None,
        };
        for &c in columns.iter().flatten() {
            used[c] = true;
        }
        layout.push(columns.map(|columns| InputLayout {
            name: input.name.clone(),
            datatype: input.datatype,
            row_shape,
            columns,
        }));
    }
    let missing: Vec<usize> = (0..layout.len()).filter(|&i| layout[i].is_none()).collect();
    if let [only] = missing[..] {
        let input = &signature.inputs[only];
        let row_shape = row_shape(&input.name, &input.shape, version)?;
        let width: usize = row_shape.iter().product();
        let free: Vec<usize> = (0..header.names().len())
            .filter(|&c| !used[c] && !roles.contains(c))
            .collect();
        if free.len() == width {
            layout[only] = Some(InputLayout {
                name: input.name.clone(),
                datatype: input.datatype,
                row_shape,
                columns: free,
            });
        }
    }
    layout
        .into_iter()
        .zip(&signature.inputs)
        .map(|(l, input)| {
            l.ok_or_else(|| {
                Error::invalid_spec(format!(
                    "cannot tell which columns feed input {:?} of version {version} ({} values per row): name them in spec.columns",
                    input.name,
                    input.shape.iter().skip(1).map(|d| d.max(&1)).product::<i64>()
                ))
            })
        })
        .collect()
}

/// One row's dimensions of an input shaped `shape` (the first axis is the
/// batch); every other axis must be fixed.
fn row_shape(name: &str, shape: &[i64], version: i64) -> Result<Vec<usize>, Error> {
    shape
        .iter()
        .skip(1)
        .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            Error::invalid_spec(format!(
                "input {name:?} of version {version} has shape {shape:?}: only the first (batch) axis may vary to be read from a table"
            ))
        })
}

fn readable(name: &str, datatype: DataType) -> Result<(), Error> {
    match datatype {
        DataType::Fp32
        | DataType::Fp64
        | DataType::Int64
        | DataType::Int32
        | DataType::Bool
        | DataType::Bytes => Ok(()),
        other => Err(Error::invalid_spec(format!(
            "input {name:?} is {other}, which is not read from a table (FP32, FP64, INT64, INT32, BOOL and BYTES are)"
        ))),
    }
}

/// Elements of one input for a batch, built row by row.
#[derive(Debug)]
pub struct Builder {
    data: TensorData,
    rows: usize,
}

impl Builder {
    /// An empty builder for `input`.
    pub fn new(input: &InputLayout, capacity: usize) -> Self {
        let n = capacity * input.columns.len();
        let data = match input.datatype {
            DataType::Fp32 => TensorData::Fp32(Vec::with_capacity(n)),
            DataType::Fp64 => TensorData::Fp64(Vec::with_capacity(n)),
            DataType::Int64 => TensorData::Int64(Vec::with_capacity(n)),
            DataType::Int32 => TensorData::Int32(Vec::with_capacity(n)),
            DataType::Bool => TensorData::Bool(Vec::with_capacity(n)),
            _ => TensorData::Bytes(Vec::with_capacity(n)),
        };
        Self { data, rows: 0 }
    }

    /// Appends one row's cells for `input`; on a bad cell nothing is
    /// appended and the error names its column.
    pub fn push(
        &mut self,
        input: &InputLayout,
        row: &impl Row,
        header: &Header,
    ) -> Result<(), String> {
        let before = self.data.len();
        for &c in &input.columns {
            if let Err(why) = self.push_cell(row.cell(c)) {
                self.truncate(before);
                let column = header.names().get(c).map_or("?", String::as_str);
                return Err(format!("column {column:?}: {why}"));
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn push_cell(&mut self, cell: Cell<'_>) -> Result<(), String> {
        let text = match cell {
            Cell::Missing => return Err("missing value".to_owned()),
            Cell::Unsupported(kind) => return Err(format!("values of type {kind} are not read")),
            Cell::Text(bytes) => {
                if let TensorData::Bytes(v) = &mut self.data {
                    v.push(bytes.to_vec());
                    return Ok(());
                }
                Some(
                    std::str::from_utf8(bytes)
                        .map_err(|_| "not UTF-8".to_owned())?
                        .trim(),
                )
            }
            _ => None,
        };
        let value = match (text, cell) {
            (Some(""), _) => return Err("missing value".to_owned()),
            (Some(t), _) => Value::parse(t)?,
            (None, Cell::Float32(v)) => Value::Float32(v),
            (None, Cell::Float(v)) => Value::Float(v),
            (None, Cell::Int(v)) => Value::Int(v),
            (None, Cell::Bool(v)) => Value::Bool(v),
            (None, _) => return Err("missing value".to_owned()),
        };
        value.push_to(&mut self.data)
    }
    /// Removes the last row pushed (when a later input of the same row was
    /// refused).
    pub fn undo_row(&mut self, input: &InputLayout) {
        if self.rows > 0 {
            self.rows -= 1;
            self.truncate(self.data.len().saturating_sub(input.columns.len()));
        }
    }

    fn truncate(&mut self, len: usize) {
        match &mut self.data {
            TensorData::Fp32(v) => v.truncate(len),
            TensorData::Fp64(v) => v.truncate(len),
            TensorData::Int64(v) => v.truncate(len),
            TensorData::Int32(v) => v.truncate(len),
            TensorData::Bool(v) => v.truncate(len),
            TensorData::Bytes(v) => v.truncate(len),
            _ => {}
        }
    }

    /// The batch's tensor.
    pub fn finish(self, input: &InputLayout) -> Result<Tensor, Error> {
        let mut shape = vec![self.rows];
        shape.extend(&input.row_shape);
        Tensor::new(shape, self.data)
            .ok_or_else(|| Error::Data(format!("input {:?}: inconsistent batch", input.name)))
    }
}

/// A cell's value, before it meets the input's type.
#[derive(Clone, Copy, Debug)]
enum Value<'a> {
    Float32(f32),
    Float(f64),
    Int(i64),
    Bool(bool),
    /// Text that is none of those.
    Word(&'a str),
}

impl<'a> Value<'a> {
    /// A text cell's value: an integer, a number, a boolean or a word.
    fn parse(text: &'a str) -> Result<Self, String> {
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Self::Int(i));
        }
        if let Ok(f) = text.parse::<f64>() {
            return Ok(Self::Float(f));
        }
        Ok(match text.to_ascii_lowercase().as_str() {
            "true" => Self::Bool(true),
            "false" => Self::Bool(false),
            _ => Self::Word(text),
        })
    }

    /// Appends the value to `data`, converted as the online API converts
    /// JSON values: numbers through a double (a single-precision float is
    /// taken as it is), integers only when whole.
    fn push_to(self, data: &mut TensorData) -> Result<(), String> {
        let shown = |w: &str| w.chars().take(40).collect::<String>();
        let number = || -> Result<f64, String> {
            let n = match self {
                Self::Float32(v) => f64::from(v),
                Self::Float(v) => v,
                Self::Int(v) => v as f64,
                Self::Bool(_) => return Err("a boolean where a number goes".to_owned()),
                Self::Word(w) => return Err(format!("{:?} is not a finite number", shown(w))),
            };
            if n.is_finite() {
                Ok(n)
            } else {
                Err(format!("{n} is not a finite number"))
            }
        };
        let integer = || -> Result<i64, String> {
            match self {
                Self::Int(v) => Ok(v),
                Self::Float(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(v as i64),
                Self::Float32(v) if v.fract() == 0.0 && v.abs() < 1.6e7 => Ok(v as i64),
                Self::Word(w) => Err(format!("{:?} is not an integer", shown(w))),
                _ => Err("not an integer".to_owned()),
            }
        };
        match data {
            TensorData::Fp32(v) => v.push(match self {
                Self::Float32(x) if x.is_finite() => x,
                _ => number()? as f32,
            }),
            TensorData::Fp64(v) => v.push(number()?),
            TensorData::Int64(v) => v.push(integer()?),
            TensorData::Int32(v) => {
                v.push(i32::try_from(integer()?).map_err(|_| "out of the INT32 range".to_owned())?)
            }
            TensorData::Bool(v) => v.push(match self {
                Self::Bool(b) => b,
                Self::Int(0) => false,
                Self::Int(1) => true,
                Self::Word(w) => return Err(format!("{:?} is not true, false, 1 or 0", shown(w))),
                _ => return Err("not true, false, 1 or 0".to_owned()),
            }),
            TensorData::Bytes(v) => v.push(match self {
                Self::Word(w) => w.as_bytes().to_vec(),
                Self::Float32(x) => x.to_string().into_bytes(),
                Self::Float(x) => x.to_string().into_bytes(),
                Self::Int(x) => x.to_string().into_bytes(),
                Self::Bool(x) => x.to_string().into_bytes(),
            }),
            _ => return Err("unsupported type".to_owned()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
