//! Reading a trail back and checking every link of its chain.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;

use crate::record::{AuditError, Checkpoint, GENESIS, Record, mac_of};

/// The trail at `path`: a file, or a directory of archived parts
/// (`*.jsonl`, read in name order as one trail).
fn trail_reader(path: &Path) -> std::io::Result<Box<dyn std::io::Read>> {
    if !path.is_dir() {
        return Ok(Box::new(File::open(path)?));
    }
    let mut parts: Vec<_> = std::fs::read_dir(path)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    parts.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    parts.sort();
    concatenated(&parts)
}

/// The files one after another, as one reader.
pub(crate) fn concatenated(
    files: &[std::path::PathBuf],
) -> std::io::Result<Box<dyn std::io::Read>> {
    files.iter().try_fold(
        Box::new(std::io::empty()) as Box<dyn std::io::Read>,
        |trail, file| {
            let chained: Box<dyn std::io::Read> =
                Box::new(std::io::Read::chain(trail, File::open(file)?));
            Ok(chained)
        },
    )
}

/// Checks every record of the trail at `path` (a file, or a directory of
/// archived parts) and returns its tail. The
/// first record that does not verify (bad JSON, a gap or repeat in the
/// sequence, a `prev` that is not the previous `mac`, a `mac` that does not
/// match) is the error. With `expect_last`, a trail that ends before that
/// checkpoint (truncated) or at a different record is an error too.
pub fn verify(
    path: &Path,
    key: &[u8],
    expect_last: Option<&Checkpoint>,
) -> Result<Checkpoint, AuditError> {
    let shown = path.display().to_string();
    let reader = trail_reader(path).map_err(|source| AuditError::Io {
        path: shown.clone(),
        source,
    })?;
    verify_reader(reader, &shown, key, expect_last, false)
}

/// The sequence of the first record of the file at `path`.
pub fn first_sequence(path: &Path) -> Option<u64> {
    let mut line = String::new();
    BufReader::new(File::open(path).ok()?)
        .read_line(&mut line)
        .ok()?;
    sequence_of(line.as_bytes())
}

/// The `sequence` of a record's line, read without the rest of it.
pub fn sequence_of(line: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Sequence {
        sequence: u64,
    }
    serde_json::from_slice::<Sequence>(line)
        .ok()
        .map(|s| s.sequence)
}

/// Verifies the records `reader` yields; `anchored` accepts a trail that
/// starts after the first record (its first `prev` is taken as given).
pub(crate) fn verify_reader(
    reader: Box<dyn std::io::Read>,
    shown: &str,
    key: &[u8],
    expect_last: Option<&Checkpoint>,
    anchored: bool,
) -> Result<Checkpoint, AuditError> {
    let io = |source| AuditError::Io {
        path: shown.to_owned(),
        source,
    };
    let reader = BufReader::new(reader);
    let mut tail = Checkpoint {
        sequence: 0,
        mac: GENESIS.into(),
    };
    let mut at_expected = None;
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(io)?;
        let broken = |sequence, reason: String| AuditError::Broken {
            line: index + 1,
            sequence,
            reason,
        };
        let record: Record =
            serde_json::from_str(&line).map_err(|e| broken(0, format!("not a record: {e}")))?;
        if anchored && index == 0 && record.sequence > 1 {
            tail = Checkpoint {
                sequence: record.sequence - 1,
                mac: record.prev.clone(),
            };
        }
        let mac = mac_of(key, &record)?;
        check_link(&tail, &record, &mac).map_err(|reason| broken(record.sequence, reason))?;
        tail = Checkpoint {
            sequence: record.sequence,
            mac: record.mac,
        };
        if expect_last.is_some_and(|e| e.sequence == tail.sequence) {
            at_expected = Some(tail.clone());
        }
    }
    if let Some(expected) = expect_last {
        check_checkpoint(&tail, at_expected, expected)?;
    }
    Ok(tail)
}

/// Whether `record`, whose content's mac is `mac`, continues the trail after
/// `tail`, unchanged; if not, why.
fn check_link(tail: &Checkpoint, record: &Record, mac: &str) -> Result<(), String> {
    if record.sequence != tail.sequence + 1 {
        return Err(format!("expected sequence {}", tail.sequence + 1));
    }
    if record.prev != tail.mac {
        return Err("does not continue the previous record (prev differs)".into());
    }
    if !constant_time_eq(mac.as_bytes(), record.mac.as_bytes()) {
        return Err("its content was changed (mac does not match)".into());
    }
    Ok(())
}

/// Whether the trail, which ends at `tail`, holds the `expected` checkpoint
/// as it was (`found` is its record at that sequence).
fn check_checkpoint(
    tail: &Checkpoint,
    found: Option<Checkpoint>,
    expected: &Checkpoint,
) -> Result<(), AuditError> {
    match found {
        None => Err(AuditError::Broken {
            line: usize::try_from(tail.sequence).unwrap_or(usize::MAX),
            sequence: tail.sequence,
            reason: format!(
                "the trail ends at sequence {} before the checkpoint at {} (truncated)",
                tail.sequence, expected.sequence
            ),
        }),
        Some(found) if found.mac != expected.mac => Err(AuditError::Broken {
            line: usize::try_from(found.sequence).unwrap_or(usize::MAX),
            sequence: found.sequence,
            reason: "differs from the checkpoint (rewritten)".into(),
        }),
        Some(_) => Ok(()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
