//! Ships the audit trail off the pod, so it outlives it: every interval (and
//! once more at shutdown) the records appended since the last shipment are
//! written as one object, `<first>-<last>.jsonl` (sequences, zero-padded)
//! under `<archive>/<namespace>/<model>/<pod>/`, to an object store or a
//! local directory. The parts of a pod, read in name order, are its trail:
//! `aimass-audit verify --log <directory>` checks them as one chain.
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

use crate::Error;
use crate::metrics::Metrics;
use crate::source::Location;

/// Follows one trail file and ships what it gains.
pub struct Archiver {
    trail: PathBuf,
    destination: Location,
    /// Bytes of the trail already looked at.
    offset: u64,
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
    pub async fn ship(&mut self) -> Result<usize, Error> {
        let shipped = self.shipped().await?;
        let fail = |e: std::io::Error| Error::Fetch {
            uri: self.trail.display().to_string(),
            reason: e.to_string(),
        };
        let mut file = match tokio::fs::File::open(&self.trail).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(fail(e)),
        };
        file.seek(SeekFrom::Start(self.offset))
            .await
            .map_err(fail)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).await.map_err(fail)?;
        // Only whole lines: a record being written is shipped next time.
        let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
            return Ok(0);
        };
        let mut part = Vec::new();
        let (mut first, mut last) = (None, shipped);
        for line in bytes[..=end].split_inclusive(|b| *b == b'\n') {
            let sequence = sequence_of(line).unwrap_or(0);
            if sequence <= shipped {
                continue;
            }
            first.get_or_insert(sequence);
            last = sequence;
            part.extend_from_slice(line);
        }
        let read = u64::try_from(end + 1).unwrap_or(u64::MAX);
        let Some(first) = first else {
            self.offset += read;
            return Ok(0);
        };
        let records = part.iter().filter(|b| **b == b'\n').count();
        self.destination
            .child(&format!("{first:012}-{last:012}.jsonl"))
            .put(part)
            .await?;
        self.offset += read;
        self.shipped = Some(last);
        Ok(records)
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

/// The `sequence` of a record line.
fn sequence_of(line: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Sequence {
        sequence: u64,
    }
    serde_json::from_slice::<Sequence>(line)
        .ok()
        .map(|s| s.sequence)
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
    use crate::audit::{AuditLog, Record, verify};
    use crate::source::{Credentials, open};

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
}
