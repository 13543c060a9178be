//! Tree ensembles as the ONNX-ML `TreeEnsembleClassifier` and
//! `TreeEnsembleRegressor` operators define them, laid out for speed: every
//! tree's nodes in contiguous arrays, children and leaf weights reached by
//! direct index, rows evaluated tree by tree while a tree is in cache.

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

/// The function applied to final scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostTransform {
    /// Scores as they are.
    None,
    /// 1 / (1 + e^-x), per score.
    Logistic,
    /// Softmax over a row.
    Softmax,
    /// Softmax over a row, leaving zeros at zero.
    SoftmaxZero,
    /// The probit (inverse normal CDF), per score.
    Probit,
}

impl PostTransform {
    /// Parses `post_transform`.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "NONE" => Self::None,
            "LOGISTIC" => Self::Logistic,
            "SOFTMAX" => Self::Softmax,
            "SOFTMAX_ZERO" => Self::SoftmaxZero,
            "PROBIT" => Self::Probit,
            other => return Err(format!("unknown post_transform {other:?}")),
        })
    }

    /// Applies the transform to one row of scores.
    pub fn apply(self, row: &mut [f64]) {
        match self {
            Self::None => {}
            Self::Logistic => row.iter_mut().for_each(|x| *x = logistic(*x)),
            Self::Probit => row.iter_mut().for_each(|x| *x = probit(*x)),
            Self::Softmax | Self::SoftmaxZero => {
                let zero = self == Self::SoftmaxZero;
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for x in row.iter_mut() {
                    *x = if zero && *x == 0.0 {
                        0.0
                    } else {
                        (*x - max).exp()
                    };
                    sum += *x;
                }
                if sum > 0.0 {
                    row.iter_mut().for_each(|x| *x /= sum);
                }
            }
        }
    }
}

/// 1 / (1 + e^-x).
pub fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The probit function, sqrt(2) * erfinv(2p - 1).
fn probit(p: f64) -> f64 {
    std::f64::consts::SQRT_2 * erfinv(2.0 * p - 1.0)
}

/// Inverse error function (Giles' single-precision approximation, as
/// onnxruntime uses).
fn erfinv(x: f64) -> f64 {
    let w = -((1.0 - x) * (1.0 + x)).ln();
    if w < 5.0 {
        let w = w - 2.5;
        let mut p = 2.810_226_36e-08;
        for c in [
            3.432_739_39e-07,
            -3.523_387_7e-06,
            -4.391_506_54e-06,
            0.000_218_580_87,
            -0.001_253_725_03,
            -0.004_177_681_64,
            0.246_640_727,
            1.501_409_41,
        ] {
            p = c + p * w;
        }
        p * x
    } else {
        let w = w.sqrt() - 3.0;
        let mut p = -0.000_200_214_257;
        for c in [
            0.000_100_950_558,
            0.001_349_343_22,
            -0.003_673_428_44,
            0.005_739_507_73,
            -0.007_622_461_3,
            0.009_438_870_47,
            1.001_674_06,
            2.832_976_82,
        ] {
            p = c + p * w;
        }
        p * x
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

/// The attributes of a tree ensemble, as the operators give them.
#[derive(Clone, Debug, Default)]
pub struct ForestSpec {
    /// `nodes_treeids`
    pub tree_ids: Vec<i64>,
    /// `nodes_nodeids`
    pub node_ids: Vec<i64>,
    /// `nodes_featureids`
    pub feature_ids: Vec<i64>,
    /// `nodes_values` (or `nodes_values_as_tensor`)
    pub values: Vec<f64>,
    /// `nodes_modes`
    pub modes: Vec<String>,
    /// `nodes_truenodeids`
    pub true_ids: Vec<i64>,
    /// `nodes_falsenodeids`
    pub false_ids: Vec<i64>,
    /// `nodes_missing_value_tracks_true` (may be empty)
    pub missing_true: Vec<i64>,
    /// `class_treeids` / `target_treeids`
    pub weight_tree_ids: Vec<i64>,
    /// `class_nodeids` / `target_nodeids`
    pub weight_node_ids: Vec<i64>,
    /// `class_ids` / `target_ids`
    pub weight_targets: Vec<i64>,
    /// `class_weights` / `target_weights` (or `_as_tensor`)
    pub weights: Vec<f64>,
    /// Number of targets or classes.
    pub n_targets: usize,
    /// The sets of `BRANCH_MEMBER` nodes, whose `values` entry is an index
    /// into this list.
    pub member_sets: Vec<Vec<f64>>,
}

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
    nodes: Vec<Node>,
    roots: Vec<u32>,
    weights: Vec<Weight>,
    n_targets: usize,
    max_feature: usize,
    /// Every branch node uses this mode (specialised comparison).
    single_mode: Option<Mode>,
    /// One target, and every leaf gives it at most one value: a leaf's value
    /// is read from the node itself.
    scalar_leaves: bool,
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
        // (tree, node id) → index, in the order nodes are given.
        let mut index = std::collections::HashMap::with_capacity(n);
        for i in 0..n {
            if index
                .insert((spec.tree_ids[i], spec.node_ids[i]), i)
                .is_some()
            {
                return Err(format!(
                    "node {} of tree {} is defined twice",
                    spec.node_ids[i], spec.tree_ids[i]
                ));
            }
        }
        let mut leaf_weights: Vec<Vec<Weight>> = vec![Vec::new(); n];
        for w in 0..weight_count {
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
                .filter(|t| *t < spec.n_targets.max(1));
            let target = target.ok_or_else(|| {
                format!("weight target {} is out of range", spec.weight_targets[w])
            })?;
            leaf_weights[node].push(Weight {
                target: target as u32,
                value: spec.weights[w],
            });
        }
        let mut nodes = Vec::with_capacity(n);
        let mut weights = Vec::with_capacity(weight_count);
        let mut is_child = vec![false; n];
        let mut modes = std::collections::HashSet::new();
        let mut max_feature = 0;
        for (i, leaf_weights) in leaf_weights.iter().enumerate() {
            let mode = Mode::parse(&spec.modes[i])?;
            let missing_true = spec.missing_true.get(i).is_some_and(|m| *m != 0);
            let node = match mode {
                Some(mode) => {
                    let child = |id: i64| {
                        index.get(&(spec.tree_ids[i], id)).copied().ok_or_else(|| {
                            format!(
                                "node {} of tree {} points to missing node {id}",
                                spec.node_ids[i], spec.tree_ids[i]
                            )
                        })
                    };
                    let (t, f) = (child(spec.true_ids[i])?, child(spec.false_ids[i])?);
                    is_child[t] = true;
                    is_child[f] = true;
                    let feature = usize::try_from(spec.feature_ids[i])
                        .map_err(|_| "negative feature id".to_owned())?;
                    max_feature = max_feature.max(feature);
                    modes.insert(mode);
                    if mode == Mode::Member
                        && !(spec.values[i] >= 0.0
                            && (spec.values[i] as usize) < spec.member_sets.len())
                    {
                        return Err(format!(
                            "BRANCH_MEMBER node {} has no membership set",
                            spec.node_ids[i]
                        ));
                    }
                    Node {
                        feature: feature as u32,
                        true_or_first_weight: t as u32,
                        false_or_end_weight: f as u32,
                        mode: Some(mode),
                        missing_true,
                        threshold: spec.values[i],
                    }
                }
                None => {
                    let first = weights.len() as u32;
                    weights.extend_from_slice(leaf_weights);
                    Node {
                        feature: 0,
                        true_or_first_weight: first,
                        false_or_end_weight: weights.len() as u32,
                        mode: None,
                        missing_true,
                        // The leaf's total, for forests whose leaves each
                        // give one value (see `scalar_leaves`).
                        threshold: leaf_weights.iter().map(|w| w.value).sum(),
                    }
                }
            };
            nodes.push(node);
        }
        // Roots: nodes no branch points to, one per tree, in tree order.
        let mut roots: Vec<(i64, u32)> = (0..n)
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
        let scalar_leaves = spec.n_targets <= 1
            && nodes
                .iter()
                .all(|n| n.mode.is_some() || n.false_or_end_weight - n.true_or_first_weight <= 1);
        let single_mode = (modes.len() == 1)
            .then(|| modes.into_iter().next())
            .flatten();
        Ok(Self {
            nodes,
            roots: roots.into_iter().map(|(_, i)| i).collect(),
            n_targets: spec.n_targets,
            max_feature,
            single_mode,
            scalar_leaves,
            member_sets: spec.member_sets.clone(),
            weights_all_positive: weights.iter().all(|w| w.value >= 0.0),
            weighted_targets: weights
                .iter()
                .map(|w| w.target)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
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
        let threads = cpus();
        let per_thread = n_rows.div_ceil(threads);
        let parts: Vec<(Vec<f64>, Vec<bool>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = rows
                .chunks(per_thread * n_features)
                .map(|chunk| scope.spawn(move || self.eval_serial(chunk, n_features, aggregate)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
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
        if summing && self.scalar_leaves && t == 1 {
            // The usual regressor and binary classifier: one sum per row.
            for &root in &self.roots {
                for (score, row) in scores.iter_mut().zip(rows.chunks_exact(n_features.max(1))) {
                    *score += self.leaf(root, row, goes_true).threshold;
                }
            }
            has.iter_mut().for_each(|h| *h = !self.weights.is_empty());
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
        // Tree-major: each tree walks all rows while its nodes are in cache.
        for &root in &self.roots {
            for (r, row) in rows.chunks_exact(n_features.max(1)).enumerate() {
                let leaf = self.leaf(root, row, goes_true);
                for w in &self.weights
                    [leaf.true_or_first_weight as usize..leaf.false_or_end_weight as usize]
                {
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
            }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tree 0: x0 <= 1 ? (x1 < 5 ? leaf 10 : leaf 20) : leaf 30 (NaN in x0
    /// goes true). Tree 1: x1 > 0 ? leaf 1 : leaf 2.
    fn spec(modes: [&str; 2]) -> ForestSpec {
        ForestSpec {
            tree_ids: vec![0, 0, 0, 0, 0, 1, 1, 1],
            node_ids: vec![0, 1, 2, 3, 4, 0, 1, 2],
            feature_ids: vec![0, 1, 0, 0, 0, 1, 0, 0],
            values: vec![1.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            modes: [
                modes[0],
                modes[1],
                "LEAF",
                "LEAF",
                "LEAF",
                "BRANCH_GT",
                "LEAF",
                "LEAF",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            true_ids: vec![1, 3, 0, 0, 0, 1, 0, 0],
            false_ids: vec![2, 4, 0, 0, 0, 2, 0, 0],
            missing_true: vec![1, 0, 0, 0, 0, 0, 0, 0],
            weight_tree_ids: vec![0, 0, 0, 1, 1],
            weight_node_ids: vec![3, 4, 2, 1, 2],
            weight_targets: vec![0, 0, 0, 0, 0],
            weights: vec![10.0, 20.0, 30.0, 1.0, 2.0],
            n_targets: 1,
            member_sets: vec![vec![1.0, 3.0]],
        }
    }

    fn run(f: &Forest, rows: &[[f32; 2]], agg: Aggregate) -> Vec<f64> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        f.eval(&flat, 2, agg).0
    }

    #[test]
    fn walks_every_comparison_mode_worked_by_hand() {
        let f = Forest::new(&spec(["BRANCH_LEQ", "BRANCH_LT"])).unwrap();
        assert_eq!(f.trees(), 2);
        // x0=1 (<=1 true), x1=4 (<5 true) → 10; x1=4 > 0 → 1.
        // x0=2 → 30; x1=-1 → 2.   x0=0, x1=5 (not <5) → 20; x1=5 → 1.
        assert_eq!(
            run(&f, &[[1.0, 4.0], [2.0, -1.0], [0.0, 5.0]], Aggregate::Sum),
            vec![11.0, 32.0, 21.0]
        );
        assert_eq!(run(&f, &[[1.0, 4.0]], Aggregate::Average), vec![5.5]);
        assert_eq!(run(&f, &[[1.0, 4.0]], Aggregate::Min), vec![1.0]);
        assert_eq!(run(&f, &[[1.0, 4.0]], Aggregate::Max), vec![10.0]);

        let ge = Forest::new(&spec(["BRANCH_GTE", "BRANCH_GT"])).unwrap();
        // x0=1 >= 1 true; x1=5 > 5 false → 20; tree 1: 5 > 0 → 1.
        assert_eq!(run(&ge, &[[1.0, 5.0]], Aggregate::Sum), vec![21.0]);
        let eq = Forest::new(&spec(["BRANCH_EQ", "BRANCH_NEQ"])).unwrap();
        // x0=1 == 1 true; x1=5 != 5 false → 20; x0=3 → 30.
        assert_eq!(
            run(&eq, &[[1.0, 5.0], [3.0, 5.0]], Aggregate::Sum),
            vec![21.0, 31.0]
        );
    }

    #[test]
    fn large_batches_split_over_threads_give_the_serial_answer() {
        let f = Forest::new(&spec(["BRANCH_LEQ", "BRANCH_LT"])).unwrap();
        let rows: Vec<f32> = (0..PARALLEL_MIN_WALKS * 2)
            .map(|i| ((i * 7919) % 13) as f32 - 4.0)
            .collect();
        let (parallel, has) = f.eval(&rows, 2, Aggregate::Sum);
        let (serial, _) = f.eval_serial(&rows, 2, Aggregate::Sum);
        assert_eq!(parallel.len(), PARALLEL_MIN_WALKS);
        assert_eq!(has.len(), parallel.len());
        assert_eq!(parallel, serial);
    }

    #[test]
    fn branch_member_tests_set_membership() {
        let mut s = spec(["BRANCH_MEMBER", "BRANCH_LT"]);
        s.values[0] = 0.0; // the first membership set: {1, 3}
        let f = Forest::new(&s).unwrap();
        // x0 = 3 is a member → x1 branch (4 < 5 → 10); x0 = 2 is not → 30.
        assert_eq!(
            run(&f, &[[3.0, 4.0], [2.0, 4.0]], Aggregate::Sum),
            vec![11.0, 31.0]
        );
        s.values[0] = 5.0;
        assert!(Forest::new(&s).unwrap_err().contains("no membership set"));
    }

    #[test]
    fn double_inputs_are_compared_in_double() {
        let mut s = spec(["BRANCH_LEQ", "BRANCH_LT"]);
        s.values[0] = 0.1; // as from nodes_values_as_tensor
        let f = Forest::new(&s).unwrap();
        // 0.1 as f64 is <= 0.1; 0.1 as f32 widens to 0.10000000149… > 0.1.
        let (double, _) = f.eval(&[0.1f64, 4.0], 2, Aggregate::Sum);
        let (single, _) = f.eval(&[0.1f32, 4.0], 2, Aggregate::Sum);
        assert_eq!((double[0], single[0]), (11.0, 31.0));
    }

    #[test]
    fn missing_values_follow_nodes_missing_value_tracks_true() {
        let f = Forest::new(&spec(["BRANCH_LEQ", "BRANCH_LT"])).unwrap();
        // NaN in x0: tracks true → x1 branch; NaN in x1 (not tracked): NaN < 5 false → 20, NaN > 0 false → 2.
        assert_eq!(
            run(&f, &[[f32::NAN, 4.0], [0.0, f32::NAN]], Aggregate::Sum),
            vec![11.0, 22.0]
        );
    }

    #[test]
    fn refuses_broken_forests_with_a_reason() {
        let mut s = spec(["BRANCH_LEQ", "BRANCH_LT"]);
        s.true_ids[0] = 9;
        assert!(
            Forest::new(&s)
                .unwrap_err()
                .contains("points to missing node 9")
        );
        let mut s = spec(["BRANCH_LEQ", "BRANCH_LT"]);
        s.modes[0] = "BRANCH_SOMETIMES".into();
        assert!(Forest::new(&s).unwrap_err().contains("unknown node mode"));
        let mut s = spec(["BRANCH_LEQ", "BRANCH_LT"]);
        s.weight_targets[0] = 3;
        assert!(Forest::new(&s).unwrap_err().contains("out of range"));
    }

    #[test]
    fn post_transforms() {
        let mut row = [0.0, (3.0f64).ln()];
        PostTransform::Softmax.apply(&mut row);
        assert!((row[0] - 0.25).abs() < 1e-12 && (row[1] - 0.75).abs() < 1e-12);
        let mut row = [0.0, 1.0];
        PostTransform::SoftmaxZero.apply(&mut row);
        assert_eq!(row, [0.0, 1.0]);
        let mut row = [0.0];
        PostTransform::Logistic.apply(&mut row);
        assert_eq!(row, [0.5]);
        let mut row = [0.975];
        PostTransform::Probit.apply(&mut row);
        assert!((row[0] - 1.959_964).abs() < 1e-3, "{}", row[0]);
    }
}
