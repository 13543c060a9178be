//! From the operators' attributes to the flat layout: every reference
//! checked, each tree laid out depth first with a branch's true child right
//! after it, and values stored narrow when that is exact.

use std::collections::HashMap;

use super::node::{MAX_FEATURE, MAX_WEIGHTS, Node, Stored};
use super::{ForestSpec, Mode, Weight};

/// (tree, node id) → index, in the order nodes are given.
type NodeIndex = HashMap<(i64, i64), usize>;

/// Every per-node and per-weight attribute has one entry per node or weight.
fn check_lengths(spec: &ForestSpec) -> Result<(), String> {
    let n = spec.node_ids.len();
    for (name, len) in [
        ("nodes_treeids", spec.tree_ids.len()),
        ("nodes_featureids", spec.feature_ids.len()),
        ("nodes_values", spec.values.len()),
        ("nodes_modes", spec.modes.len()),
        ("nodes_truenodeids", spec.true_ids.len()),
        ("nodes_falsenodeids", spec.false_ids.len()),
    ] {
        if len != n {
            return Err(format!("{name} has {len} entries, nodes_nodeids has {n}"));
        }
    }
    if !spec.missing_true.is_empty() && spec.missing_true.len() != n {
        return Err("nodes_missing_value_tracks_true must have one entry per node".into());
    }
    let weight_count = spec.weight_node_ids.len();
    if spec.weight_tree_ids.len() != weight_count
        || spec.weight_targets.len() != weight_count
        || spec.weights.len() != weight_count
    {
        return Err("leaf weight attributes differ in length".into());
    }
    if u32::try_from(n).is_err() || weight_count > MAX_WEIGHTS {
        return Err(format!(
            "{n} nodes and {weight_count} leaf weights are more than a forest can hold"
        ));
    }
    Ok(())
}

fn index_nodes(spec: &ForestSpec) -> Result<NodeIndex, String> {
    let mut index = NodeIndex::with_capacity(spec.node_ids.len());
    for (i, key) in spec.tree_ids.iter().zip(spec.node_ids.iter()).enumerate() {
        if index.insert((*key.0, *key.1), i).is_some() {
            return Err(format!("node {} of tree {} is defined twice", key.1, key.0));
        }
    }
    Ok(index)
}

/// The weights each node gives: node `i`'s are `weights[starts[i]..starts[i + 1]]`,
/// in the order they are listed.
struct LeafWeights {
    starts: Vec<u32>,
    weights: Vec<Weight>,
}

impl LeafWeights {
    fn new(spec: &ForestSpec, index: &NodeIndex) -> Result<Self, String> {
        let count = spec.weight_node_ids.len();
        let mut owner = Vec::with_capacity(count);
        let mut starts = vec![0u32; spec.node_ids.len() + 1];
        for w in 0..count {
            let &node = index
                .get(&(spec.weight_tree_ids[w], spec.weight_node_ids[w]))
                .ok_or_else(|| {
                    format!(
                        "a weight names node {} of tree {}, which does not exist",
                        spec.weight_node_ids[w], spec.weight_tree_ids[w]
                    )
                })?;
            owner.push(node as u32);
            starts[node + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut next = starts.clone();
        let mut weights = vec![
            Weight {
                target: 0,
                value: 0.0
            };
            count
        ];
        for (w, node) in owner.into_iter().enumerate() {
            let target = usize::try_from(spec.weight_targets[w])
                .ok()
                .filter(|t| *t < spec.n_targets.max(1))
                .ok_or_else(|| {
                    format!("weight target {} is out of range", spec.weight_targets[w])
                })?;
            let at = &mut next[node as usize];
            weights[*at as usize] = Weight {
                target: target as u32,
                value: spec.weights[w],
            };
            *at += 1;
        }
        Ok(Self { starts, weights })
    }

    fn of(&self, node: usize) -> &[Weight] {
        &self.weights[self.starts[node] as usize..self.starts[node + 1] as usize]
    }

    /// The weights leaves give (a branch's are ignored).
    fn given<'a>(&'a self, spec: &'a ForestSpec) -> impl Iterator<Item = &'a Weight> + 'a {
        (0..spec.node_ids.len())
            .filter(|i| spec.modes[*i].is_none())
            .flat_map(|i| self.of(i))
    }
}

/// Each branch's (true, false) children, checked to exist in its tree and
/// to have no other parent.
fn children(spec: &ForestSpec, index: &NodeIndex) -> Result<Vec<(u32, u32)>, String> {
    let mut parent_of = vec![false; spec.node_ids.len()];
    let mut children = vec![(0, 0); spec.node_ids.len()];
    for i in (0..spec.node_ids.len()).filter(|i| spec.modes[*i].is_some()) {
        let mut child = |id: i64| {
            let c = index.get(&(spec.tree_ids[i], id)).copied().ok_or_else(|| {
                format!(
                    "node {} of tree {} points to missing node {id}",
                    spec.node_ids[i], spec.tree_ids[i]
                )
            })?;
            if std::mem::replace(&mut parent_of[c], true) {
                return Err(format!(
                    "node {id} of tree {} has more than one parent; a tree's nodes have one",
                    spec.tree_ids[i]
                ));
            }
            Ok(c as u32)
        };
        children[i] = (child(spec.true_ids[i])?, child(spec.false_ids[i])?);
    }
    Ok(children)
}

/// Roots: nodes no branch points to, one per tree, in tree order.
fn roots(spec: &ForestSpec, children: &[(u32, u32)]) -> Result<Vec<usize>, String> {
    let mut is_child = vec![false; spec.node_ids.len()];
    for i in (0..spec.node_ids.len()).filter(|i| spec.modes[*i].is_some()) {
        is_child[children[i].0 as usize] = true;
        is_child[children[i].1 as usize] = true;
    }
    let mut roots: Vec<(i64, usize)> = (0..is_child.len())
        .filter(|i| !is_child[*i])
        .map(|i| (spec.tree_ids[i], i))
        .collect();
    roots.sort_by_key(|(tree, _)| *tree);
    let trees: std::collections::BTreeSet<i64> = spec.tree_ids.iter().copied().collect();
    if roots.len() != trees.len() {
        return Err(format!(
            "found {} roots for {} trees; a tree has a cycle or is disconnected",
            roots.len(),
            trees.len()
        ));
    }
    Ok(roots.into_iter().map(|(_, i)| i).collect())
}

/// A forest's nodes, in the narrowest form that keeps its values exact.
#[derive(Clone, Debug)]
pub(super) enum Nodes {
    Narrow(Vec<Node<f32>>),
    Wide(Vec<Node<f64>>),
}

/// The checked, flattened forest, before it becomes a [`super::Forest`].
pub(super) struct Layout {
    pub nodes: Nodes,
    /// Where each tree starts, in tree order.
    pub roots: Vec<u32>,
    /// Leaves' weights, in node order; empty when leaves are scalar.
    pub weights: Vec<Weight>,
    /// Every leaf gives at most one value, all to this target.
    pub scalar_target: Option<u32>,
    pub max_feature: usize,
    pub has_branches: bool,
    /// Every branch uses this mode.
    pub single_mode: Option<Mode>,
    pub weights_all_positive: bool,
    pub weighted_targets: usize,
}

impl Layout {
    pub fn new(spec: &ForestSpec) -> Result<Self, String> {
        check_lengths(spec)?;
        let index = index_nodes(spec)?;
        let leaf_weights = LeafWeights::new(spec, &index)?;
        let children = children(spec, &index)?;
        let roots = roots(spec, &children)?;
        drop(index);

        let targets: std::collections::BTreeSet<u32> =
            leaf_weights.given(spec).map(|w| w.target).collect();
        let scalar_target = (targets.len() <= 1
            && (0..spec.node_ids.len())
                .all(|i| spec.modes[i].is_some() || leaf_weights.of(i).len() <= 1))
        .then(|| targets.first().copied().unwrap_or(0));
        let mut modes = std::collections::HashSet::new();
        let mut max_feature = 0;
        for i in (0..spec.node_ids.len()).filter(|i| spec.modes[*i].is_some()) {
            let feature = usize::try_from(spec.feature_ids[i])
                .ok()
                .filter(|f| *f <= MAX_FEATURE)
                .ok_or_else(|| format!("feature id {} is out of range", spec.feature_ids[i]))?;
            max_feature = max_feature.max(feature);
            modes.extend(spec.modes[i]);
        }
        let weights_all_positive = leaf_weights.given(spec).all(|w| w.value >= 0.0);
        let weighted_targets = targets.len();
        let layout = Builder {
            spec,
            children: &children,
            leaf_weights: &leaf_weights,
            scalar: scalar_target.is_some(),
        };
        let narrow = (0..spec.node_ids.len()).all(|i| f32::exactly(layout.value(i)).is_some());
        let (nodes, roots, weights) = if narrow {
            let (nodes, roots, weights) = layout.emit::<f32>(&roots)?;
            (Nodes::Narrow(nodes), roots, weights)
        } else {
            let (nodes, roots, weights) = layout.emit::<f64>(&roots)?;
            (Nodes::Wide(nodes), roots, weights)
        };
        Ok(Self {
            nodes,
            roots,
            weights,
            scalar_target,
            max_feature,
            has_branches: !modes.is_empty(),
            single_mode: (modes.len() == 1)
                .then(|| modes.into_iter().next())
                .flatten(),
            weights_all_positive,
            weighted_targets,
        })
    }
}

/// What emitting the nodes needs.
struct Builder<'a, 's> {
    spec: &'a ForestSpec<'s>,
    children: &'a [(u32, u32)],
    leaf_weights: &'a LeafWeights,
    scalar: bool,
}

impl Builder<'_, '_> {
    /// What node `i` stores in its value: a branch's threshold, a scalar
    /// leaf's total.
    fn value(&self, i: usize) -> f64 {
        match self.spec.modes[i] {
            Some(_) => self.spec.values[i],
            None if self.scalar => self.leaf_weights.of(i).iter().map(|w| w.value).sum(),
            None => 0.0,
        }
    }

    /// Each tree depth first from its root, a branch's true child right
    /// after it; the nodes, where each tree starts, and the leaves' weights.
    #[allow(clippy::type_complexity)]
    fn emit<V: Stored>(
        &self,
        roots: &[usize],
    ) -> Result<(Vec<Node<V>>, Vec<u32>, Vec<Weight>), String> {
        let spec = self.spec;
        let n = spec.node_ids.len();
        let exact = |i: usize| V::exactly(self.value(i)).ok_or("a value changed form");
        let mut nodes: Vec<Node<V>> = Vec::with_capacity(n);
        let mut weights = Vec::new();
        let mut starts = Vec::with_capacity(roots.len());
        // (node, the branch whose false child it is)
        let mut stack: Vec<(usize, Option<usize>)> = Vec::new();
        for &root in roots {
            starts.push(nodes.len() as u32);
            stack.push((root, None));
            while let Some((i, parent)) = stack.pop() {
                let at = nodes.len();
                if at == n {
                    return Err("a tree has a cycle".into());
                }
                if let Some(parent) = parent {
                    nodes[parent].other = at as u32;
                }
                let node = match spec.modes[i] {
                    Some(mode) => {
                        if mode == Mode::Member
                            && !(spec.values[i] >= 0.0
                                && (spec.values[i] as usize) < spec.member_sets.len())
                        {
                            return Err(format!(
                                "BRANCH_MEMBER node {} has no membership set",
                                spec.node_ids[i]
                            ));
                        }
                        let (t, f) = self.children[i];
                        stack.push((f as usize, Some(at)));
                        stack.push((t as usize, None));
                        let missing = spec.missing_true.get(i).is_some_and(|m| *m != 0);
                        let feature = spec.feature_ids[i] as usize;
                        Node::branch(feature, mode, missing, exact(i)?)
                    }
                    None => {
                        let first = weights.len();
                        let given = self.leaf_weights.of(i);
                        if !self.scalar {
                            weights.extend_from_slice(given);
                        }
                        // A scalar leaf's range only says whether it gives a
                        // value (0..1).
                        let (first, end) = if self.scalar {
                            (0, given.len())
                        } else {
                            (first, weights.len())
                        };
                        Node::leaf(first, end, exact(i)?)
                    }
                };
                nodes.push(node);
            }
        }
        if nodes.len() != n {
            return Err(format!(
                "{} of {n} nodes are in no tree; a tree has a cycle or is disconnected",
                n - nodes.len()
            ));
        }
        Ok((nodes, starts, weights))
    }
}
