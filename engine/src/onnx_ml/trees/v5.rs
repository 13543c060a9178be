//! The opset-5 `TreeEnsemble` layout (branch nodes and leaves in separate
//! arrays, trees by root index, integer enums, set membership), translated
//! into the same forest as the opset-1/3 operators.

use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::Ensemble;
use crate::onnx_ml::attributes::Attributes;
use crate::onnx_ml::forest::{Aggregate, Forest, ForestSpec, Mode, PostTransform};

/// The tree each node or leaf belongs to; `None` when no root reaches it.
type Membership = Vec<Option<i64>>;

/// The node's arrays, as read.
struct Layout {
    features: Vec<i64>,
    splits: Vec<f64>,
    modes: Vec<u8>,
    true_ids: Vec<i64>,
    true_leafs: Vec<i64>,
    false_ids: Vec<i64>,
    false_leafs: Vec<i64>,
    missing_true: Vec<i64>,
    leaf_targets: Vec<i64>,
    leaf_weights: Vec<f64>,
}

/// Parses a `TreeEnsemble` node.
pub(super) fn parse(node: &NodeProto) -> TractResult<Ensemble> {
    let a = Attributes(node);
    let layout = Layout::read(&a)?;
    let (node_tree, leaf_tree) = layout.trees(&a.ints("tree_roots")?)?;
    let mut spec = ForestSpec {
        n_targets: usize::try_from(a.int("n_targets")?.unwrap_or(1))?,
        member_sets: membership_sets(a.tensor_reals("membership_values")?),
        ..ForestSpec::default()
    };
    layout.push_branches(&mut spec, &node_tree)?;
    layout.push_leaves(&mut spec, &leaf_tree);
    let forest = Forest::new(&spec).map_err(|e| anyhow!("{}: {e}", node.name))?;
    Ok(Ensemble {
        forest,
        aggregate: aggregate(a.int("aggregate_function")?.unwrap_or(1))?,
        post: post_transform(a.int("post_transform")?.unwrap_or(0))?,
        base: Vec::new(),
        labels: None,
        scores_like_input: true,
    })
}

impl Layout {
    fn read(a: &Attributes) -> TractResult<Self> {
        let layout = Self {
            features: a.ints("nodes_featureids")?,
            splits: a.tensor_reals("nodes_splits")?,
            modes: a.tensor_bytes("nodes_modes")?,
            true_ids: a.ints("nodes_truenodeids")?,
            true_leafs: a.ints("nodes_trueleafs")?,
            false_ids: a.ints("nodes_falsenodeids")?,
            false_leafs: a.ints("nodes_falseleafs")?,
            missing_true: a.ints("nodes_missing_value_tracks_true")?,
            leaf_targets: a.ints("leaf_targetids")?,
            leaf_weights: a.tensor_reals("leaf_weights")?,
        };
        let n_nodes = layout.features.len();
        for (name, len) in [
            ("nodes_splits", layout.splits.len()),
            ("nodes_modes", layout.modes.len()),
            ("nodes_truenodeids", layout.true_ids.len()),
            ("nodes_trueleafs", layout.true_leafs.len()),
            ("nodes_falsenodeids", layout.false_ids.len()),
            ("nodes_falseleafs", layout.false_leafs.len()),
        ] {
            ensure!(
                len == n_nodes,
                "{name} has {len} entries for {n_nodes} nodes"
            );
        }
        ensure!(
            layout.leaf_targets.len() == layout.leaf_weights.len(),
            "leaf_targetids and leaf_weights differ in length"
        );
        Ok(layout)
    }

    /// Which tree each node and each leaf belongs to, found from the roots.
    fn trees(&self, roots: &[i64]) -> TractResult<(Membership, Membership)> {
        let n_nodes = self.features.len();
        let mut node_tree = vec![None; n_nodes];
        let mut leaf_tree = vec![None; self.leaf_weights.len()];
        for (t, root) in roots.iter().enumerate() {
            let mut stack = vec![usize::try_from(*root)?];
            while let Some(i) = stack.pop() {
                ensure!(
                    i < n_nodes && node_tree[i].is_none(),
                    "tree {t} reaches node {i} twice or out of range"
                );
                node_tree[i] = Some(t as i64);
                for (id, is_leaf) in [
                    (self.true_ids[i], self.true_leafs[i]),
                    (self.false_ids[i], self.false_leafs[i]),
                ] {
                    let id = usize::try_from(id)?;
                    if is_leaf != 0 {
                        ensure!(id < leaf_tree.len(), "node {i} points to missing leaf {id}");
                        leaf_tree[id] = Some(t as i64);
                    } else {
                        stack.push(id);
                    }
                }
            }
        }
        Ok((node_tree, leaf_tree))
    }

    /// Branch nodes reached from a root; leaves are numbered after them.
    fn push_branches(&self, spec: &mut ForestSpec, node_tree: &[Option<i64>]) -> TractResult<()> {
        let n_nodes = self.features.len();
        let child = |id: i64, leaf: i64| if leaf != 0 { n_nodes as i64 + id } else { id };
        let mut member = 0;
        for (i, tree) in node_tree.iter().enumerate() {
            let Some(tree) = *tree else { continue };
            spec.tree_ids.to_mut().push(tree);
            spec.node_ids.to_mut().push(i as i64);
            spec.feature_ids.to_mut().push(self.features[i]);
            spec.modes.push(Some(mode(self.modes[i])?));
            spec.values.push(if self.modes[i] == 6 {
                member += 1;
                (member - 1) as f64
            } else {
                self.splits[i]
            });
            spec.true_ids
                .to_mut()
                .push(child(self.true_ids[i], self.true_leafs[i]));
            spec.false_ids
                .to_mut()
                .push(child(self.false_ids[i], self.false_leafs[i]));
            spec.missing_true
                .to_mut()
                .push(self.missing_true.get(i).copied().unwrap_or(0));
        }
        Ok(())
    }

    /// Leaves reached from a root, each a node with one weight.
    fn push_leaves(&self, spec: &mut ForestSpec, leaf_tree: &[Option<i64>]) {
        let n_nodes = self.features.len();
        for (j, tree) in leaf_tree.iter().enumerate() {
            let Some(tree) = *tree else { continue };
            let id = (n_nodes + j) as i64;
            spec.tree_ids.to_mut().push(tree);
            spec.node_ids.to_mut().push(id);
            spec.feature_ids.to_mut().push(0);
            spec.modes.push(None);
            spec.values.push(0.0);
            spec.true_ids.to_mut().push(0);
            spec.false_ids.to_mut().push(0);
            spec.missing_true.to_mut().push(0);
            spec.weight_tree_ids.to_mut().push(tree);
            spec.weight_node_ids.to_mut().push(id);
            spec.weight_targets.to_mut().push(self.leaf_targets[j]);
            spec.weights.push(self.leaf_weights[j]);
        }
    }
}

/// Membership sets, NaN-separated, in the order of the BRANCH_MEMBER nodes.
fn membership_sets(values: Vec<f64>) -> Vec<Vec<f64>> {
    let mut sets: Vec<Vec<f64>> = vec![Vec::new()];
    for v in values {
        if v.is_nan() {
            sets.push(Vec::new())
        } else if let Some(last) = sets.last_mut() {
            last.push(v)
        }
    }
    sets
}

fn mode(m: u8) -> TractResult<Mode> {
    Ok(match m {
        0 => Mode::Leq,
        1 => Mode::Lt,
        2 => Mode::Gte,
        3 => Mode::Gt,
        4 => Mode::Eq,
        5 => Mode::Neq,
        6 => Mode::Member,
        other => bail!("unknown node mode {other}"),
    })
}

fn aggregate(code: i64) -> TractResult<Aggregate> {
    Ok(match code {
        0 => Aggregate::Average,
        1 => Aggregate::Sum,
        2 => Aggregate::Min,
        3 => Aggregate::Max,
        other => bail!("unknown aggregate_function {other}"),
    })
}

fn post_transform(code: i64) -> TractResult<PostTransform> {
    Ok(match code {
        0 => PostTransform::None,
        1 => PostTransform::Softmax,
        2 => PostTransform::Logistic,
        3 => PostTransform::SoftmaxZero,
        4 => PostTransform::Probit,
        other => bail!("unknown post_transform {other}"),
    })
}
