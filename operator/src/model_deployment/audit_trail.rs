//! The audit trails of an Enforced ModelDeployment's replicas, watched from
//! outside the pods: at each reconcile the operator reads every serving
//! replica's checkpoint (the sequence and MAC of its trail's last record)
//! from the admin port and keeps it in status. A trail whose sequence went
//! back, or whose record at a kept sequence has another MAC, lost or
//! changed records: that is reported and stays reported until the pod goes.
//! Since each MAC pins every record before it, a kept checkpoint also lets
//! `aimass-audit verify --expect-sequence --expect-mac` prove later that
//! the file on the pod was not truncated or rewritten.

use aimass_crds::v1alpha1::AuditCheckpoint;
use aimass_inference_server::audit::Checkpoint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::workload::ADMIN_PORT;

/// How often a growing trail's checkpoint is renewed.
const CHECKPOINT_INTERVAL: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// Reads the checkpoint of the replica at `ip`; `None` when it does not
/// answer (it keeps its last kept checkpoint).
pub async fn read(ip: &str) -> Option<Checkpoint> {
    crate::scrape::get_json(&format!("http://{ip}:{ADMIN_PORT}/audit/checkpoint")).await
}

/// The checkpoints to keep, given the kept ones and what each serving pod
/// answered now, and the messages of trails newly found broken.
pub fn compare(
    kept: &[AuditCheckpoint],
    read: Vec<(String, Option<Checkpoint>)>,
    now: &Time,
) -> (Vec<AuditCheckpoint>, Vec<String>) {
    let mut keep = Vec::new();
    let mut broken = Vec::new();
    for (pod, fresh) in read {
        let before = kept.iter().find(|c| c.pod == pod);
        let Some(fresh) = fresh else {
            keep.extend(before.cloned());
            continue;
        };
        let sequence = i64::try_from(fresh.sequence).unwrap_or(i64::MAX);
        let mut finding = before.and_then(|b| b.broken.clone());
        if finding.is_none()
            && let Some(before) = before
        {
            if sequence < before.sequence {
                finding = Some(format!(
                    "the audit trail of {pod} went back from record {} to {sequence}: records were removed",
                    before.sequence
                ));
            } else if sequence == before.sequence && fresh.mac != before.mac {
                finding = Some(format!(
                    "record {sequence} of the audit trail of {pod} changed since it was checkpointed"
                ));
            }
            broken.extend(finding.clone());
        }
        // A growing trail is checkpointed once a minute: every status write
        // is a reconcile, and a busy server's trail grows all the time.
        if finding.is_none()
            && let Some(before) = before
            && now.0.duration_since(before.time.0) < CHECKPOINT_INTERVAL
        {
            keep.push(before.clone());
            continue;
        }
        keep.push(AuditCheckpoint {
            pod,
            sequence,
            mac: fresh.mac,
            time: now.clone(),
            broken: finding,
        });
    }
    (keep, broken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(sequence: u64, mac: &str) -> Option<Checkpoint> {
        Some(Checkpoint {
            sequence,
            mac: mac.into(),
        })
    }

    /// `minutes` after a fixed start.
    fn at_minute(minutes: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_800_000_000 + 60 * minutes).unwrap())
    }

    #[test]
    fn a_growing_trail_is_kept_and_a_silent_replica_keeps_its_checkpoint() {
        let (kept, broken) = compare(&[], vec![("a".into(), at(3, "m3"))], &at_minute(0));
        assert!(broken.is_empty());
        let (same, _) = compare(&kept, vec![("a".into(), at(5, "m5"))], &at_minute(0));
        assert_eq!(same, kept, "renewed at most once a minute");
        let (kept, broken) = compare(
            &kept,
            vec![("a".into(), at(9, "m9")), ("b".into(), None)],
            &at_minute(1),
        );
        assert!(broken.is_empty());
        assert_eq!((kept[0].sequence, kept[0].mac.as_str()), (9, "m9"));
        assert_eq!(kept.len(), 1, "b never answered: nothing to keep");
        let (kept, _) = compare(&kept, vec![("a".into(), None)], &at_minute(2));
        assert_eq!(kept[0].sequence, 9, "a silent replica keeps its checkpoint");
        let (kept, _) = compare(&kept, vec![], &at_minute(3));
        assert!(kept.is_empty(), "a pod that is gone is forgotten");
    }

    #[test]
    fn a_trail_that_goes_back_or_changes_is_broken_until_the_pod_goes() {
        let kept = compare(
            &[],
            vec![("a".into(), at(9, "m9")), ("b".into(), at(4, "m4"))],
            &at_minute(0),
        )
        .0;
        let (kept, broken) = compare(
            &kept,
            vec![("a".into(), at(2, "m2")), ("b".into(), at(4, "forged"))],
            &at_minute(0),
        );
        assert_eq!(broken.len(), 2, "{broken:?}");
        assert!(broken[0].contains("went back from record 9 to 2"));
        assert!(broken[1].contains("record 4"));
        // Reported once; still marked while the pods run.
        let (kept, broken) = compare(&kept, vec![("a".into(), at(3, "m3"))], &at_minute(5));
        assert!(broken.is_empty());
        assert!(kept[0].broken.is_some());
    }
}
