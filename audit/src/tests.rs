//! The chain: records that verify, and every way of tampering caught.

use std::path::Path;

use super::*;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn record(user: &str, status: u16) -> Record {
    Record {
        received: "2026-11-24T00:00:00.000001Z".into(),
        completed: "2026-11-24T00:00:00.000101Z".into(),
        actor: Actor {
            user: user.into(),
            method: "ServiceAccountToken".into(),
            ..Actor::default()
        },
        source: "10.0.0.1:5000".into(),
        operation: "POST /v2/models/m/infer".into(),
        status,
        ..Record::default()
    }
}

fn trail(dir: &Path, n: usize) -> (std::path::PathBuf, Checkpoint) {
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path, KEY.to_vec()).unwrap();
    let mut last = None;
    for i in 0..n {
        last = Some(log.append(record(&format!("user-{i}"), 200)).unwrap());
    }
    (path, last.unwrap())
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "aimass-audit-{name}-{}-{:x}",
        std::process::id(),
        crate::log::boot_nonce()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn an_untouched_trail_verifies_with_unique_ids_and_increasing_sequences() {
    let dir = scratch("ok");
    let (path, last) = trail(&dir, 100);
    assert_eq!(verify(&path, KEY, Some(&last)).unwrap(), last);
    let records: Vec<Record> = lines(&path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: std::collections::HashSet<_> = records.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 100);
    assert!(
        records
            .windows(2)
            .all(|w| w[1].sequence == w[0].sequence + 1)
    );
    // A reopened log continues the chain.
    let log = AuditLog::open(&path, KEY.to_vec()).unwrap();
    let next = log.append(record("later", 200)).unwrap();
    assert_eq!(next.sequence, 101);
    verify(&path, KEY, Some(&next)).unwrap();
}

#[test]
fn every_kind_of_tampering_names_the_first_bad_record() {
    let dir = scratch("tamper");
    let (path, last) = trail(&dir, 10);
    let original = lines(&path);
    let check = |lines: Vec<String>, expect_line: usize, what: &str| {
        write(&path, &lines);
        match verify(&path, KEY, Some(&last)) {
            Err(AuditError::Broken { line, .. }) => {
                assert_eq!(line, expect_line, "{what}");
            }
            other => panic!("{what} went unnoticed: {other:?}"),
        }
    };
    // Changed: a refused call rewritten as a success.
    let mut changed = original.clone();
    changed[4] = changed[4].replace("\"status\":200", "\"status\":403");
    check(changed, 5, "a changed status");
    // Deleted.
    let mut deleted = original.clone();
    deleted.remove(3);
    check(deleted, 4, "a deleted record");
    // Inserted: a copy of another record.
    let mut inserted = original.clone();
    inserted.insert(6, original[2].clone());
    check(inserted, 7, "an inserted record");
    // Swapped.
    let mut swapped = original.clone();
    swapped.swap(7, 8);
    check(swapped, 8, "swapped records");
    // Truncated: only the checkpoint kept elsewhere can tell.
    check(original[..7].to_vec(), 7, "a truncated trail");
    // Forged with another key.
    write(&path, &original);
    assert!(verify(&path, b"another key, another key, another", None).is_err());
    verify(&path, KEY, Some(&last)).unwrap();
}

#[test]
fn a_short_key_is_refused() {
    let dir = scratch("key");
    assert!(matches!(
        AuditLog::open(&dir.join("a.jsonl"), b"short".to_vec()),
        Err(AuditError::Key(_))
    ));
}
