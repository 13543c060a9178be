use super::*;
use crate::summary::{OTHER_SEGMENT, SEGMENTS_KEPT, ShardSummary};

const GOOD: Outcome = Outcome::Good;
const BAD: Outcome = Outcome::Bad;

/// A one-version summary of `rows` (score, outcome, segment).
fn summary(rows: &[(f64, Outcome, &str)]) -> ShardSummary {
    let mut summary = ShardSummary::new(1);
    for &(score, outcome, segment) in rows {
        summary.count_row(Some(outcome));
        summary.versions[0].score(score, outcome, Some(segment));
    }
    summary
}

const SIX: [(f64, Outcome, &str); 6] = [
    (0.1, GOOD, "web"),
    (0.2, GOOD, "web"),
    (0.3, BAD, "pos"),
    (0.4, GOOD, "pos"),
    (0.8, BAD, "web"),
    (0.9, BAD, "web"),
];

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-12)
}

#[test]
fn separation_figures_match_hand_computed_ones() {
    struct Case {
        name: &'static str,
        rows: Vec<(f64, Outcome, &'static str)>,
        auc: Option<f64>,
        ks: Option<f64>,
    }
    let cases = [
        Case {
            name: "six rows, one bad row below a good one",
            rows: SIX.to_vec(),
            auc: Some(8.0 / 9.0),
            ks: Some(2.0 / 3.0),
        },
        Case {
            name: "perfect separation",
            rows: vec![(0.1, GOOD, "a"), (0.2, GOOD, "a"), (0.7, BAD, "a")],
            auc: Some(1.0),
            ks: Some(1.0),
        },
        Case {
            name: "a tie counts half",
            rows: vec![(0.5, GOOD, "a"), (0.5, BAD, "a")],
            auc: Some(0.5),
            ks: Some(0.0),
        },
        Case {
            name: "inverted score",
            rows: vec![(0.9, GOOD, "a"), (0.1, BAD, "a")],
            auc: Some(0.0),
            ks: Some(1.0),
        },
        Case {
            name: "one class only has no AUC",
            rows: vec![(0.2, GOOD, "a"), (0.3, GOOD, "a")],
            auc: None,
            ks: None,
        },
    ];
    for case in cases {
        let report = build(&summary(&case.rows), &[1], &[0.5], true);
        let metrics = report.versions[0].metrics.clone().unwrap();
        match case.auc {
            Some(auc) => {
                assert!(
                    close(metrics.auc, auc),
                    "{}: auc {:?}",
                    case.name,
                    metrics.auc
                );
                assert!(close(metrics.gini, 2.0 * auc - 1.0), "{}", case.name);
            }
            None => assert_eq!(metrics.auc, None, "{}", case.name),
        }
        match case.ks {
            Some(ks) => assert!(close(metrics.ks, ks), "{}: ks {:?}", case.name, metrics.ks),
            None => assert_eq!(metrics.ks, None, "{}", case.name),
        }
    }
}

#[test]
fn decisions_deciles_and_quantiles() {
    let report = build(&summary(&SIX), &[1], &[0.5, 0.85, 0.95], true);
    let version = &report.versions[0];
    let metrics = version.metrics.as_ref().unwrap();
    let at = |t: f64| {
        metrics
            .thresholds
            .iter()
            .find(|r| r.threshold == t)
            .unwrap()
    };
    // 0.8 and 0.9 are declined at 0.5: both bad, of three bad rows.
    assert!(close(at(0.5).precision, 1.0));
    assert!(close(at(0.5).recall, 2.0 / 3.0));
    assert!(close(Some(at(0.5).decline_rate), 2.0 / 6.0));
    assert!(close(Some(at(0.5).approval_rate), 4.0 / 6.0));
    assert!(close(at(0.85).recall, 1.0 / 3.0));
    // Nothing declined: no precision, everything approved.
    assert_eq!(at(0.95).precision, None);
    assert!(close(Some(at(0.95).approval_rate), 1.0));
    let deciles: Vec<(i32, i64, f64)> = metrics
        .deciles
        .iter()
        .map(|d| (d.decile, d.bad, d.max_score))
        .collect();
    assert_eq!(
        deciles,
        [
            (1, 1, 0.9),
            (2, 1, 0.8),
            (4, 0, 0.4),
            (6, 1, 0.3),
            (7, 0, 0.2),
            (9, 0, 0.1)
        ]
    );
    assert_eq!(version.score_quantiles.len(), 11);
    assert_eq!(version.score_quantiles[0], 0.1);
    assert_eq!(version.score_quantiles[5], 0.3);
    assert_eq!(version.score_quantiles[10], 0.9);
    assert!(close(version.mean_score, 2.7 / 6.0));
}

#[test]
fn tied_scores_stay_in_one_decile() {
    let rows: Vec<_> = (0..20)
        .map(|i| {
            (
                if i < 15 { 0.2 } else { 0.9 },
                if i % 2 == 0 { BAD } else { GOOD },
                "a",
            )
        })
        .collect();
    let report = build(&summary(&rows), &[1], &[], true);
    let deciles = &report.versions[0].metrics.as_ref().unwrap().deciles;
    assert_eq!(deciles.len(), 2);
    assert_eq!((deciles[0].decile, deciles[0].rows), (1, 5));
    assert_eq!((deciles[1].decile, deciles[1].rows), (3, 15));
}

#[test]
fn segments_are_measured_alone_largest_first() {
    let report = build(&summary(&SIX), &[1], &[0.5], true);
    let segments = &report.versions[0].segments;
    assert_eq!(segments[0].segment, "web");
    assert_eq!(segments[0].scored, 4);
    // web: goods 0.1, 0.2 and bads 0.8, 0.9: perfectly separated.
    assert!(close(segments[0].metrics.as_ref().unwrap().auc, 1.0));
    // pos: bad 0.3 below good 0.4.
    assert!(close(segments[1].metrics.as_ref().unwrap().auc, 0.0));
}

#[test]
fn too_many_segments_fold_into_other() {
    let mut version = crate::summary::VersionSummary::default();
    for i in 0..SEGMENTS_KEPT + 5 {
        version.score(0.5, GOOD, Some(&format!("s{i}")));
    }
    assert_eq!(version.segments.len(), SEGMENTS_KEPT + 1);
    assert_eq!(version.segments[OTHER_SEGMENT].sorted(), {
        let mut d = Distribution::default();
        (0..5).for_each(|_| d.add(0.5, GOOD));
        d.sorted()
    });
}

#[test]
fn shards_merge_into_the_whole() {
    let whole = summary(&SIX);
    let mut merged = summary(&SIX[..2]);
    merged.merge(&summary(&SIX[2..]));
    assert_eq!(
        build(&merged, &[1], &[0.5], true),
        build(&whole, &[1], &[0.5], true)
    );
    // And through JSON, as the report pod reads them.
    let json = serde_json::to_vec(&merged).unwrap();
    let read: ShardSummary = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        build(&read, &[1], &[0.5], true),
        build(&whole, &[1], &[0.5], true)
    );
}

#[test]
fn the_better_version_wins_and_a_tie_keeps_the_reference() {
    let mut two = ShardSummary::new(2);
    for &(score, outcome, _) in &SIX {
        two.count_row(Some(outcome));
        two.versions[0].score(score, outcome, None);
        // Version 2 ranks every bad row above every good one.
        let better = if outcome == BAD { score + 1.0 } else { score };
        two.versions[1].score(better, outcome, None);
    }
    let report = build(&two, &[3, 4], &[0.5], true);
    let auc = report.winners.iter().find(|w| w.metric == "auc").unwrap();
    assert_eq!(auc.version, 4);
    assert!((auc.lead_over_reference - (1.0 - 8.0 / 9.0)).abs() < 1e-12);
    assert_eq!(auc.values.len(), 2);
    assert!(
        report.summary.contains("v4 AUC 1.000"),
        "{}",
        report.summary
    );
    assert!(report.summary.contains("(best AUC)"));

    let mut tie = ShardSummary::new(2);
    for &(score, outcome, _) in &SIX {
        tie.versions[0].score(score, outcome, None);
        tie.versions[1].score(score, outcome, None);
    }
    let report = build(&tie, &[3, 4], &[], true);
    assert!(
        report
            .winners
            .iter()
            .all(|w| w.version == 3 && w.lead_over_reference == 0.0)
    );
}

#[test]
fn without_labels_only_counts_and_distribution() {
    let mut unlabelled = ShardSummary::new(1);
    for score in [0.1, 0.2, 0.3] {
        unlabelled.count_row(None);
        unlabelled.versions[0].score(score, Outcome::Unknown, None);
    }
    unlabelled.versions[0].refuse(7, "column amount: empty".into());
    let report = build(&unlabelled, &[2], &[0.5], false);
    assert_eq!(report.rows, 3);
    assert_eq!(report.versions[0].metrics, None);
    assert!(report.winners.is_empty());
    assert_eq!(report.versions[0].refused, 1);
    assert_eq!(report.versions[0].refusals[0].line, 7);
    assert_eq!(report.summary, "v2 3 scored, 1 refused");
}
