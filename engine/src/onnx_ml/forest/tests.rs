//! Tests of `forest`.

use super::*;

/// Tree 0: x0 <= 1 ? (x1 < 5 ? leaf 10 : leaf 20) : leaf 30 (NaN in x0
/// goes true). Tree 1: x1 > 0 ? leaf 1 : leaf 2.
fn spec(modes: [&str; 2]) -> ForestSpec<'static> {
    ForestSpec {
        tree_ids: vec![0, 0, 0, 0, 0, 1, 1, 1].into(),
        node_ids: vec![0, 1, 2, 3, 4, 0, 1, 2].into(),
        feature_ids: vec![0, 1, 0, 0, 0, 1, 0, 0].into(),
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
        .map(|s| Mode::parse(s).expect("a known mode"))
        .collect(),
        true_ids: vec![1, 3, 0, 0, 0, 1, 0, 0].into(),
        false_ids: vec![2, 4, 0, 0, 0, 2, 0, 0].into(),
        missing_true: vec![1, 0, 0, 0, 0, 0, 0, 0].into(),
        weight_tree_ids: vec![0, 0, 0, 1, 1].into(),
        weight_node_ids: vec![3, 4, 2, 1, 2].into(),
        weight_targets: vec![0, 0, 0, 0, 0].into(),
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
    // One value per leaf: kept in the leaves, no weight list.
    assert!(f.scalar_target == Some(0) && f.weights.is_empty());
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
fn a_scalar_leaf_without_a_value_gives_nothing_to_min_and_max() {
    let mut s = spec(["BRANCH_LEQ", "BRANCH_LT"]);
    // Leaf 3 of tree 0 (x0 <= 1, x1 < 5) gives no value.
    s.weight_tree_ids = vec![0, 0, 1, 1].into();
    s.weight_node_ids = vec![4, 2, 1, 2].into();
    s.weight_targets = vec![0, 0, 0, 0].into();
    s.weights = vec![20.0, 30.0, 1.0, 2.0];
    let f = Forest::new(&s).unwrap();
    assert_eq!(f.scalar_target, Some(0));
    for (agg, want) in [
        (Aggregate::Sum, 1.0),
        (Aggregate::Min, 1.0),
        (Aggregate::Max, 1.0),
    ] {
        assert_eq!(run(&f, &[[1.0, 4.0]], agg), [want], "{agg:?}");
    }
    assert_eq!(run(&f, &[[0.0, 5.0]], Aggregate::Min), [1.0]);
    assert_eq!(run(&f, &[[0.0, 5.0]], Aggregate::Max), [20.0]);
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
fn rows_walked_side_by_side_reach_the_leaves_each_reaches_alone() {
    // Every mode mix and aggregate, over rows that take every path (NaN
    // included), in a batch of whole lane groups and a ragged tail.
    let values = [f32::NAN, -1.0, 0.0, 1.0, 2.0, 4.0, 5.0, 6.0];
    let rows: Vec<[f32; 2]> = (0..LANES * 4 + 3)
        .map(|i| [values[i % values.len()], values[(i * 5 + 3) % values.len()]])
        .collect();
    for modes in [
        ["BRANCH_LEQ", "BRANCH_LT"],
        ["BRANCH_GTE", "BRANCH_GT"],
        ["BRANCH_GT", "BRANCH_GT"],
        ["BRANCH_EQ", "BRANCH_NEQ"],
        ["BRANCH_MEMBER", "BRANCH_LT"],
    ] {
        let mut s = spec(modes);
        if modes[0] == "BRANCH_MEMBER" {
            s.values[0] = 0.0; // the first membership set: {1, 3}
        }
        let f = Forest::new(&s).unwrap();
        for agg in [
            Aggregate::Sum,
            Aggregate::Average,
            Aggregate::Min,
            Aggregate::Max,
        ] {
            let alone: Vec<f64> = rows.iter().flat_map(|r| run(&f, &[*r], agg)).collect();
            assert_eq!(run(&f, &rows, agg), alone, "{modes:?} {agg:?}");
        }
    }
}

/// `n` trees of two shapes, alternating: x0 <= i - 9 ? (x1 <= 4.5 ? 100i + 1 :
/// 100i + 2) : 100i + 3 (NaN in x0 goes true), and x1 `odd` i ? 100i + 4 :
/// 100i + 5; with what a row gets from each, worked out apart.
fn many_trees(n: usize, odd: &'static str) -> (ForestSpec<'static>, impl Fn([f32; 2]) -> Vec<f64>) {
    let (mut tree_ids, mut node_ids, mut features) = (Vec::new(), Vec::new(), Vec::new());
    let (mut values, mut modes) = (Vec::new(), Vec::new());
    let (mut true_ids, mut false_ids, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    let (mut w_trees, mut w_nodes, mut weights) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n as i64 {
        let base = 100.0 * i as f64;
        let nodes: &[(i64, &str, f64, i64, i64, i64)] = if i % 2 == 0 {
            &[
                (0, "BRANCH_LEQ", (i - 9) as f64, 1, 2, 1),
                (1, "BRANCH_LEQ", 4.5, 3, 4, 0),
                (0, "LEAF", 0.0, 0, 0, 0),
                (0, "LEAF", 0.0, 0, 0, 0),
                (0, "LEAF", 0.0, 0, 0, 0),
            ]
        } else {
            &[
                (1, odd, i as f64, 1, 2, 0),
                (0, "LEAF", 0.0, 0, 0, 0),
                (0, "LEAF", 0.0, 0, 0, 0),
            ]
        };
        for (id, (feature, mode, value, t, f, m)) in nodes.iter().enumerate() {
            tree_ids.push(i);
            node_ids.push(id as i64);
            features.push(*feature);
            values.push(*value);
            modes.push(Mode::parse(mode).unwrap());
            true_ids.push(*t);
            false_ids.push(*f);
            missing.push(*m);
        }
        let leaves: &[(i64, f64)] = if i % 2 == 0 {
            &[(3, 1.0), (4, 2.0), (2, 3.0)]
        } else {
            &[(1, 4.0), (2, 5.0)]
        };
        for (node, value) in leaves {
            w_trees.push(i);
            w_nodes.push(*node);
            weights.push(base + value);
        }
    }
    let s = ForestSpec {
        tree_ids: tree_ids.into(),
        node_ids: node_ids.into(),
        feature_ids: features.into(),
        values,
        modes,
        true_ids: true_ids.into(),
        false_ids: false_ids.into(),
        missing_true: missing.into(),
        weight_targets: vec![0; w_trees.len()].into(),
        weight_tree_ids: w_trees.into(),
        weight_node_ids: w_nodes.into(),
        weights,
        n_targets: 1,
        member_sets: Vec::new(),
    };
    let odd_holds = Mode::parse(odd).unwrap().unwrap();
    let leaves = move |[x0, x1]: [f32; 2]| {
        (0..n)
            .map(|i| {
                let base = 100.0 * i as f64;
                let (x0, x1) = (f64::from(x0), f64::from(x1));
                base + if i % 2 == 1 {
                    if odd_holds.holds(x1, i as f64) {
                        4.0
                    } else {
                        5.0
                    }
                } else if x0.is_nan() || x0 <= i as f64 - 9.0 {
                    if x1 <= 4.5 { 1.0 } else { 2.0 }
                } else {
                    3.0
                }
            })
            .collect()
    };
    (s, leaves)
}

#[test]
fn a_lone_row_walks_trees_side_by_side_to_the_leaves_each_tree_gives() {
    // Two lane groups and a ragged tail of trees, of unequal depths; one
    // mode everywhere (BRANCH_LEQ) and mixed modes; a request of one row,
    // and one whose last row is left alone after a lane group of rows.
    let n = LANES * 2 + 3;
    for odd in ["BRANCH_LEQ", "BRANCH_GT"] {
        let (s, leaves) = many_trees(n, odd);
        let f = Forest::new(&s).unwrap();
        assert_eq!(f.trees(), n);
        for row in [
            [f32::NAN, 4.0],
            [-20.0, 6.0],
            [0.0, 3.0],
            [9.0, 12.0],
            [3.0, f32::NAN],
        ] {
            let want: Vec<f64> = leaves(row);
            let sum: f64 = want.iter().sum();
            assert_eq!(run(&f, &[row], Aggregate::Sum), [sum], "{odd} {row:?}");
            let min = want.iter().copied().fold(f64::INFINITY, f64::min);
            let max = want.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(run(&f, &[row], Aggregate::Min), [min], "{odd} {row:?}");
            assert_eq!(run(&f, &[row], Aggregate::Max), [max], "{odd} {row:?}");
        }
        // A lane group of rows and a lone one after it.
        let rows: Vec<[f32; 2]> = (0..=LANES)
            .map(|i| [i as f32 * 3.0 - 12.0, i as f32 * 2.0 - 4.0])
            .collect();
        let want: Vec<f64> = rows.iter().map(|r| leaves(*r).iter().sum()).collect();
        assert_eq!(run(&f, &rows, Aggregate::Sum), want, "{odd}");
    }
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
    s.true_ids.to_mut()[0] = 9;
    assert!(
        Forest::new(&s)
            .unwrap_err()
            .contains("points to missing node 9")
    );
    assert!(
        Mode::parse("BRANCH_SOMETIMES")
            .unwrap_err()
            .contains("unknown node mode")
    );
    let mut s = spec(["BRANCH_LEQ", "BRANCH_LT"]);
    s.weight_targets.to_mut()[0] = 3;
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
