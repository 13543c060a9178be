//! Tree ensembles as the ONNX-ML `TreeEnsembleClassifier` and
//! `TreeEnsembleRegressor` operators define them, laid out for speed: every
//! tree's nodes in contiguous arrays, children and leaf weights reached by
//! direct index, rows evaluated tree by tree while a tree is in cache, and
//! within a tree several rows walked side by side without branches, so one
//! row's cache miss or unpredictable turn does not stall the others.

mod post_transform;

pub use post_transform::{PostTransform, logistic};
use std::borrow::Cow;

/// How a branch node compares a feature with its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `x <= t`
    Leq,
    /// `x < t`
    Lt,
    /// `x >= t`
    Gte,
    /// `x > t`
    Gt,
    /// `x == t`
    Eq,
    /// `x != t`
    Neq,
    /// `x` is one of a set of values (ai.onnx.ml 5); the node's threshold
    /// holds the index of its set.
    Member,
}

impl Mode {
    /// Parses a `nodes_modes` entry; `None` for `LEAF`.
    pub fn parse(s: &str) -> Result<Option<Self>, String> {
        Ok(Some(match s {
            "BRANCH_LEQ" => Self::Leq,
            "BRANCH_LT" => Self::Lt,
            "BRANCH_GTE" => Self::Gte,
            "BRANCH_GT" => Self::Gt,
            "BRANCH_EQ" => Self::Eq,
            "BRANCH_NEQ" => Self::Neq,
            "BRANCH_MEMBER" => Self::Member,
            "LEAF" => return Ok(None),
            other => return Err(format!("unknown node mode {other:?}")),
        }))
    }

    #[inline]
    fn holds(self, x: f64, t: f64) -> bool {
        match self {
            Self::Leq => x <= t,
            Self::Lt => x < t,
            Self::Gte => x >= t,
            Self::Gt => x > t,
            Self::Eq => x == t,
            Self::Neq => x != t,
            // Set membership needs the forest's sets; see `Forest::is_member`.
            Self::Member => false,
        }
    }
}

/// How leaf values of different trees combine, per target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// Sum over trees.
    Sum,
    /// Mean over trees.
    Average,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
}

impl Aggregate {
    /// Parses `aggregate_function`.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "SUM" => Self::Sum,
            "AVERAGE" => Self::Average,
            "MIN" => Self::Min,
            "MAX" => Self::Max,
            other => return Err(format!("unknown aggregate function {other:?}")),
        })
    }
}

/// One node in the flattened layout.
#[derive(Clone, Copy, Debug)]
struct Node {
    /// Feature index (branches).
    feature: u32,
    /// Index of the node taken when the comparison holds (branches), or the
    /// first of the leaf's weights (leaves).
    true_or_first_weight: u32,
    /// Index of the node taken otherwise (branches), or one past the leaf's
    /// last weight (leaves).
    false_or_end_weight: u32,
    /// `None` for leaves.
    mode: Option<Mode>,
    /// NaN takes the true branch.
    missing_true: bool,
    /// Threshold.
    threshold: f64,
}

/// A leaf's contribution to one target or class.
#[derive(Clone, Copy, Debug)]
struct Weight {
    target: u32,
    value: f64,
}

/// The attributes of a tree ensemble, as the operators give them. The
/// integer arrays are borrowed from the parsed model where they can be
/// (a copy of every node's ids would add to the peak of loading).
#[derive(Clone, Debug, Default)]
pub struct ForestSpec<'a> {
    /// `nodes_treeids`
    pub tree_ids: Cow<'a, [i64]>,
    /// `nodes_nodeids`
    pub node_ids: Cow<'a, [i64]>,
    /// `nodes_featureids`
    pub feature_ids: Cow<'a, [i64]>,
    /// `nodes_values` (or `nodes_values_as_tensor`)
    pub values: Vec<f64>,
    /// `nodes_modes`, parsed as read (`None`: a leaf): a byte per node,
    /// where a string per node would cost an allocation each.
    pub modes: Vec<Option<Mode>>,
    /// `nodes_truenodeids`
    pub true_ids: Cow<'a, [i64]>,
    /// `nodes_falsenodeids`
    pub false_ids: Cow<'a, [i64]>,
    /// `nodes_missing_value_tracks_true` (may be empty)
    pub missing_true: Cow<'a, [i64]>,
    /// `class_treeids` / `target_treeids`
    pub weight_tree_ids: Cow<'a, [i64]>,
    /// `class_nodeids` / `target_nodeids`
    pub weight_node_ids: Cow<'a, [i64]>,
    /// `class_ids` / `target_ids`
    pub weight_targets: Cow<'a, [i64]>,
    /// `class_weights` / `target_weights` (or `_as_tensor`)
    pub weights: Vec<f64>,
    /// Number of targets or classes.
    pub n_targets: usize,
    /// The sets of `BRANCH_MEMBER` nodes, whose `values` entry is an index
    /// into this list.
    pub member_sets: Vec<Vec<f64>>,
}

/// Rows walked side by side through a tree, or trees by a row.
const LANES: usize = 8;

/// Batches are split over the CPUs only from this many rows…
const PARALLEL_MIN_ROWS: usize = 1024;
/// …and this many tree walks (rows × trees): below, threads cost more than
/// they save.
const PARALLEL_MIN_WALKS: usize = 32_768;

/// CPUs available, asked once: the query reads cgroup files, which costs
/// more than evaluating a small batch.
fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

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
    Ok(())
}

/// (tree, node id) → index, in the order nodes are given.
type NodeIndex = std::collections::HashMap<(i64, i64), usize>;

fn index_nodes(spec: &ForestSpec) -> Result<NodeIndex, String> {
    let mut index = NodeIndex::with_capacity(spec.node_ids.len());
    for (i, key) in spec.tree_ids.iter().zip(spec.node_ids.iter()).enumerate() {
        if index.insert((*key.0, *key.1), i).is_some() {
            return Err(format!("node {} of tree {} is defined twice", key.1, key.0));
        }
    }
    Ok(index)
}

/// The weights each node gives, by node index.
fn leaf_weights(spec: &ForestSpec, index: &NodeIndex) -> Result<Vec<Vec<Weight>>, String> {
    let mut leaf_weights: Vec<Vec<Weight>> = vec![Vec::new(); spec.node_ids.len()];
    for w in 0..spec.weight_node_ids.len() {
        let &node = index
            .get(&(spec.weight_tree_ids[w], spec.weight_node_ids[w]))
            .ok_or_else(|| {
                format!(
                    "a weight names node {} of tree {}, which does not exist",
                    spec.weight_node_ids[w], spec.weight_tree_ids[w]
                )
            })?;
        let target = usize::try_from(spec.weight_targets[w])
            .ok()
            .filter(|t| *t < spec.n_targets.max(1))
            .ok_or_else(|| format!("weight target {} is out of range", spec.weight_targets[w]))?;
        leaf_weights[node].push(Weight {
            target: target as u32,
            value: spec.weights[w],
        });
    }
    Ok(leaf_weights)
}

/// Roots: nodes no branch points to, one per tree, in tree order.
fn roots(spec: &ForestSpec, is_child: &[bool]) -> Result<Vec<u32>, String> {
    let mut roots: Vec<(i64, u32)> = (0..is_child.len())
        .filter(|i| !is_child[*i])
        .map(|i| (spec.tree_ids[i], i as u32))
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

/// The flat layout under construction.
struct Layout {
    nodes: Vec<Node>,
    weights: Vec<Weight>,
    /// Leaves give one value of one target at most: kept in the node, with
    /// no weight list.
    scalar_leaves: bool,
    is_child: Vec<bool>,
    modes: std::collections::HashSet<Mode>,
    max_feature: usize,
}

impl Layout {
    /// Branch node `i`, whose children must exist in its tree.
    fn branch(
        &mut self,
        spec: &ForestSpec,
        index: &NodeIndex,
        i: usize,
        mode: Mode,
    ) -> Result<Node, String> {
        let child = |id: i64| {
            index.get(&(spec.tree_ids[i], id)).copied().ok_or_else(|| {
                format!(
                    "node {} of tree {} points to missing node {id}",
                    spec.node_ids[i], spec.tree_ids[i]
                )
            })
        };
        let (t, f) = (child(spec.true_ids[i])?, child(spec.false_ids[i])?);
        self.is_child[t] = true;
        self.is_child[f] = true;
        let feature =
            usize::try_from(spec.feature_ids[i]).map_err(|_| "negative feature id".to_owned())?;
        self.max_feature = self.max_feature.max(feature);
        self.modes.insert(mode);
        if mode == Mode::Member
            && !(spec.values[i] >= 0.0 && (spec.values[i] as usize) < spec.member_sets.len())
        {
            return Err(format!(
                "BRANCH_MEMBER node {} has no membership set",
                spec.node_ids[i]
            ));
        }
        Ok(Node {
            feature: feature as u32,
            true_or_first_weight: t as u32,
            false_or_end_weight: f as u32,
            mode: Some(mode),
            missing_true: missing_true(spec, i),
            threshold: spec.values[i],
        })
    }

    /// Leaf node `i`, giving `leaf_weights`.
    fn leaf(&mut self, spec: &ForestSpec, i: usize, leaf_weights: &[Weight]) -> Node {
        // A scalar leaf's range only says whether it gives a value (0..1).
        let first = if self.scalar_leaves {
            0
        } else {
            self.weights.extend_from_slice(leaf_weights);
            self.weights.len() - leaf_weights.len()
        };
        Node {
            feature: 0,
            true_or_first_weight: first as u32,
            false_or_end_weight: (first + leaf_weights.len()) as u32,
            mode: None,
            missing_true: missing_true(spec, i),
            // The leaf's total, for forests whose leaves each give one value
            // (see `scalar_leaves`).
            threshold: leaf_weights.iter().map(|w| w.value).sum(),
        }
    }
}

fn missing_true(spec: &ForestSpec, i: usize) -> bool {
    spec.missing_true.get(i).is_some_and(|m| *m != 0)
}

/// A parsed, flattened forest.
#[derive(Clone, Debug)]
pub struct Forest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    weights: Vec<Weight>,
    n_targets: usize,
    max_feature: usize,
    /// Every branch node uses this mode (specialised comparison).
    single_mode: Option<Mode>,
    /// Every leaf gives at most one value, all to this target (a regressor's
    /// one, a binary classifier's first): a leaf's value is read from the
    /// node itself, and there is no weight list.
    scalar_target: Option<u32>,
    /// Sets of `BRANCH_MEMBER` nodes.
    member_sets: Vec<Vec<f64>>,
    /// Every leaf weight is ≥ 0.
    weights_all_positive: bool,
    /// Distinct targets leaf weights are given for.
    weighted_targets: usize,
}

impl Forest {
    /// Builds the layout; checks every reference.
    pub fn new(spec: &ForestSpec) -> Result<Self, String> {
        check_lengths(spec)?;
        let index = index_nodes(spec)?;
        let leaf_weights = leaf_weights(spec, &index)?;
        // The weights leaves give (a branch's are ignored), not copied.
        let given = || {
            leaf_weights
                .iter()
                .zip(&spec.modes)
                .filter(|(_, mode)| mode.is_none())
                .flat_map(|(weights, _)| weights.iter())
        };
        let targets: std::collections::BTreeSet<u32> = given().map(|w| w.target).collect();
        let scalar_target = (targets.len() <= 1
            && leaf_weights
                .iter()
                .zip(&spec.modes)
                .all(|(weights, mode)| mode.is_some() || weights.len() <= 1))
        .then(|| targets.first().copied().unwrap_or(0));
        let scalar_leaves = scalar_target.is_some();
        let mut layout = Layout {
            nodes: Vec::with_capacity(spec.node_ids.len()),
            weights: Vec::with_capacity(if scalar_leaves { 0 } else { given().count() }),
            scalar_leaves,
            is_child: vec![false; spec.node_ids.len()],
            modes: std::collections::HashSet::new(),
            max_feature: 0,
        };
        for (i, leaf_weights) in leaf_weights.iter().enumerate() {
            let node = match spec.modes[i] {
                Some(mode) => layout.branch(spec, &index, i, mode)?,
                None => layout.leaf(spec, i, leaf_weights),
            };
            layout.nodes.push(node);
        }
        let roots = roots(spec, &layout.is_child)?;
        let Layout {
            nodes,
            weights,
            modes,
            max_feature,
            ..
        } = layout;
        let single_mode = (modes.len() == 1)
            .then(|| modes.into_iter().next())
            .flatten();
        Ok(Self {
            nodes,
            roots,
            n_targets: spec.n_targets,
            max_feature,
            single_mode,
            scalar_target,
            member_sets: spec.member_sets.clone(),
            weights_all_positive: given().all(|w| w.value >= 0.0),
            weighted_targets: targets.len(),
            weights,
        })
    }

    /// Whether `x` is in the set of a `BRANCH_MEMBER` node.
    #[inline]
    fn is_member(&self, node: &Node, x: f64) -> bool {
        self.member_sets[node.threshold as usize].contains(&x)
    }

    /// Number of targets or classes scored.
    pub fn n_targets(&self) -> usize {
        self.n_targets
    }

    /// Number of trees.
    pub fn trees(&self) -> usize {
        self.roots.len()
    }

    /// Features a row must have at least.
    pub fn min_features(&self) -> usize {
        if self.nodes.iter().any(|n| n.mode.is_some()) {
            self.max_feature + 1
        } else {
            0
        }
    }

    /// The leaf a row reaches in the tree at `root`, with `goes_true`
    /// deciding each branch (monomorphised per comparison mode).
    #[inline(always)]
    fn leaf<T: Copy + Into<f64>>(
        &self,
        root: u32,
        row: &[T],
        goes_true: impl Fn(&Node, f64) -> bool,
    ) -> &Node {
        let mut node = &self.nodes[root as usize];
        while node.mode.is_some() {
            let x: f64 = row[node.feature as usize].into();
            let next = if goes_true(node, x) || (node.missing_true && x.is_nan()) {
                node.true_or_first_weight
            } else {
                node.false_or_end_weight
            };
            node = &self.nodes[next as usize];
        }
        node
    }

    /// Calls `reached` with each row's index and each leaf it reaches, the
    /// trees in order for every row; tree-major, so that each tree's nodes
    /// stay in cache while rows walk it. Rows come [`LANES`] at a time
    /// through each tree side by side, the rest one by one; but a last lone
    /// row goes through [`LANES`] trees side by side (its walk is then a few
    /// selects rather than a mispredicted jump at every node).
    #[inline(always)]
    fn each_leaf<T: Copy + Into<f64>>(
        &self,
        rows: &[T],
        n_features: usize,
        goes_true: impl Fn(&Node, f64) -> bool + Copy,
        mut reached: impl FnMut(usize, &Node),
    ) {
        let width = n_features.max(1);
        // A leaf's fields are not a branch's: walking side by side reads
        // them (and discards what they give), which a membership test
        // cannot survive (its threshold indexes the sets).
        let lockstep = n_features > 0 && self.single_mode != Some(Mode::Member);
        let mut done = 0;
        if lockstep {
            for &root in &self.roots {
                for (g, group) in rows.chunks_exact(width * LANES).enumerate() {
                    let lanes: [&[T]; LANES] =
                        std::array::from_fn(|l| &group[l * width..(l + 1) * width]);
                    for (l, at) in self
                        .leaves([root; LANES], &lanes, goes_true)
                        .iter()
                        .enumerate()
                    {
                        reached(g * LANES + l, &self.nodes[*at as usize]);
                    }
                }
            }
            done = rows.len() / (width * LANES) * LANES;
        }
        // One row left (a lone request's): trees side by side. Several are
        // quicker one by one (measured: 7 rows of a 63-leaf LightGBM took
        // 1.7 times as long side by side).
        let lone = lockstep && rows.len() == (done + 1) * width;
        let split = if lone {
            self.roots.len() / LANES * LANES
        } else {
            0
        };
        let (side_by_side, one_by_one) = self.roots.split_at(split);
        let row = rows.get(done * width..).unwrap_or_default();
        for trees in side_by_side.chunks_exact(LANES) {
            let start: [u32; LANES] = std::array::from_fn(|l| trees[l]);
            for at in self.leaves(start, &[row; LANES], goes_true) {
                reached(done, &self.nodes[at as usize]);
            }
        }
        for &root in one_by_one {
            for (r, row) in rows.chunks_exact(width).enumerate().skip(done) {
                reached(r, self.leaf(root, row, goes_true));
            }
        }
    }

    /// The leaves (node indices) reached from the nodes `start` by `rows`
    /// (a row per lane: several rows through one tree, or one row through
    /// several trees), walked in lockstep: every step advances each lane
    /// still on a branch, with a select instead of a jump, until all are on
    /// leaves.
    #[inline(always)]
    fn leaves<T: Copy + Into<f64>>(
        &self,
        start: [u32; LANES],
        rows: &[&[T]; LANES],
        goes_true: impl Fn(&Node, f64) -> bool,
    ) -> [u32; LANES] {
        let mut at = start;
        loop {
            let mut walking = false;
            for (lane, row) in at.iter_mut().zip(rows) {
                let node = &self.nodes[*lane as usize];
                let branch = node.mode.is_some();
                let x: f64 = row[node.feature as usize].into();
                let holds = goes_true(node, x) | (node.missing_true & x.is_nan());
                let child = if holds {
                    node.true_or_first_weight
                } else {
                    node.false_or_end_weight
                };
                *lane = if branch { child } else { *lane };
                walking |= branch;
            }
            if !walking {
                return at;
            }
        }
    }

    /// Aggregated leaf values: `scores[row * n_targets + target]`, and
    /// whether any leaf gave each target a value.
    pub fn eval<T: Copy + Into<f64> + Sync>(
        &self,
        rows: &[T],
        n_features: usize,
        aggregate: Aggregate,
    ) -> (Vec<f64>, Vec<bool>) {
        let n_rows = rows.len().checked_div(n_features).unwrap_or(0);
        // Threads pay for themselves only on large batches.
        if n_rows < PARALLEL_MIN_ROWS || n_rows * self.trees() < PARALLEL_MIN_WALKS || cpus() < 2 {
            return self.eval_serial(rows, n_features, aggregate);
        }
        // On the process's one pool of threads, started once: threads
        // started per run cost more than a small forest's 4,096 rows.
        use rayon::prelude::*;
        let per_thread = n_rows.div_ceil(cpus());
        let parts: Vec<(Vec<f64>, Vec<bool>)> = rows
            .par_chunks(per_thread * n_features)
            .map(|chunk| self.eval_serial(chunk, n_features, aggregate))
            .collect();
        let mut scores = Vec::with_capacity(n_rows * self.n_targets);
        let mut has = Vec::with_capacity(n_rows * self.n_targets);
        for (s, h) in parts {
            scores.extend(s);
            has.extend(h);
        }
        (scores, has)
    }

    fn eval_serial<T: Copy + Into<f64>>(
        &self,
        rows: &[T],
        n_features: usize,
        aggregate: Aggregate,
    ) -> (Vec<f64>, Vec<bool>) {
        // The common case (every exporter writes one mode): the comparison is
        // chosen once, not at every node.
        match self.single_mode {
            Some(Mode::Leq) => self.eval_with(rows, n_features, aggregate, |n, x| x <= n.threshold),
            Some(Mode::Lt) => self.eval_with(rows, n_features, aggregate, |n, x| x < n.threshold),
            Some(Mode::Gte) => self.eval_with(rows, n_features, aggregate, |n, x| x >= n.threshold),
            Some(Mode::Gt) => self.eval_with(rows, n_features, aggregate, |n, x| x > n.threshold),
            Some(Mode::Eq) => self.eval_with(rows, n_features, aggregate, |n, x| x == n.threshold),
            Some(Mode::Neq) => self.eval_with(rows, n_features, aggregate, |n, x| x != n.threshold),
            Some(Mode::Member) => {
                self.eval_with(rows, n_features, aggregate, |n, x| self.is_member(n, x))
            }
            None => self.eval_with(rows, n_features, aggregate, |n, x| match n.mode {
                Some(Mode::Member) => self.is_member(n, x),
                Some(m) => m.holds(x, n.threshold),
                None => false,
            }),
        }
    }

    fn eval_with<T: Copy + Into<f64>>(
        &self,
        rows: &[T],
        n_features: usize,
        aggregate: Aggregate,
        goes_true: impl Fn(&Node, f64) -> bool + Copy,
    ) -> (Vec<f64>, Vec<bool>) {
        let n_rows = rows.len().checked_div(n_features).unwrap_or(0);
        let t = self.n_targets;
        let mut scores = vec![0.0; n_rows * t];
        let mut has = vec![false; n_rows * t];
        let summing = matches!(aggregate, Aggregate::Sum | Aggregate::Average);
        if let (true, Some(k)) = (summing, self.scalar_target) {
            // The usual regressor and binary classifier: one sum per row.
            let k = k as usize;
            self.each_leaf(rows, n_features, goes_true, |r, leaf| {
                scores[r * t + k] += leaf.threshold;
                has[r * t + k] |= leaf.false_or_end_weight > leaf.true_or_first_weight;
            });
        } else {
            self.accumulate(
                rows,
                n_features,
                aggregate,
                goes_true,
                &mut scores,
                &mut has,
            );
        }
        if aggregate == Aggregate::Average {
            let n = self.trees().max(1) as f64;
            scores.iter_mut().for_each(|s| *s /= n);
        }
        (scores, has)
    }

    /// The general case: any number of targets and weights per leaf.
    fn accumulate<T: Copy + Into<f64>>(
        &self,
        rows: &[T],
        n_features: usize,
        aggregate: Aggregate,
        goes_true: impl Fn(&Node, f64) -> bool + Copy,
        scores: &mut [f64],
        has: &mut [bool],
    ) {
        let t = self.n_targets;
        let summing = matches!(aggregate, Aggregate::Sum | Aggregate::Average);
        self.each_leaf(rows, n_features, goes_true, |r, leaf| {
            for w in self.weights_of(leaf) {
                let k = r * t + w.target as usize;
                scores[k] = if summing {
                    scores[k] + w.value
                } else if !has[k] {
                    w.value
                } else if aggregate == Aggregate::Min {
                    scores[k].min(w.value)
                } else {
                    scores[k].max(w.value)
                };
                has[k] = true;
            }
        });
    }

    /// What `leaf` gives: its listed weights, or the one value a scalar
    /// leaf keeps in itself.
    #[inline(always)]
    fn weights_of<'a>(&'a self, leaf: &'a Node) -> impl Iterator<Item = Weight> + 'a {
        let range = leaf.true_or_first_weight as usize..leaf.false_or_end_weight as usize;
        let (kept, listed) = if let Some(target) = self.scalar_target {
            let kept = Weight {
                target,
                value: leaf.threshold,
            };
            ((!range.is_empty()).then_some(kept), &[][..])
        } else {
            (None, self.weights.get(range).unwrap_or_default())
        };
        kept.into_iter().chain(listed.iter().copied())
    }

    /// Whether every leaf weight is ≥ 0 (decides the binary classifier's
    /// threshold and second column, as in onnxruntime).
    pub fn weights_all_positive(&self) -> bool {
        self.weights_all_positive
    }

    /// The distinct targets leaf weights are given for.
    pub fn weighted_targets(&self) -> usize {
        self.weighted_targets
    }
}

#[cfg(test)]
mod tests;
