//! What the operators share: class labels, and parameters shared by pointer.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::attributes::Attributes;

/// Parameters parsed once and shared by the operator's inference and typed
/// forms. Two operators are equal when they share the same parameters.
#[derive(Debug)]
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    /// Shares `value`.
    pub fn new(value: T) -> Self {
        Self(Arc::new(value))
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T> Eq for Shared<T> {}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// A classifier's labels: int64 or strings.
pub enum Labels {
    /// `classlabels_int64s` / `classlabels_ints`
    Int(Vec<i64>),
    /// `classlabels_strings`
    Str(Vec<String>),
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Labels::Int(v) => write!(f, "{} int64 labels", v.len()),
            Labels::Str(v) => write!(f, "{} string labels", v.len()),
        }
    }
}

impl Labels {
    /// Reads exactly one of the two label attributes.
    pub fn parse(a: &Attributes, ints: &str, strings: &str) -> TractResult<Self> {
        let (i, s) = (a.ints(ints)?, a.strings(strings)?);
        match (i.is_empty(), s.is_empty()) {
            (false, true) => Ok(Labels::Int(i)),
            (true, false) => Ok(Labels::Str(s)),
            _ => bail!("exactly one of {ints} and {strings} must be given"),
        }
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        match self {
            Labels::Int(v) => v.len(),
            Labels::Str(v) => v.len(),
        }
    }

    /// The label output's element type.
    pub fn datum_type(&self) -> DatumType {
        match self {
            Labels::Int(_) => i64::datum_type(),
            Labels::Str(_) => String::datum_type(),
        }
    }

    /// The label output for rows whose winning classes are `winners`.
    pub fn tensor(&self, winners: &[usize]) -> TractResult<Tensor> {
        Ok(match self {
            Labels::Int(v) => Tensor::from_shape(
                &[winners.len()],
                &winners.iter().map(|w| v[*w]).collect::<Vec<_>>(),
            )?,
            Labels::Str(v) => tract_ndarray::Array1::from_vec(
                winners.iter().map(|w| v[*w].clone()).collect::<Vec<_>>(),
            )
            .into_tensor(),
        })
    }
}

/// Wires `op` on `input`, first casting the input to `dt` when it has
/// another type.
pub fn wire_as(
    prefix: &str,
    model: &mut TypedModel,
    input: OutletId,
    dt: DatumType,
    op: impl TypedOp,
) -> TractResult<TVec<OutletId>> {
    let mut x = input;
    if model.outlet_fact(x)?.datum_type != dt {
        x = model.wire_node(
            format!("{prefix}.cast"),
            tract_onnx::tract_core::ops::cast::cast(dt),
            &[x],
        )?[0];
    }
    model.wire_node(prefix, op, &[x])
}
