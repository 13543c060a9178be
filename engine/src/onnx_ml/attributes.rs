//! Reading a node's attributes, including the `*_as_tensor` double-precision
//! variants ai.onnx.ml opset 3 added.

use tract_onnx::pb::{NodeProto, TensorProto};

use super::forest::Mode;
use tract_onnx::tract_hir::internal::*;

/// The attributes of one node.
pub struct Attributes<'a>(pub &'a NodeProto);

impl<'a> Attributes<'a> {
    fn get(&self, name: &str) -> Option<&'a tract_onnx::pb::AttributeProto> {
        self.0.attribute.iter().find(|a| a.name == name)
    }

    /// An integer list; empty when absent.
    pub fn ints(&self, name: &str) -> TractResult<Vec<i64>> {
        Ok(self.int_slice(name).to_vec())
    }

    /// An integer list borrowed from the model, for lists as long as a
    /// forest's nodes; empty when absent.
    pub fn int_slice(&self, name: &str) -> &'a [i64] {
        self.get(name).map_or(&[], |a| a.ints.as_slice())
    }

    /// An integer; `None` when absent.
    pub fn int(&self, name: &str) -> TractResult<Option<i64>> {
        Ok(self.get(name).map(|a| a.i))
    }

    /// A string list; empty when absent.
    pub fn strings(&self, name: &str) -> TractResult<Vec<String>> {
        self.get(name)
            .map(|a| {
                a.strings
                    .iter()
                    .map(|s| {
                        String::from_utf8(s.clone())
                            .map_err(|_| anyhow!("attribute {name} is not UTF-8"))
                    })
                    .collect()
            })
            .unwrap_or_else(|| Ok(Vec::new()))
    }

    /// Tree node modes (`BRANCH_LEQ`, …, `LEAF` as `None`), parsed from
    /// the attribute's bytes without a string per node; empty when absent.
    pub fn modes(&self, name: &str) -> TractResult<Vec<Option<Mode>>> {
        let Some(attribute) = self.get(name) else {
            return Ok(Vec::new());
        };
        attribute
            .strings
            .iter()
            .map(|s| {
                let text =
                    std::str::from_utf8(s).map_err(|_| anyhow!("attribute {name} is not UTF-8"))?;
                Mode::parse(text).map_err(|e| anyhow!(e))
            })
            .collect()
    }

    /// A string; `None` when absent.
    pub fn string(&self, name: &str) -> TractResult<Option<String>> {
        self.get(name)
            .map(|a| {
                String::from_utf8(a.s.clone()).map_err(|_| anyhow!("attribute {name} is not UTF-8"))
            })
            .transpose()
    }

    /// A list of reals: `name` (floats) or `name_as_tensor` (doubles, or
    /// floats), as f64; empty when both are absent.
    pub fn reals(&self, name: &str) -> TractResult<Vec<f64>> {
        if let Some(t) = self
            .get(&format!("{name}_as_tensor"))
            .and_then(|a| a.t.as_ref())
        {
            return tensor_reals(t).with_context(|| format!("attribute {name}_as_tensor"));
        }
        Ok(self
            .get(name)
            .map(|a| a.floats.iter().map(|f| f64::from(*f)).collect())
            .unwrap_or_default())
    }
}

impl Attributes<'_> {
    /// A tensor attribute's values as reals (FLOAT, DOUBLE); empty when absent.
    pub fn tensor_reals(&self, name: &str) -> TractResult<Vec<f64>> {
        match self.get(name).and_then(|a| a.t.as_ref()) {
            Some(t) => tensor_reals(t).with_context(|| format!("attribute {name}")),
            None => Ok(Vec::new()),
        }
    }

    /// A UINT8 tensor attribute's values (as ONNX stores them: raw bytes or
    /// int32_data); empty when absent.
    pub fn tensor_bytes(&self, name: &str) -> TractResult<Vec<u8>> {
        const UINT8: i32 = 2;
        match self.get(name).and_then(|a| a.t.as_ref()) {
            Some(t) if t.data_type == UINT8 && !t.int32_data.is_empty() => {
                Ok(t.int32_data.iter().map(|v| *v as u8).collect())
            }
            Some(t) if t.data_type == UINT8 => Ok(t.raw_data.clone()),
            Some(t) => bail!(
                "attribute {name}: expected a uint8 tensor, got data type {}",
                t.data_type
            ),
            None => Ok(Vec::new()),
        }
    }
}

/// The values of a FLOAT or DOUBLE tensor attribute.
fn tensor_reals(t: &TensorProto) -> TractResult<Vec<f64>> {
    const FLOAT: i32 = 1;
    const DOUBLE: i32 = 11;
    Ok(match t.data_type {
        DOUBLE if !t.double_data.is_empty() => t.double_data.clone(),
        DOUBLE => t
            .raw_data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
        FLOAT if !t.float_data.is_empty() => t.float_data.iter().map(|f| f64::from(*f)).collect(),
        FLOAT => t
            .raw_data
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap_or([0; 4]))))
            .collect(),
        other => bail!("expected a float or double tensor, got data type {other}"),
    })
}
