//! Writing the trail: one chained record per call, rotated into segments.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::record::{AuditError, Checkpoint, GENESIS, Record, Target, mac_of};
use crate::verify::{concatenated, first_sequence, verify, verify_reader};

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
pub(crate) fn boot_nonce() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Truncation keeps the fast-changing low bits, which is the point.
    #[allow(clippy::cast_possible_truncation)]
    let low = nanos as u64;
    low ^ u64::from(std::process::id()).rotate_left(32)
}
