//! The one place Events are published from. Events mark transitions and
//! failures (a version registered, an alias moved, a run failed); a failure
//! to publish one is logged, never fatal to a reconcile.

use std::sync::atomic::{AtomicU32, Ordering};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tracing::warn;

/// Tells apart Events published in the same nanosecond.
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// The reporting controller named in every Event.
const CONTROLLER: &str = "aimass.io/operator";

/// Reasons of the Events the operator publishes that are not also a
/// condition's reason (those are in `aimass_crds::v1alpha1::conditions::reasons`).
pub mod reasons {
    /// Versions found in storage that status did not hold were recorded again.
    pub const VERSIONS_RECOVERED: &str = "VersionsRecovered";
    /// A version failed its gates or validation and will not be promoted.
    pub const VERSION_REJECTED: &str = "VersionRejected";
    /// Retention removed versions from the registry.
    pub const VERSIONS_RETIRED: &str = "VersionsRetired";
    /// An alias now points at another version.
    pub const ALIAS_MOVED: &str = "AliasMoved";
    /// A version served long and well enough to be proven here.
    pub const VERSION_PROVEN: &str = "VersionProven";
    /// Following another namespace's Model waits or was refused (the
    /// condition reason is the Event's note's first word).
    pub const PROMOTION_WAITING: &str = "PromotionWaiting";
    /// An alias was pinned by `spec.aliases`.
    pub const ALIAS_PINNED: &str = "AliasPinned";
    /// A scheduled retraining did not start: the previous run still runs.
    pub const SCHEDULE_SKIPPED: &str = "ScheduleSkipped";
    /// A TrainingJob was created for the Model (by its schedule).
    pub const TRAINING_STARTED: &str = "TrainingStarted";
    /// A deleted Model's artifacts were removed from storage.
    pub const ARTIFACTS_DELETED: &str = "ArtifactsDeleted";
    /// A new version serves on every replica.
    pub const ROLLED_OUT: &str = "RolledOut";
    /// The servers run with `security.mode: Insecure`.
    pub const INSECURE_SERVING: &str = "InsecureServing";
    /// A canary of the new version started beside the serving one.
    pub const CANARY_STARTED: &str = "CanaryStarted";
    /// The canary passed a step and takes more traffic.
    pub const CANARY_STEP_PASSED: &str = "CanaryStepPassed";
    /// The canary passed every step and takes all traffic.
    pub const CANARY_PROMOTED: &str = "CanaryPromoted";
    /// A training run's trainer started.
    pub const STARTED: &str = "Started";
    /// The autoscaler changed the replicas.
    pub const SCALED: &str = "Scaled";
    /// A replica judged unhealthy is healthy again.
    pub const REPLICA_RECOVERED: &str = "ReplicaRecovered";
    /// Most replicas on a node are unhealthy: the node is the suspect.
    pub const NODE_SUSPECT: &str = "NodeSuspect";
    /// A replacement for an unhealthy replica started away from its node.
    pub const MIGRATION_STARTED: &str = "MigrationStarted";
    /// A migration was due but administrators paused migrations.
    pub const MIGRATION_PAUSED: &str = "MigrationPaused";
    /// A migration was due; `migration.dryRun` only recorded it.
    pub const MIGRATION_DRY_RUN: &str = "MigrationDryRun";
    /// A migration's replacement serves and the unhealthy replica is gone.
    pub const MIGRATION_COMPLETED: &str = "MigrationCompleted";
    /// A migration's replacement did not become ready in time.
    pub const MIGRATION_ABANDONED: &str = "MigrationAbandoned";
    /// A served version's drift reached the action level (`spec.drift`).
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    /// A served version's drift went back below the warning level.
    pub const DRIFT_CLEARED: &str = "DriftCleared";
}

/// An Event a reconcile decided to publish, once its status is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Normal or Warning.
    pub severity: Severity,
    /// CamelCase reason.
    pub reason: String,
    /// A sentence for humans.
    pub note: String,
}

impl Notice {
    /// A Notice of `reason` saying `note`.
    pub fn new(severity: Severity, reason: &str, note: impl Into<String>) -> Self {
        Self {
            severity,
            reason: reason.to_owned(),
            note: note.into(),
        }
    }
}

/// Publishes Events as the aimass operator.
///
/// Each Event is its own object: kube's `Recorder` folds Events with the same
/// reason into one series that keeps the first note, which would hide the
/// second scale decision or alias move behind the first.
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    instance: String,
    published: prometheus::IntCounterVec,
}

/// The severity of an Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Something the user asked for happened.
    Normal,
    /// Something failed or was refused.
    Warning,
}

impl Events {
    /// An Event publisher reporting as `instance` of the operator, counting
    /// what it publishes in `published` (kind, type, reason): alert rules
    /// read failed runs and abandoned migrations from there.
    pub fn new(
        client: kube::Client,
        instance: Option<String>,
        published: prometheus::IntCounterVec,
    ) -> Self {
        Self {
            client,
            instance: instance.unwrap_or_else(|| "aimass-operator".into()),
            published,
        }
    }

    /// Publishes each of `notices` on `object`, in order, as `action`.
    pub async fn publish_all(&self, object: &ObjectReference, action: &str, notices: Vec<Notice>) {
        for notice in notices {
            self.publish(object, notice.severity, &notice.reason, action, notice.note)
                .await;
        }
    }

    /// Publishes one Event about `object`.
    pub async fn publish(
        &self,
        object: &ObjectReference,
        severity: Severity,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let type_ = match severity {
            Severity::Normal => "Normal",
            Severity::Warning => "Warning",
        };
        self.published
            .with_label_values(&[object.kind.as_deref().unwrap_or_default(), type_, reason])
            .inc();
        let event = Event {
            metadata: ObjectMeta {
                // As a kubelet names its Events: the object, then a unique
                // hexadecimal suffix.
                name: Some(format!(
                    "{}.{:x}",
                    object.name.clone().unwrap_or_default(),
                    jiff::Timestamp::now().as_nanosecond()
                        + i128::from(SEQUENCE.fetch_add(1, Ordering::Relaxed))
                )),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(jiff::Timestamp::now())),
            type_: Some(type_.into()),
            reason: Some(reason.to_owned()),
            action: Some(action.to_owned()),
            // The Events API caps the note at 1 kB.
            note: Some(truncate(note, 1000)),
            regarding: Some(object.clone()),
            reporting_controller: Some(CONTROLLER.into()),
            reporting_instance: Some(truncate(self.instance.clone(), 128)),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(error) = api.create(&PostParams::default(), &event).await {
            warn!(%error, reason, "cannot publish Event");
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
pub fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max.saturating_sub(3);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncates_on_character_boundaries() {
        assert_eq!(truncate("short".into(), 10), "short");
        let cut = truncate("ééééé".into(), 6);
        assert!(cut.len() <= 6 && cut.ends_with("..."), "{cut}");
    }
}
