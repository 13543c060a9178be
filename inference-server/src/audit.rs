//! The audit trail of model calls: one JSON line per call, accepted or
//! refused, modelled on the Kubernetes audit Event (who, what, when, from
//! where, on which model, with which outcome), chained by keyed hashes so
//! that changing, deleting, inserting, swapping or truncating records is
//! detected by [`verify`].
//!
//! Record `n` carries `prev` (record `n-1`'s `mac`, zeros for the first) and
//! `mac = HMAC-SHA256(key, prev ‖ record-without-mac)`. Only the holder of
//! the key can write a record that verifies, and every record pins the one
//! before it. Truncation at the end is caught by comparing the last record
//! with a checkpoint kept elsewhere (`verify`'s `expect_last`).
//!
//! Payloads are never recorded: only input and output names, types and
//! shapes. Credentials never are either: principals are recorded by name and
//! by credential id (a hash prefix, never the secret).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who made a call, as far as authentication got.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// Kubernetes-style user name; empty when authentication failed.
    pub user: String,
    /// Its groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Which credential (a hash prefix, never the secret).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential_id: String,
    /// How it authenticated: `ServiceAccountToken`, `ApiKey`, `ClientCertificate`, or `None`.
    pub method: String,
}

/// The model a call was for.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Namespace of the ModelDeployment.
    pub namespace: String,
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// sha256 of the artifact.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub artifact_sha256: String,
    /// The serving pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
    /// Its node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
}

/// What each gate decided.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// `Allowed`, `Refused` or `Unavailable`.
    pub authentication: String,
    /// `Allowed`, `Denied`, `Unavailable`, or empty when not reached.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authorization: String,
    /// The authoriser's reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authorization_reason: String,
    /// `Allowed` or `Limited`, or empty when not reached.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rate_limit: String,
}

/// A tensor's name, type and shape: what a call sent or got; values only as
/// a payload policy keeps them ([`crate::payload`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TensorShape {
    /// Tensor name.
    pub name: String,
    /// Datatype (FP32, INT64, …).
    pub datatype: String,
    /// Shape.
    pub shape: Vec<i64>,
    /// The values as the payload policy keeps them (hashed, bucketed, or
    /// with card numbers masked); absent unless a policy names the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<serde_json::Value>>,
}

/// One call, as recorded.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Unique id of the record.
    pub id: String,
    /// Position in the chain, from 1, without gaps.
    pub sequence: u64,
    /// When the call arrived (UTC, microseconds).
    pub received: String,
    /// When it was answered.
    pub completed: String,
    /// Who.
    pub actor: Actor,
    /// From where (peer address).
    pub source: String,
    /// On which model.
    pub target: Target,
    /// HTTP method and path.
    pub operation: String,
    /// What authentication, authorisation and the rate limit decided.
    pub decision: Decision,
    /// The HTTP status answered.
    pub status: u16,
    /// Time from arrival to answer, in microseconds.
    pub latency_micros: u64,
    /// Inputs sent (names, types, shapes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<TensorShape>,
    /// Outputs answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<TensorShape>,
    /// The previous record's `mac`.
    pub prev: String,
    /// HMAC-SHA256 over `prev` and this record without `mac`.
    #[serde(default)]
    pub mac: String,
}

/// Why the trail could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be opened, written or read.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The key is unusable.
    #[error("audit key: {0}")]
    Key(String),
    /// A record does not verify.
    #[error("record {line} (sequence {sequence}): {reason}")]
    Broken {
        /// 1-based line of the file.
        line: usize,
        /// The sequence it claims (0 when unreadable).
        sequence: u64,
        /// What is wrong.
        reason: String,
    },
}

fn mac_of(key: &[u8], record: &Record) -> Result<String, AuditError> {
    let mut unsigned = record.clone();
    unsigned.mac.clear();
    let body = serde_json::to_vec(&unsigned).map_err(|e| AuditError::Key(e.to_string()))?;
    let mut mac = HmacSha256::new_from_slice(key).map_err(|e| AuditError::Key(e.to_string()))?;
    mac.update(record.prev.as_bytes());
    mac.update(&body);
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// The tail of a chain: what the next record continues from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Sequence of the last record (0 for an empty trail).
    pub sequence: u64,
    /// Its `mac` ([`GENESIS`] for an empty trail).
    pub mac: String,
}

/// Appends chained records to a file. Writes are serialised; each record is
/// one `write` of a whole line, flushed before the call is answered.
pub struct AuditLog {
    key: Vec<u8>,
    path: std::path::PathBuf,
    state: Mutex<Tail>,
    /// Rotate the current file into a segment once it holds this many bytes.
    rotate_at: Option<u64>,
    boot: String,
    sealer: Option<crate::seal::Sealer>,
    /// Records that could not be written since start.
    failures: std::sync::atomic::AtomicU64,
}

/// The file being written and where the chain stands.
struct Tail {
    file: File,
    checkpoint: Checkpoint,
    /// Sequence of the current file's first record.
    first: u64,
    /// Bytes in the current file.
    bytes: u64,
}

/// The rotated segments of the trail at `path` (`calls.jsonl` →
/// `calls.<first sequence>.jsonl` beside it), oldest first. The current
/// file comes after them.
pub fn segments(path: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let (Some(dir), Some(stem)) = (path.parent(), path.file_stem().and_then(|s| s.to_str())) else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut found: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let sequence = name
                .strip_prefix(stem)?
                .strip_prefix('.')?
                .strip_suffix(".jsonl")?;
            (sequence.len() == 12 && sequence.bytes().all(|b| b.is_ascii_digit()))
                .then_some(path.clone())
        })
        .collect();
    found.sort();
    Ok(found)
}

fn segment_name(path: &Path, first: u64) -> std::path::PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{stem}.{first:012}.jsonl"))
}

impl AuditLog {
    /// Opens (or creates) the trail at `path`, continuing its chain: an
    /// existing file is verified first, so a server never extends a broken
    /// trail.
    pub fn open(path: &Path, key: Vec<u8>) -> Result<Self, AuditError> {
        Self::open_with(path, key, None)
    }

    /// As [`AuditLog::open`], rotating the current file into a segment
    /// once it holds `rotate_at` bytes. The segments and the current file
    /// are verified as one chain, which may start after the first record
    /// (segments already archived and removed).
    pub fn open_rotating(path: &Path, key: Vec<u8>, rotate_at: u64) -> Result<Self, AuditError> {
        Self::open_with(path, key, Some(rotate_at))
    }

    fn open_with(path: &Path, key: Vec<u8>, rotate_at: Option<u64>) -> Result<Self, AuditError> {
        if key.len() < 32 {
            return Err(AuditError::Key("must be at least 32 bytes".into()));
        }
        let io = |source| AuditError::Io {
            path: path.display().to_string(),
            source,
        };
        let genesis = Checkpoint {
            sequence: 0,
            mac: GENESIS.into(),
        };
        // Only a regular file holds a chain to continue (a pipe or device
        // is written, never read back).
        let (checkpoint, first) = if rotate_at.is_some() {
            let mut files = segments(path).map_err(io)?;
            if path.is_file() {
                files.push(path.to_path_buf());
            }
            let tail = verify_reader(
                concatenated(&files).map_err(io)?,
                &path.display().to_string(),
                &key,
                None,
                true,
            )?;
            let first = first_sequence(path).unwrap_or(tail.sequence + 1);
            (tail, first)
        } else if path.is_file() {
            (verify(path, &key, None)?, 1)
        } else {
            (genesis, 1)
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            key,
            path: path.to_path_buf(),
            rotate_at,
            state: Mutex::new(Tail {
                file,
                checkpoint,
                first,
                bytes,
            }),
            boot: format!("{:016x}", boot_nonce()),
            sealer: None,
            failures: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Signs the checkpoints it hands out with `sealer`.
    #[must_use]
    pub fn sealed_by(mut self, sealer: crate::seal::Sealer) -> Self {
        self.sealer = Some(sealer);
        self
    }

    /// The tail of the chain so far, sealed (when there is a signing key)
    /// as the trail of `target`.
    pub fn sealed_checkpoint(&self, target: &Target) -> crate::seal::CheckpointAnswer {
        let checkpoint = self.checkpoint();
        let write_failures = self.failures.load(std::sync::atomic::Ordering::Relaxed);
        let seal = self.sealer.as_ref().map(|sealer| {
            let now = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string();
            sealer.seal(target, &checkpoint, write_failures, now)
        });
        crate::seal::CheckpointAnswer {
            checkpoint,
            write_failures,
            seal,
        }
    }

    /// Chains and writes `record` (its `id`, `sequence`, `prev` and `mac`
    /// are filled in here). An error means the call must not be reported as
    /// audited.
    pub fn append(&self, record: Record) -> Result<Checkpoint, AuditError> {
        let written = self.write(record);
        if written.is_err() {
            self.failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        written
    }

    fn write(&self, mut record: Record) -> Result<Checkpoint, AuditError> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tail = &mut *state;
        record.sequence = tail.checkpoint.sequence + 1;
        record.id = format!("{}-{:012}", self.boot, record.sequence);
        record.prev.clone_from(&tail.checkpoint.mac);
        record.mac = mac_of(&self.key, &record)?;
        let mut line = serde_json::to_vec(&record).map_err(|e| AuditError::Key(e.to_string()))?;
        line.push(b'\n');
        tail.file
            .write_all(&line)
            .map_err(|source| AuditError::Io {
                path: self.path.display().to_string(),
                source,
            })?;
        tail.bytes += line.len() as u64;
        tail.checkpoint = Checkpoint {
            sequence: record.sequence,
            mac: record.mac,
        };
        if self.rotate_at.is_some_and(|limit| tail.bytes >= limit) {
            // The record is written: a failed rotation only delays the next.
            if let Err(e) = self.rotate(tail) {
                tracing::error!(error = %e, "cannot rotate the audit trail");
            }
        }
        Ok(tail.checkpoint.clone())
    }

    /// Moves the current file aside as a segment and starts a new one.
    fn rotate(&self, tail: &mut Tail) -> std::io::Result<()> {
        std::fs::rename(&self.path, segment_name(&self.path, tail.first))?;
        tail.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        tail.first = tail.checkpoint.sequence + 1;
        tail.bytes = 0;
        Ok(())
    }

    /// The tail of the chain so far.
    pub fn checkpoint(&self) -> Checkpoint {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .checkpoint
            .clone()
    }
}

/// A per-process nonce that keeps record ids unique across restarts.
fn boot_nonce() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Truncation keeps the fast-changing low bits, which is the point.
    #[allow(clippy::cast_possible_truncation)]
    let low = nanos as u64;
    low ^ u64::from(std::process::id()).rotate_left(32)
}

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
fn concatenated(files: &[std::path::PathBuf]) -> std::io::Result<Box<dyn std::io::Read>> {
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
fn verify_reader(
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
        if record.sequence != tail.sequence + 1 {
            return Err(broken(
                record.sequence,
                format!("expected sequence {}", tail.sequence + 1),
            ));
        }
        if record.prev != tail.mac {
            return Err(broken(
                record.sequence,
                "does not continue the previous record (prev differs)".into(),
            ));
        }
        if !constant_time_eq(mac_of(key, &record)?.as_bytes(), record.mac.as_bytes()) {
            return Err(broken(
                record.sequence,
                "its content was changed (mac does not match)".into(),
            ));
        }
        tail = Checkpoint {
            sequence: record.sequence,
            mac: record.mac,
        };
        if expect_last.is_some_and(|e| e.sequence == tail.sequence) {
            at_expected = Some(tail.clone());
        }
    }
    if let Some(expected) = expect_last {
        match at_expected {
            None => {
                return Err(AuditError::Broken {
                    line: usize::try_from(tail.sequence).unwrap_or(usize::MAX),
                    sequence: tail.sequence,
                    reason: format!(
                        "the trail ends at sequence {} before the checkpoint at {} (truncated)",
                        tail.sequence, expected.sequence
                    ),
                });
            }
            Some(found) if found.mac != expected.mac => {
                return Err(AuditError::Broken {
                    line: usize::try_from(found.sequence).unwrap_or(usize::MAX),
                    sequence: found.sequence,
                    reason: "differs from the checkpoint (rewritten)".into(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(tail)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
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
            boot_nonce()
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
}
