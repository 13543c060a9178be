//! Tree ensembles as the ONNX-ML `TreeEnsembleClassifier` and
//! `TreeEnsembleRegressor` operators define them, laid out for speed: every
//! tree's nodes in contiguous arrays, children and leaf weights reached by
//! direct index, rows evaluated tree by tree while a tree is in cache, and
//! within a tree several rows walked side by side without branches, so one
//! row's cache miss or unpredictable turn does not stall the others.

mod layout;
mod node;
mod post_transform;

pub use post_transform::{PostTransform, logistic};
use std::borrow::Cow;

use layout::{Layout, Nodes};
use node::{Node, Stored};

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

/// Rows walked side by side through a tree.
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

/// A parsed, flattened forest.
#[derive(Clone, Debug)]
pub struct Forest {
    nodes: Nodes,
    /// Where each tree starts.
    roots: Vec<u32>,
    weights: Vec<Weight>,
    n_targets: usize,
    max_feature: usize,
    has_branches: bool,
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
        let Layout {
            nodes,
            roots,
            weights,
            scalar_target,
            max_feature,
            has_branches,
            single_mode,
            weights_all_positive,
            weighted_targets,
        } = Layout::new(spec)?;
        Ok(Self {
            nodes,
            roots,
            weights,
            n_targets: spec.n_targets,
            max_feature,
            has_branches,
            single_mode,
            scalar_target,
            member_sets: spec.member_sets.clone(),
            weights_all_positive,
            weighted_targets,
        })
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
        if self.has_branches {
            self.max_feature + 1
        } else {
            0
        }
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
        match &self.nodes {
            Nodes::Narrow(nodes) => Walk {
                forest: self,
                nodes,
            }
            .eval(rows, n_features, aggregate),
            Nodes::Wide(nodes) => Walk {
                forest: self,
                nodes,
            }
            .eval(rows, n_features, aggregate),
        }
    }
}

/// A forest walked, with its nodes in the form they are stored in.
struct Walk<'a, V> {
    forest: &'a Forest,
    nodes: &'a [Node<V>],
}

impl<V: Stored> Walk<'_, V> {
    fn eval<T: Copy + Into<f64>>(
        &self,
        rows: &[T],
        n_features: usize,
        aggregate: Aggregate,
    ) -> (Vec<f64>, Vec<bool>) {
        // The common case (every exporter writes one mode): the comparison is
        // chosen once, not at every node.
        match self.forest.single_mode {
            Some(Mode::Leq) => {
                self.eval_with(rows, n_features, aggregate, |n, x| x <= n.threshold())
            }
            Some(Mode::Lt) => self.eval_with(rows, n_features, aggregate, |n, x| x < n.threshold()),
            Some(Mode::Gte) => {
                self.eval_with(rows, n_features, aggregate, |n, x| x >= n.threshold())
            }
            Some(Mode::Gt) => self.eval_with(rows, n_features, aggregate, |n, x| x > n.threshold()),
            Some(Mode::Eq) => {
                self.eval_with(rows, n_features, aggregate, |n, x| x == n.threshold())
            }
            Some(Mode::Neq) => {
                self.eval_with(rows, n_features, aggregate, |n, x| x != n.threshold())
            }
            Some(Mode::Member) => {
                self.eval_with(rows, n_features, aggregate, |n, x| self.is_member(n, x))
            }
            None => self.eval_with(rows, n_features, aggregate, |n, x| match n.mode() {
                Some(Mode::Member) => self.is_member(n, x),
                Some(m) => m.holds(x, n.threshold()),
                None => false,
            }),
        }
    }

    /// Whether `x` is in the set of a `BRANCH_MEMBER` node.
    #[inline]
    fn is_member(&self, node: &Node<V>, x: f64) -> bool {
        self.forest.member_sets[node.threshold() as usize].contains(&x)
    }

    /// The child a row goes to from branch `at`.
    #[inline(always)]
    fn next(
        &self,
        at: u32,
        node: &Node<V>,
        x: f64,
        goes_true: impl Fn(&Node<V>, f64) -> bool,
    ) -> u32 {
        let holds = goes_true(node, x) | (node.missing_true() & x.is_nan());
        if holds { at + 1 } else { node.other }
    }

    /// The leaf a row reaches in the tree at `root`, with `goes_true`
    /// deciding each branch (monomorphised per comparison mode).
    #[inline(always)]
    fn leaf<T: Copy + Into<f64>>(
        &self,
        root: u32,
        row: &[T],
        goes_true: impl Fn(&Node<V>, f64) -> bool + Copy,
    ) -> &Node<V> {
        let mut at = root;
        let mut node = &self.nodes[at as usize];
        while node.is_branch() {
            at = self.next(at, node, row[node.feature()].into(), goes_true);
            node = &self.nodes[at as usize];
        }
        node
    }

    /// Calls `reached` with each row's index and the leaf it reaches in the
    /// tree at `root`: [`LANES`] rows at a time walked side by side, the
    /// rest one by one.
    #[inline(always)]
    fn each_leaf<T: Copy + Into<f64>>(
        &self,
        root: u32,
        rows: &[T],
        n_features: usize,
        goes_true: impl Fn(&Node<V>, f64) -> bool + Copy,
        mut reached: impl FnMut(usize, &Node<V>),
    ) {
        let width = n_features.max(1);
        let mut done = 0;
        // A leaf's fields are not a branch's: walking side by side reads
        // them (and discards what they give), which a membership test
        // cannot survive (its threshold indexes the sets).
        if n_features > 0 && self.forest.single_mode != Some(Mode::Member) {
            for group in rows.chunks_exact(width * LANES) {
                let lanes: [&[T]; LANES] =
                    std::array::from_fn(|l| &group[l * width..(l + 1) * width]);
                for (l, at) in self.leaves(root, &lanes, goes_true).iter().enumerate() {
                    reached(done + l, &self.nodes[*at as usize]);
                }
                done += LANES;
            }
        }
        for (r, row) in rows.chunks_exact(width).enumerate().skip(done) {
            reached(r, self.leaf(root, row, goes_true));
        }
    }

    /// The leaves (node indices) `rows` reach in the tree at `root`, walked
    /// in lockstep: every step advances each row still on a branch, with a
    /// select instead of a jump, until all are on leaves.
    #[inline(always)]
    fn leaves<T: Copy + Into<f64>>(
        &self,
        root: u32,
        rows: &[&[T]; LANES],
        goes_true: impl Fn(&Node<V>, f64) -> bool + Copy,
    ) -> [u32; LANES] {
        let mut at = [root; LANES];
        loop {
            let mut walking = false;
            for (lane, row) in at.iter_mut().zip(rows) {
                let node = &self.nodes[*lane as usize];
                let branch = node.is_branch();
                // A leaf's feature bits are its first weight: read a
                // feature that exists, and discard the result.
                let feature = if branch { node.feature() } else { 0 };
                let child = self.next(*lane, node, row[feature].into(), goes_true);
                *lane = if branch { child } else { *lane };
                walking |= branch;
            }
            if !walking {
                return at;
            }
        }
    }

    fn eval_with<T: Copy + Into<f64>>(
        &self,
        rows: &[T],
        n_features: usize,
        aggregate: Aggregate,
        goes_true: impl Fn(&Node<V>, f64) -> bool + Copy,
    ) -> (Vec<f64>, Vec<bool>) {
        let n_rows = rows.len().checked_div(n_features).unwrap_or(0);
        let t = self.forest.n_targets;
        let mut scores = vec![0.0; n_rows * t];
        let mut has = vec![false; n_rows * t];
        let summing = matches!(aggregate, Aggregate::Sum | Aggregate::Average);
        if let (true, Some(k)) = (summing, self.forest.scalar_target) {
            // The usual regressor and binary classifier: one sum per row.
            let k = k as usize;
            for &root in &self.forest.roots {
                self.each_leaf(root, rows, n_features, goes_true, |r, leaf| {
                    scores[r * t + k] += leaf.threshold();
                    has[r * t + k] |= !leaf.weights().is_empty();
                });
            }
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
            let n = self.forest.trees().max(1) as f64;
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
        goes_true: impl Fn(&Node<V>, f64) -> bool + Copy,
        scores: &mut [f64],
        has: &mut [bool],
    ) {
        let t = self.forest.n_targets;
        let summing = matches!(aggregate, Aggregate::Sum | Aggregate::Average);
        // Tree-major: each tree walks all rows while its nodes are in cache.
        for &root in &self.forest.roots {
            self.each_leaf(root, rows, n_features, goes_true, |r, leaf| {
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
    }

    /// What `leaf` gives: its listed weights, or the one value a scalar
    /// leaf keeps in itself.
    #[inline(always)]
    fn weights_of<'b>(&'b self, leaf: &'b Node<V>) -> impl Iterator<Item = Weight> + 'b {
        let range = leaf.weights();
        let (kept, listed) = if let Some(target) = self.forest.scalar_target {
            let kept = Weight {
                target,
                value: leaf.threshold(),
            };
            ((!range.is_empty()).then_some(kept), &[][..])
        } else {
            (None, self.forest.weights.get(range).unwrap_or_default())
        };
        kept.into_iter().chain(listed.iter().copied())
    }
}

#[cfg(test)]
mod tests;
