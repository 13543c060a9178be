use super::*;

fn spec() -> DriftSpec {
    DriftSpec {
        min_rows: 100,
        detect_after: 2,
        clear_after: 2,
        ..DriftSpec::default()
    }
}

/// Two features (`amount`, `hour`) of two bins and one score of two bins,
/// all 50/50 in training.
fn layout() -> Layout {
    let even = vec![0.5, 0.5];
    Layout {
        features: vec![
            ("amount".into(), even.clone()),
            ("hour".into(), even.clone()),
        ],
        scores: vec![("p".into(), even)],
    }
}

fn counts(rows: u64, columns: &[[u64; 2]]) -> Counts {
    Counts {
        rows,
        columns: columns
            .iter()
            .map(|c| ColumnCounts {
                counts: c.to_vec(),
                missing: 0,
                outside: 0,
            })
            .collect(),
    }
}

fn at(seconds: i64) -> Time {
    Time(jiff::Timestamp::from_second(seconds).unwrap())
}

fn run(window: &Counts, previous: Option<&DriftStatus>) -> (DriftStatus, Option<Transition>) {
    evaluate(&spec(), &layout(), window, previous, 3, (at(0), at(60)))
}

#[test]
fn indexes_are_computed_per_column_and_features_ranked_by_csi() {
    let (status, _) = run(&counts(200, &[[180, 20], [100, 100], [150, 50]]), None);
    let expected_csi = aimass_drift::stability(&[0.5, 0.5], &[180, 20]).unwrap();
    let expected_psi = aimass_drift::stability(&[0.5, 0.5], &[150, 50]).unwrap();
    assert_eq!(status.features[0].name, "amount");
    assert_eq!(status.features[0].index, expected_csi);
    assert_eq!(status.features[1].index, 0.0);
    assert_eq!(status.psi, Some(expected_psi));
    assert_eq!(status.rows, 200);
    assert_eq!(status.level, DriftLevel::Action);
    assert!(
        status
            .message
            .contains("top features by CSI: amount 0.8789, hour 0.0000"),
        "{}",
        status.message
    );
}

#[test]
fn the_condition_follows_the_hysteresis() {
    let drifting = counts(200, &[[180, 20], [100, 100], [100, 100]]);
    let stable = counts(200, &[[100, 100], [100, 100], [100, 100]]);
    let warning = counts(200, &[[140, 60], [100, 100], [100, 100]]);
    let few = counts(10, &[[10, 0], [5, 5], [5, 5]]);
    // (window, detected after, transition)
    let table: Vec<(&Counts, bool, Option<Transition>)> = vec![
        (&drifting, false, None),                      // 1 of detectAfter 2
        (&stable, false, None),                        // streak broken
        (&drifting, false, None),                      // 1 again
        (&few, false, None),                           // not judged: streak kept
        (&drifting, true, Some(Transition::Detected)), // 2 in a row
        (&warning, true, None),                        // warning does not clear
        (&stable, true, None),                         // 1 of clearAfter 2
        (&few, true, None),                            // not judged
        (&stable, false, Some(Transition::Cleared)),   // 2 in a row
    ];
    let mut previous: Option<DriftStatus> = None;
    for (step, (window, detected, transition)) in table.into_iter().enumerate() {
        let (status, change) = run(window, previous.as_ref());
        assert_eq!(
            (status.detected, change),
            (detected, transition),
            "step {step}"
        );
        if change == Some(Transition::Detected) {
            assert_eq!(status.detected_since, Some(at(60)));
        }
        previous = Some(status);
    }
    let (status, _) = run(&warning, None);
    assert_eq!(status.level, DriftLevel::Warning);
    let (status, _) = run(&few, None);
    assert_eq!(status.level, DriftLevel::InsufficientData);
    assert!(
        status.message.contains("fewer than minRows 100"),
        "{}",
        status.message
    );
}

#[test]
fn history_keeps_the_last_evaluations_of_the_version() {
    let drifting = counts(200, &[[180, 20], [100, 100], [150, 50]]);
    let few = counts(10, &[[10, 0], [5, 5], [5, 5]]);
    let mut previous: Option<DriftStatus> = None;
    for step in 0..(HISTORY + 5) {
        let window = if step == HISTORY + 4 { &few } else { &drifting };
        let (status, _) = run(window, previous.as_ref());
        previous = Some(status);
    }
    let history = previous.map(|s| s.history).unwrap_or_default();
    assert_eq!(history.len(), HISTORY);
    let judged = &history[HISTORY - 2];
    let expected_psi = aimass_drift::stability(&[0.5, 0.5], &[150, 50]).unwrap();
    let expected_csi = aimass_drift::stability(&[0.5, 0.5], &[180, 20]).unwrap();
    assert_eq!(
        (judged.rows, judged.psi, judged.top_csi),
        (200, Some(expected_psi), Some(expected_csi))
    );
    // A window with too few rows is a point without indexes.
    let last = &history[HISTORY - 1];
    assert_eq!((last.rows, last.psi, last.top_csi), (10, None, None));
    // Another version starts its own history.
    let other = DriftStatus {
        version: Some(2),
        history: history.clone(),
        ..DriftStatus::default()
    };
    let (status, _) = run(&drifting, Some(&other));
    assert_eq!(status.history.len(), 1);
}

#[test]
fn another_version_starts_a_new_hysteresis() {
    let drifting = counts(200, &[[180, 20], [100, 100], [100, 100]]);
    let detected = DriftStatus {
        version: Some(2),
        detected: true,
        ..DriftStatus::default()
    };
    let (status, change) = run(&drifting, Some(&detected));
    assert_eq!((status.detected, status.streak, change), (false, 1, None));
}

#[test]
fn differences_survive_restarts_and_sums_keep_shapes() {
    let earlier = counts(10, &[[4, 6], [5, 5], [5, 5]]);
    let later = counts(15, &[[6, 9], [8, 7], [7, 8]]);
    assert_eq!(later.since(&earlier), counts(5, &[[2, 3], [3, 2], [2, 3]]));
    // A server that restarted counts from zero: all of its counts are new.
    let restarted = counts(3, &[[1, 2], [2, 1], [3, 0]]);
    assert_eq!(restarted.since(&earlier), restarted);
    let mut total = Counts::default();
    total.add(&earlier);
    total.add(&later);
    assert_eq!(total, counts(25, &[[10, 15], [13, 12], [12, 13]]));
    // Counts of another shape (another baseline) are not added.
    total.add(&counts(100, &[[100, 0]]));
    assert_eq!(total.rows, 25);
}
