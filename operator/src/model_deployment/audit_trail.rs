//! The audit trails of an Enforced ModelDeployment's replicas, watched from
//! outside the pods: at each reconcile the operator reads every serving
//! replica's checkpoint (the sequence and MAC of its trail's last record)
//! from the admin port and keeps it in status. A trail whose sequence went
//! back, or whose record at a kept sequence has another MAC, lost or
//! changed records: that is reported and stays reported until the pod goes.
//! Since each MAC pins every record before it, a kept checkpoint also lets
//! `aimass-audit verify --expect-sequence --expect-mac` prove later that
//! the file on the pod was not truncated or rewritten.
//!
//! Checkpoints are sealed: each server signs its answer with the Ed25519
//! key made with its audit key, and a checkpoint whose seal does not verify
//! against the public half, or names another trail, breaks the trail too.

use aimass_audit::seal::{self, CheckpointAnswer};
use aimass_crds::v1alpha1::conditions::reasons;
use aimass_crds::v1alpha1::{
    AuditCheckpoint, ModelDeployment, ModelDeploymentStatus, SecurityMode,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::workload::{self, ADMIN_PORT};
use super::{access, pods};
use crate::context::Context;
use crate::error::Error;
use crate::events::{Notice, Severity};

/// How often a growing trail's checkpoint is renewed.
const CHECKPOINT_INTERVAL: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// Reads every serving replica's checkpoint into `status`, and returns
/// the findings (reason, message) of each trail newly found broken.
pub async fn check(
    ctx: &Context,
    md: &ModelDeployment,
    old: &ModelDeploymentStatus,
    status: &mut ModelDeploymentStatus,
    now: &Time,
) -> Result<Vec<Notice>, Error> {
    if md.spec.security.mode != SecurityMode::Enforced {
        status.audit_checkpoints.clear();
        return Ok(Vec::new());
    }
    // Every replica that still exists keeps its checkpoint: one that is not
    // serving now (restarting, unready) is compared again when it is.
    let replicas = pods::replicas(ctx, md, &workload::selector(md)).await?;
    let read = futures::future::join_all(replicas.into_iter().map(|(pod, ip)| async move {
        let checkpoint = match ip {
            Some(ip) => read(&ip).await,
            None => None,
        };
        (pod, checkpoint)
    }))
    .await;
    let verifying_key = match &old.audit_verifying_key {
        Some(key) => Some(key.clone()),
        None => access::audit_verifying_key(ctx, md).await?,
    };
    let trails = Trails {
        namespace: &md.namespace().unwrap_or_default(),
        model: &md.served_name(),
        verifying_key: verifying_key.as_deref(),
    };
    let (kept, findings) = trails.compare(&old.audit_checkpoints, read, now);
    status.audit_checkpoints = kept;
    status.audit_verifying_key = verifying_key;
    Ok(findings
        .into_iter()
        .map(|(reason, message)| Notice::new(Severity::Warning, reason, message))
        .collect())
}

/// Reads the checkpoint of the replica at `ip`; `None` when it does not
/// answer (it keeps its last kept checkpoint).
pub async fn read(ip: &str) -> Option<CheckpointAnswer> {
    crate::scrape::get_json(&format!("http://{ip}:{ADMIN_PORT}/audit/checkpoint")).await
}

/// Whose trails are compared: the ModelDeployment's namespace and model,
/// and the key that verifies its servers' seals (none for an audit key
/// made before seals existed).
pub struct Trails<'a> {
    /// Namespace of the ModelDeployment.
    pub namespace: &'a str,
    /// The model it serves.
    pub model: &'a str,
    /// The public key of its servers' seals.
    pub verifying_key: Option<&'a str>,
}

impl Trails<'_> {
    /// What is wrong with the seal of `answer` from `pod`, if anything.
    fn seal_problem(&self, pod: &str, answer: &CheckpointAnswer) -> Option<String> {
        let key = self.verifying_key?;
        let Some(seal) = &answer.seal else {
            return Some(format!(
                "the audit checkpoint of {pod} is not sealed, though its servers have a signing key"
            ));
        };
        if seal.pod != pod
            || seal.namespace != self.namespace
            || seal.model != self.model
            || seal.sequence != answer.checkpoint.sequence
            || seal.mac != answer.checkpoint.mac
            || seal.write_failures != answer.write_failures
        {
            return Some(format!(
                "the audit checkpoint of {pod} carries the seal of another trail"
            ));
        }
        seal::verify(seal, key)
            .err()
            .map(|why| format!("the seal of the audit checkpoint of {pod} is forged: {why}"))
    }

    /// The checkpoints to keep, given the kept ones and what each serving
    /// pod answered now, and what is newly wrong: (condition reason,
    /// message) of trails found broken and of servers that failed to record
    /// calls since their last checkpoint.
    pub fn compare(
        &self,
        kept: &[AuditCheckpoint],
        read: Vec<(String, Option<CheckpointAnswer>)>,
        now: &Time,
    ) -> (Vec<AuditCheckpoint>, Vec<(&'static str, String)>) {
        let mut keep = Vec::new();
        let mut findings = Vec::new();
        for (pod, answer) in read {
            let before = kept.iter().find(|c| c.pod == pod);
            let Some(answer) = answer else {
                keep.extend(before.cloned());
                continue;
            };
            let failures = i64::try_from(answer.write_failures).unwrap_or(i64::MAX);
            if failures > before.map_or(0, |b| b.write_failures) {
                findings.push((
                    reasons::AUDIT_WRITE_FAILING,
                    format!("{failures} call(s) to {pod} could not be recorded in its audit trail"),
                ));
            }
            let (kept_checkpoint, broken) = self.judge(&pod, before, answer, now);
            findings.extend(broken.map(|m| (reasons::AUDIT_TRAIL_BROKEN, m)));
            keep.push(kept_checkpoint);
        }
        (keep, findings)
    }

    /// The checkpoint to keep for `pod` and a newly found break, if any.
    /// A trail found broken stays broken until its pod goes.
    fn judge(
        &self,
        pod: &str,
        before: Option<&AuditCheckpoint>,
        answer: CheckpointAnswer,
        now: &Time,
    ) -> (AuditCheckpoint, Option<String>) {
        let sequence = i64::try_from(answer.checkpoint.sequence).unwrap_or(i64::MAX);
        let known = before.and_then(|b| b.broken.clone());
        let found = match (&known, before) {
            (Some(_), _) => None,
            (None, before) => self.seal_problem(pod, &answer).or_else(|| {
                let before = before?;
                if sequence < before.sequence {
                    Some(format!(
                        "the audit trail of {pod} went back from record {} to {sequence}: records were removed",
                        before.sequence
                    ))
                } else if sequence == before.sequence && answer.checkpoint.mac != before.mac {
                    Some(format!(
                        "record {sequence} of the audit trail of {pod} changed since it was checkpointed"
                    ))
                } else {
                    None
                }
            }),
        };
        let broken = known.or_else(|| found.clone());
        let write_failures = i64::try_from(answer.write_failures).unwrap_or(i64::MAX);
        // A growing trail is checkpointed once a minute: every status write
        // is a reconcile, and a busy server's trail grows all the time.
        if broken.is_none()
            && let Some(before) = before
            && before.write_failures == write_failures
            && now.0.duration_since(before.time.0) < CHECKPOINT_INTERVAL
        {
            return (before.clone(), None);
        }
        let seal = answer.seal;
        (
            AuditCheckpoint {
                pod: pod.to_owned(),
                sequence,
                mac: answer.checkpoint.mac,
                time: now.clone(),
                write_failures,
                sealed_at: seal.as_ref().map(|s| s.time.clone()),
                signature: seal.map(|s| s.signature),
                broken,
            },
            found,
        )
    }
}

#[cfg(test)]
mod tests {
    use aimass_audit::seal::Sealer;
    use aimass_audit::{Checkpoint, Target};

    use super::*;

    const UNSEALED: Trails<'static> = Trails {
        namespace: "risk",
        model: "fraud",
        verifying_key: None,
    };

    fn at(sequence: u64, mac: &str) -> Option<CheckpointAnswer> {
        Some(CheckpointAnswer {
            checkpoint: Checkpoint {
                sequence,
                mac: mac.into(),
            },
            write_failures: 0,
            seal: None,
        })
    }

    /// As `pod`'s server with `sealer` would answer.
    fn sealed(sealer: &Sealer, pod: &str, sequence: u64, mac: &str) -> Option<CheckpointAnswer> {
        let mut answer = at(sequence, mac)?;
        let target = Target {
            namespace: "risk".into(),
            model: "fraud".into(),
            pod: pod.into(),
            ..Target::default()
        };
        answer.seal = Some(sealer.seal(
            &target,
            &answer.checkpoint,
            0,
            "2026-11-24T09:00:00.000000Z".into(),
        ));
        Some(answer)
    }

    fn compare(
        kept: &[AuditCheckpoint],
        read: Vec<(String, Option<CheckpointAnswer>)>,
        now: &Time,
    ) -> (Vec<AuditCheckpoint>, Vec<String>) {
        let (kept, findings) = UNSEALED.compare(kept, read, now);
        (kept, findings.into_iter().map(|(_, m)| m).collect())
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

    #[test]
    fn only_a_seal_of_this_trail_by_its_servers_key_is_kept() {
        let (seed, verifying_key) = aimass_audit::seal::generate().unwrap();
        let sealer = Sealer::from_seed(&seed).unwrap();
        let (other_seed, _) = aimass_audit::seal::generate().unwrap();
        let impostor = Sealer::from_seed(&other_seed).unwrap();
        let trails = Trails {
            verifying_key: Some(&verifying_key),
            ..UNSEALED
        };
        let (kept, findings) = trails.compare(
            &[],
            vec![
                ("a".into(), sealed(&sealer, "a", 3, "m3")),
                ("b".into(), at(3, "m3")),
                ("c".into(), sealed(&impostor, "c", 3, "m3")),
                ("d".into(), sealed(&sealer, "a", 3, "m3")),
            ],
            &at_minute(0),
        );
        let broken: Vec<&String> = findings.iter().map(|(_, m)| m).collect();
        assert!(kept[0].broken.is_none() && kept[0].signature.is_some());
        assert_eq!(
            kept[0].sealed_at.as_deref(),
            Some("2026-11-24T09:00:00.000000Z")
        );
        assert_eq!(broken.len(), 3, "{broken:?}");
        assert!(broken[0].contains("not sealed"), "{}", broken[0]);
        assert!(broken[1].contains("forged"), "{}", broken[1]);
        assert!(broken[2].contains("another trail"), "{}", broken[2]);
    }

    #[test]
    fn calls_a_server_could_not_record_are_reported_once_each_time_they_grow() {
        let failing = |failures| {
            let mut answer = at(5, "m5");
            if let Some(a) = answer.as_mut() {
                a.write_failures = failures;
            }
            answer
        };
        let (kept, findings) = UNSEALED.compare(&[], vec![("a".into(), failing(2))], &at_minute(0));
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].0, reasons::AUDIT_WRITE_FAILING);
        assert!(
            findings[0].1.starts_with("2 call(s) to a"),
            "{}",
            findings[0].1
        );
        assert_eq!(kept[0].write_failures, 2);
        let (kept, findings) =
            UNSEALED.compare(&kept, vec![("a".into(), failing(2))], &at_minute(0));
        assert!(findings.is_empty(), "no new failures: {findings:?}");
        let (kept, findings) =
            UNSEALED.compare(&kept, vec![("a".into(), failing(3))], &at_minute(0));
        assert_eq!(findings.len(), 1, "one more");
        assert_eq!(
            kept[0].write_failures, 3,
            "renewed at once, not a minute later"
        );
    }
}
