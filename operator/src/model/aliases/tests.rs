//! Table tests of the alias and gate decisions and the `Ready` condition.

use super::*;

/// A Model with an AUC gate (at least 0.8, and 0.01 better than the
/// champion), `extra` (`promotion: <more promotion fields>` or another
/// spec line), and a registry where v1 (AUC 0.85) is the champion.
fn model(extra: &str) -> (Model, ModelStatus) {
    let (promotion, aliases) = match extra.strip_prefix("promotion: ") {
        Some(promotion) => (promotion, ""),
        None => ("", extra),
    };
    let model: Model = serde_yaml_ng::from_str(&format!(
        r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: fraud, namespace: desk}}
spec:
  source: {{uri: "file:///m.onnx"}}
  promotion:
    gates: [{{metric: auc, minimum: 0.8, betterThanChampionBy: 0.01}}]
    {promotion}
  {aliases}
status:
  aliases: {{champion: 1}}
  versions:
  - {{version: 1, phase: Ready, uri: "file:///1", created: "2026-01-01T00:00:00Z", metrics: {{auc: 0.85}}}}
"#
    ))
    .expect("a valid Model");
    let status = model.status.clone().expect("a status");
    (model, status)
}

fn candidate(n: i64, auc: f64) -> ModelVersion {
    serde_yaml_ng::from_str(&format!(
        r#"{{version: {n}, phase: Ready, uri: "file:///{n}", created: "2026-01-02T00:00:00Z", metrics: {{auc: {auc}}}}}"#
    ))
    .expect("a valid version")
}

fn at() -> Time {
    Time(jiff::Timestamp::UNIX_EPOCH)
}

#[test]
fn the_gates_move_the_aliases_the_policy_and_the_pins_allow() {
    let table = [
        // (what, spec extra, candidate AUC, version reason, Event reasons, champion, challenger)
        (
            "fails the minimum",
            "",
            0.7,
            Some("GatesFailed"),
            vec!["GatesFailed"],
            1,
            None,
        ),
        (
            "beats the champion: promoted",
            "",
            0.9,
            None,
            vec!["VersionRegistered", "AliasMoved"],
            2,
            None,
        ),
        (
            "passes but does not beat it: challenger",
            "",
            0.855,
            Some("NotBetterThanChampion"),
            vec!["NotBetterThanChampion", "AliasMoved"],
            1,
            Some(2),
        ),
        (
            "Manual: only the verdict",
            "promotion: policy: Manual",
            0.9,
            Some("AwaitingManualPromotion"),
            vec!["AwaitingManualPromotion"],
            1,
            None,
        ),
        (
            "the champion is pinned: it stays",
            "aliases: {champion: 1}",
            0.9,
            Some("AliasPinned"),
            vec!["AliasPinned"],
            1,
            None,
        ),
    ];
    for (what, extra, auc, reason, events, champion, challenger) in table {
        let (model, mut status) = model(extra);
        let mut version = candidate(2, auc);
        let mut notices = Vec::new();
        judge(&model, &mut status, &mut version, &at(), &mut notices);
        assert_eq!(version.reason.as_deref(), reason, "{what}");
        let said: Vec<&str> = notices.iter().map(|n| n.reason.as_str()).collect();
        assert_eq!(said, events, "{what}");
        assert_eq!(status.aliases.get("champion"), Some(&champion), "{what}");
        assert_eq!(
            status.aliases.get("challenger").copied(),
            challenger,
            "{what}"
        );
    }
}

#[test]
fn pins_win_and_say_when_they_cannot() {
    let (pinned, mut status) = model("aliases: {champion: 3, staging: 1, canary: 9}");
    status.versions.push(candidate(3, 0.9));
    let mut rejected = candidate(4, 0.1);
    rejected.phase = VersionPhase::Rejected;
    status.versions.push(rejected);
    let mut notices = Vec::new();
    let unresolved = apply_pins(&pinned, &mut status, &at(), &mut notices);
    assert_eq!(status.aliases.get("champion"), Some(&3));
    assert_eq!(status.aliases.get("staging"), Some(&1));
    assert_eq!(unresolved, ["canary is pinned to v9, which does not exist"]);

    let (pinned, mut status) = model("aliases: {champion: 4}");
    let mut rejected = candidate(4, 0.1);
    rejected.phase = VersionPhase::Rejected;
    status.versions.push(rejected);
    let unresolved = apply_pins(&pinned, &mut status, &at(), &mut Vec::new());
    assert_eq!(unresolved, ["champion is pinned to v4, which was Rejected"]);
    assert_eq!(status.aliases.get("champion"), Some(&1));
}

#[test]
fn a_pin_records_who_set_it_and_why_and_the_reason_is_bounded() {
    let (mut pinned, mut status) = model("aliases: {champion: 3}");
    status.versions.push(candidate(3, 0.9));
    let long = "x".repeat(REASON_ANNOTATION_LIMIT + 100);
    pinned.metadata.annotations = Some(
        [
            (REQUESTED_BY_ANNOTATION.to_owned(), "alice".to_owned()),
            (REASON_ANNOTATION.to_owned(), long),
            (REASON_FOR_ANNOTATION.to_owned(), "champion=3".to_owned()),
        ]
        .into(),
    );
    let before = status.clone();
    apply_pins(&pinned, &mut status, &at(), &mut Vec::new());
    let moved = status.alias_history.last().expect("a move");
    assert_eq!((moved.reason.as_str(), moved.to), ("Pinned", 3));
    assert_eq!(moved.by.as_deref(), Some("alice"));
    assert_eq!(
        moved.message.as_ref().map(|m| m.chars().count()),
        Some(REASON_ANNOTATION_LIMIT)
    );

    // A reason given for another pin is not this one's.
    let mut status = before;
    if let Some(a) = pinned.metadata.annotations.as_mut() {
        a.insert(REASON_FOR_ANNOTATION.to_owned(), "staging=1".to_owned());
    }
    apply_pins(&pinned, &mut status, &at(), &mut Vec::new());
    let moved = status.alias_history.last().expect("a move");
    assert_eq!(
        (moved.by.as_deref(), moved.message.as_deref()),
        (Some("alice"), None)
    );

    // Without the annotations the move is anonymous, not blamed on anyone.
    let (pinned, mut status) = model("aliases: {champion: 3}");
    status.versions.push(candidate(3, 0.9));
    apply_pins(&pinned, &mut status, &at(), &mut Vec::new());
    let moved = status.alias_history.last().expect("a move");
    assert_eq!(
        (moved.by.as_deref(), moved.message.as_deref()),
        (None, None)
    );
}

#[test]
fn ready_says_how_many_versions_serve_and_where_the_alias_points() {
    let (model, status) = model("");
    let mut rejected = candidate(2, 0.1);
    rejected.phase = VersionPhase::Rejected;
    rejected.message = Some("the artifact is not an ONNX model".into());
    let only_rejected = ModelStatus {
        versions: vec![rejected],
        ..ModelStatus::default()
    };
    let table = [
        (
            status.clone(),
            vec![],
            true,
            "AsExpected",
            "1 Ready version(s); champion -> v1",
        ),
        (
            status.clone(),
            vec!["canary is pinned to v9, which does not exist".to_owned()],
            false,
            "AliasUnresolved",
            "v9",
        ),
        (
            ModelStatus::default(),
            vec![],
            false,
            "NoReadyVersion",
            "no version",
        ),
        (
            only_rejected,
            vec![],
            false,
            "VersionsRejected",
            "every version was rejected; the latest, v2: the artifact is not an ONNX model",
        ),
    ];
    for (status, unresolved, ready, reason, says) in table {
        let got = ready_condition(&model, &status, &unresolved, None);
        assert_eq!((got.status, got.reason), (ready, reason));
        assert!(got.message.contains(says), "{}", got.message);
    }
    // An import that cannot start says so, whatever the versions.
    let blocked = "the validation Job fraud-import-1 cannot start its pod: secret \"creds\" not found (CreateContainerConfigError); it starts once that is fixed";
    let got = ready_condition(&model, &status, &[], Some(blocked));
    assert_eq!((got.status, got.reason), (false, "ValidationBlocked"));
    assert_eq!(got.message, blocked);
}
