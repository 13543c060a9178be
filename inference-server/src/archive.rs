//! Ships the audit trail off the pod, so it outlives it: every interval (and
//! once more at shutdown) the records appended since the last shipment are
//! written as one object, `<first>-<last>.jsonl` (sequences, zero-padded)
//! under `<archive>/<namespace>/<model>/<pod>/`, to an object store or a
//! local directory. The parts of a pod, read in name order, are its trail:
//! `aimass-audit verify --log <directory>` checks them as one chain.
//!
//! With rotation (`--audit-segment-bytes`) the trail's segments that are
//! archived are removed from the pod, all but the newest (which anchors the
//! chain for a restarted server), so the pod's volume stays bounded.
//!
//! A restarted server resumes after the last record already shipped, so no
//! record is shipped twice; a failed shipment is retried at the next
//! interval and counted in `aimass_audit_archive_failures_total`.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

use crate::metrics::Metrics;
use aimass_storage::Error;
use aimass_storage::Location;

/// Follows one trail file and ships what it gains.
pub struct Archiver {
    trail: PathBuf,
    destination: Location,
    /// Bytes of the current file already looked at.
    offset: u64,
    /// Sequence of the current file's first record when last looked at: a
    /// change means it was rotated.
    current_first: Option<u64>,
    /// The last sequence already in the archive, once it has been read.
    shipped: Option<u64>,
}

impl Archiver {
    /// An archiver of `trail` into `destination` (this pod's folder). It
    /// resumes after the parts already there, read at its first shipment
    /// (an archive down at start delays shipping, not serving).
    pub fn new(trail: PathBuf, destination: Location) -> Self {
        Self {
            trail,
            destination,
            offset: 0,
            current_first: None,
            shipped: None,
        }
    }

    /// The last sequence in the archive.
    async fn shipped(&mut self) -> Result<u64, Error> {
        if let Some(shipped) = self.shipped {
            return Ok(shipped);
        }
        let shipped = self
            .destination
            .list()
            .await?
            .iter()
            .filter_map(|name| last_sequence(name))
            .max()
            .unwrap_or(0);
        self.shipped = Some(shipped);
        Ok(shipped)
    }

    /// Ships the complete records appended since the last call: how many.
    /// Rotated segments are read whole and removed once archived; the
    /// current file is read from where the last round stopped. A part is
    /// always the next records in sequence: a record after a gap (a segment
    /// rotated while this round read) waits for the next round.
    pub async fn ship(&mut self) -> Result<usize, Error> {
        let shipped = self.shipped().await?;
        let fail = |e: std::io::Error| Error::Fetch {
            uri: self.trail.display().to_string(),
            reason: e.to_string(),
        };
        let current_first = aimass_audit::first_sequence(&self.trail);
        if current_first != self.current_first {
            // Rotated (or new): the current file starts over.
            self.current_first = current_first;
            self.offset = 0;
        }
        let mut part = Part::after(shipped);
        let mut archived = Vec::new();
        for segment in aimass_audit::segments(&self.trail).map_err(fail)? {
            let bytes = tokio::fs::read(&segment).await.map_err(fail)?;
            let last = part.take(&bytes);
            archived.push((segment, last));
        }
        let bytes = match tokio::fs::File::open(&self.trail).await {
            Ok(mut file) => {
                file.seek(SeekFrom::Start(self.offset))
                    .await
                    .map_err(fail)?;
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).await.map_err(fail)?;
                bytes
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(fail(e)),
        };
        // Only whole lines: a record being written is shipped next time.
        let whole = bytes
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |end| end + 1);
        let gap_before = part.gap;
        part.take(&bytes[..whole]);
        let complete = !part.gap && !gap_before;
        if let Some(first) = part.first {
            self.destination
                .child(&format!("{first:012}-{:012}.jsonl", part.last))
                // Append-only from the server's side: a part is never
                // replaced.
                .put_new(std::mem::take(&mut part.bytes))
                .await?;
            self.shipped = Some(part.last);
        }
        if complete {
            self.offset += u64::try_from(whole).unwrap_or(u64::MAX);
        }
        // The newest segment stays: when the current file is still empty it
        // is what a restarted server continues the chain from.
        archived.pop();
        for (segment, last) in archived {
            if last.is_some_and(|last| last <= part.last) {
                tokio::fs::remove_file(&segment).await.map_err(fail)?;
            }
        }
        Ok(part.records)
    }

    /// Ships every `interval` until `stop` turns true, then once more.
    pub async fn run(
        mut self,
        interval: Duration,
        metrics: Arc<Metrics>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut ticks = tokio::time::interval(interval);
        loop {
            let last = tokio::select! {
                _ = ticks.tick() => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            match self.ship().await {
                Ok(records) => metrics.audit_archived.inc_by(records as u64),
                Err(e) => {
                    metrics.audit_archive_failures.inc();
                    tracing::error!(error = %e, "cannot ship the audit trail to its archive");
                }
            }
            if last {
                return;
            }
        }
    }
}

/// The records of the next part: those that follow `last` in sequence.
struct Part {
    bytes: Vec<u8>,
    first: Option<u64>,
    last: u64,
    records: usize,
    /// A record after a missing one was met: nothing more is taken.
    gap: bool,
}

impl Part {
    fn after(shipped: u64) -> Self {
        Self {
            bytes: Vec::new(),
            first: None,
            last: shipped,
            records: 0,
            gap: false,
        }
    }

    /// Takes the records of `lines` that continue the part; the sequence
    /// of the last line seen.
    fn take(&mut self, lines: &[u8]) -> Option<u64> {
        let mut seen = None;
        for line in lines.split_inclusive(|b| *b == b'\n') {
            let sequence = aimass_audit::sequence_of(line).unwrap_or(0);
            seen = Some(sequence);
            if self.gap || sequence <= self.last {
                continue;
            }
            if sequence != self.last + 1 {
                self.gap = true;
                continue;
            }
            self.first.get_or_insert(sequence);
            self.last = sequence;
            self.records += 1;
            self.bytes.extend_from_slice(line);
        }
        seen
    }
}

/// The last sequence a part's name says it holds.
fn last_sequence(name: &str) -> Option<u64> {
    name.strip_suffix(".jsonl")?
        .rsplit_once('-')?
        .1
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimass_audit::{AuditLog, Record, verify};
    use aimass_storage::{Credentials, open};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "aimass-archive-{name}-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn destination(dir: &std::path::Path) -> Location {
        open(
            &format!("file://{}", dir.join("archive/risk/fraud/pod-1").display()),
            &Credentials::Environment,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn parts_shipped_across_restarts_verify_as_one_trail() {
        let dir = scratch("restart");
        let trail = dir.join("calls.jsonl");
        let key = vec![4; 32];
        let log = AuditLog::open(&trail, key.clone()).unwrap();
        let mut archiver = Archiver::new(trail.clone(), destination(&dir));
        for _ in 0..3 {
            log.append(Record::default()).unwrap();
        }
        assert_eq!(archiver.ship().await.unwrap(), 3);
        assert_eq!(archiver.ship().await.unwrap(), 0, "nothing new");
        log.append(Record::default()).unwrap();
        // A restarted server: a new archiver reads the trail from the start
        // and ships only what the archive lacks.
        let mut restarted = Archiver::new(trail.clone(), destination(&dir));
        log.append(Record::default()).unwrap();
        assert_eq!(restarted.ship().await.unwrap(), 2);
        let parts = dir.join("archive/risk/fraud/pod-1");
        let mut names: Vec<_> = std::fs::read_dir(&parts)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "000000000001-000000000003.jsonl",
                "000000000004-000000000005.jsonl"
            ]
        );
        let tail = verify(&parts, &key, None).unwrap();
        assert_eq!(tail, log.checkpoint(), "the archive holds the whole trail");
        // A part removed from the archive is a gap `verify` names.
        std::fs::remove_file(parts.join(&names[0])).unwrap();
        assert!(verify(&parts, &key, None).is_err());
    }

    #[tokio::test]
    async fn a_half_written_record_waits_for_the_next_shipment() {
        let dir = scratch("partial");
        let trail = dir.join("calls.jsonl");
        let log = AuditLog::open(&trail, vec![4; 32]).unwrap();
        log.append(Record::default()).unwrap();
        let mut archiver = Archiver::new(trail.clone(), destination(&dir));
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&trail)
            .unwrap();
        std::io::Write::write_all(&mut file, b"{\"sequence\": 2").unwrap();
        assert_eq!(archiver.ship().await.unwrap(), 1, "the whole line only");
    }

    #[tokio::test]
    async fn rotated_segments_are_archived_then_removed_and_the_chain_goes_on() {
        let dir = scratch("rotate");
        let trail = dir.join("calls.jsonl");
        let key = vec![4; 32];
        let log = AuditLog::open_rotating(&trail, key.clone(), 1500).unwrap();
        for _ in 0..20 {
            log.append(Record::default()).unwrap();
        }
        let rotated = aimass_audit::segments(&trail).unwrap();
        assert!(rotated.len() >= 3, "{rotated:?}");
        let mut archiver = Archiver::new(trail.clone(), destination(&dir));
        assert_eq!(archiver.ship().await.unwrap(), 20);
        assert_eq!(
            aimass_audit::segments(&trail).unwrap(),
            rotated[rotated.len() - 1..],
            "archived segments are removed from the pod, but for the newest"
        );
        // A restarted server continues the chain from what is left.
        drop(log);
        let log = AuditLog::open_rotating(&trail, key.clone(), 1500).unwrap();
        for _ in 0..7 {
            log.append(Record::default()).unwrap();
        }
        assert_eq!(log.checkpoint().sequence, 27);
        let mut restarted = Archiver::new(trail.clone(), destination(&dir));
        assert_eq!(restarted.ship().await.unwrap(), 7);
        let parts = dir.join("archive/risk/fraud/pod-1");
        assert_eq!(verify(&parts, &key, None).unwrap(), log.checkpoint());
        // Without rotation, a trail whose front is gone does not open.
        assert!(AuditLog::open(&trail, key).is_err());
    }
}
