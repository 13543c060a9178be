//! Condition types and reasons, as written to `status.conditions`. Reasons are
//! stable CamelCase words: alert rules, Argo CD and Flux health checks match
//! on them.

/// Condition types.
pub mod types {
    /// The object does what it was asked: a Model has a usable version whose
    /// aliases resolve; a ModelDeployment serves its resolved version on all
    /// wanted replicas.
    pub const READY: &str = "Ready";
    /// A Model has a training run in progress.
    pub const TRAINING: &str = "Training";
    /// A TrainingJob's trainer is running.
    pub const RUNNING: &str = "Running";
    /// A TrainingJob finished and its version was recorded.
    pub const SUCCEEDED: &str = "Succeeded";
    /// A TrainingJob failed; final.
    pub const FAILED: &str = "Failed";
    /// A ModelDeployment is rolling out a version or migrating a replica.
    pub const PROGRESSING: &str = "Progressing";
    /// A ModelDeployment has an unhealthy replica or cannot resolve its model.
    pub const DEGRADED: &str = "Degraded";
    /// A ModelDeployment's servers check who calls them and record every
    /// call (`False` when `security.mode` is `Insecure`).
    pub const SECURED: &str = "Secured";
    /// A Model following another namespace (`spec.source.promotedFrom`)
    /// has recorded the version it follows now; `False` says why it waits
    /// or refused.
    pub const PROMOTED: &str = "Promoted";
    /// A Model's version served long and well enough under `spec.evidence`
    /// (`False` while the version served now is still soaking).
    pub const PROVEN: &str = "Proven";
    /// A Model's champion meets its gates on the newest labelled data
    /// (`spec.evaluation`); `False` names the gates it no longer meets.
    pub const EVALUATED: &str = "Evaluated";
    /// A ModelApproval counted for the version its Model follows now.
    pub const COUNTED: &str = "Counted";
    /// A ModelDeployment's served version drifts from its training
    /// baseline: a PSI or CSI at the action level (`spec.drift`).
    pub const DRIFT: &str = "Drift";
    /// A ModelDeployment's shadow (`spec.shadow`) scores its share of the
    /// requests; `False` says why it does not.
    pub const SHADOWING: &str = "Shadowing";
}

/// Condition reasons.
pub mod reasons {
    /// Everything is as asked.
    pub const AS_EXPECTED: &str = "AsExpected";
    /// The spec fails a rule the schema cannot express; the message says which.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// An object this one refers to (Model, Secret) does not exist.
    pub const REFERENCE_NOT_FOUND: &str = "ReferenceNotFound";
    /// A Model has no Ready version yet.
    pub const NO_READY_VERSION: &str = "NoReadyVersion";
    /// Every version of a Model was rejected: none can serve until a new one
    /// is registered.
    pub const VERSIONS_REJECTED: &str = "VersionsRejected";
    /// The Job validating an artifact cannot start its pod: a Secret it
    /// reads is missing, its image cannot be pulled, ….
    pub const VALIDATION_BLOCKED: &str = "ValidationBlocked";
    /// An alias names a version that does not exist or is not Ready.
    pub const ALIAS_UNRESOLVED: &str = "AliasUnresolved";
    /// A training run is in progress.
    pub const TRAINING_IN_PROGRESS: &str = "TrainingInProgress";
    /// No training run is in progress.
    pub const IDLE: &str = "Idle";
    /// An ApiClient's `expires` has passed: none of its keys authenticates.
    pub const EXPIRED: &str = "Expired";
    /// An ApiClient's key Secret lacks a well-formed `id` or `sha256`.
    pub const INVALID_KEY_SECRET: &str = "InvalidKeySecret";
    /// An ApiClient's key Secret holds another key than the one approved
    /// under its current spec.
    pub const KEY_SECRET_CHANGED: &str = "KeySecretChanged";
    /// A TrainingJob is waiting for its Job or pods.
    pub const PENDING: &str = "Pending";
    /// A TrainingJob's trainer is running.
    pub const TRAINER_RUNNING: &str = "TrainerRunning";
    /// A TrainingJob's version was recorded.
    pub const VERSION_REGISTERED: &str = "VersionRegistered";
    /// The trainer finished; its artifact is validated by a Job in the
    /// namespace before it is recorded.
    pub const VALIDATING: &str = "ValidatingArtifact";
    /// A trainer exited with a non-zero code more often than `backoffLimit`
    /// allows.
    pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
    /// A run outlived `activeDeadlineSeconds`.
    pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
    /// The trainer image could not be pulled or started.
    pub const IMAGE_UNAVAILABLE: &str = "ImageUnavailable";
    /// The data set could not be found or read.
    pub const DATASET_UNAVAILABLE: &str = "DatasetUnavailable";
    /// The champion meets its gates on the newest labelled data.
    pub const WITHIN_GATES: &str = "WithinGates";
    /// The champion no longer meets a gate on the newest labelled data.
    pub const BELOW_GATE: &str = "BelowGate";
    /// No evaluation has finished yet.
    pub const NOT_EVALUATED: &str = "NotEvaluated";
    /// A version passed its gates and waits for its backtest against the
    /// holder of the alias.
    pub const BACKTESTING: &str = "Backtesting";
    /// A version lost its backtest against the holder of the alias.
    pub const BACKTEST_LOST: &str = "BacktestLost";
    /// A version passed its gates and, as the challenger, waits for its
    /// shadow trial beside the holder of the alias.
    pub const SHADOW_TRIAL: &str = "ShadowTrial";
    /// A version's shadow trial fell short of the agreement asked.
    pub const SHADOW_TRIAL_LOST: &str = "ShadowTrialLost";
    /// A ScoringJob's output location cannot be opened or written.
    pub const OUTPUT_UNAVAILABLE: &str = "OutputUnavailable";
    /// A ScoringJob's shards are scoring.
    pub const SCORING: &str = "Scoring";
    /// A ScoringJob's shards finished; its report is being made.
    pub const REPORTING: &str = "Reporting";
    /// A ScoringJob's report is in its status.
    pub const REPORTED: &str = "Reported";
    /// The artifact is missing, does not load, or does not run.
    pub const ARTIFACT_INVALID: &str = "ArtifactInvalid";
    /// A rollout is replacing replicas.
    pub const ROLLING_OUT: &str = "RollingOut";
    /// A canary is being analysed.
    pub const CANARY_ANALYSIS: &str = "CanaryAnalysis";
    /// A canary failed its analysis and was rolled back.
    pub const CANARY_ROLLED_BACK: &str = "CanaryRolledBack";
    /// A replica is being migrated away from an unhealthy pod or node.
    pub const MIGRATING: &str = "Migrating";
    /// A replica crossed a health threshold.
    pub const REPLICA_UNHEALTHY: &str = "ReplicaUnhealthy";
    /// A version failed its promotion gates.
    pub const GATES_FAILED: &str = "GatesFailed";
    /// A version passed its gates but does not beat the champion: it
    /// becomes the challenger.
    pub const NOT_BETTER_THAN_CHAMPION: &str = "NotBetterThanChampion";
    /// A version passed its gates; promotion is Manual.
    pub const AWAITING_MANUAL_PROMOTION: &str = "AwaitingManualPromotion";
    /// The trainer's Job was deleted before the run finished.
    pub const JOB_DELETED: &str = "JobDeleted";
    /// The resolved version's inputs differ from the serving one's: it is
    /// not rolled out until the callers are updated.
    pub const SIGNATURE_CHANGED: &str = "SignatureChanged";
    /// An ensemble member cannot be served with the others (its inputs or
    /// its combined output do not match theirs, or it reads its artifact
    /// with another Secret); the last good combination keeps serving.
    pub const MEMBER_INCOMPATIBLE: &str = "MemberIncompatible";
    /// The shadow scores its share of the requests beside the served
    /// version.
    pub const SHADOWING: &str = "Shadowing";
    /// The shadow cannot run: its alias or version does not resolve, or it
    /// takes other inputs than the served version.
    pub const SHADOW_UNAVAILABLE: &str = "ShadowUnavailable";
    /// Fewer replicas are ready than wanted.
    pub const REPLICAS_UNAVAILABLE: &str = "ReplicasUnavailable";
    /// Callers are authenticated, authorised by RBAC and audited.
    pub const ENFORCED: &str = "Enforced";
    /// `security.mode: Insecure`: anyone who reaches the Service may call.
    pub const INSECURE: &str = "Insecure";
    /// A replica's audit trail lost or changed records since the operator
    /// last read its checkpoint.
    pub const AUDIT_TRAIL_BROKEN: &str = "AuditTrailBroken";
    /// A replica's server could not record some calls in its audit trail.
    pub const AUDIT_WRITE_FAILING: &str = "AuditWriteFailing";
    /// An Enforced ModelDeployment's audit key Secret was not made by the
    /// operator for it (someone created it first): whoever did knows the key.
    pub const AUDIT_KEY_FOREIGN: &str = "AuditKeyForeign";
    /// The audit key service refused a pod its keys (a Warning Event on the
    /// ModelDeployment naming the pod and why).
    pub const AUDIT_KEYS_REFUSED: &str = "AuditKeysRefused";
    /// A ModelApproval counted for a promotion.
    pub const COUNTED: &str = "Counted";
    /// The version a Model follows (`spec.source.promotedFrom`) is recorded.
    pub const PROMOTED: &str = "Promoted";
    /// The Model a Model follows does not exist, or names no Ready version.
    pub const SOURCE_NOT_FOUND: &str = "SourceNotFound";
    /// The version followed lacks evidence from an environment that
    /// `promotion.requires.evidenceFrom` names.
    pub const EVIDENCE_MISSING: &str = "EvidenceMissing";
    /// The version followed waits for `promotion.requires.approvals`.
    pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
    /// An approval came from the user who asked for the version's training
    /// or for its promotion; it does not count.
    pub const SAME_IDENTITY: &str = "SameIdentity";
    /// Approvals are required but who asked for the training or the
    /// promotion is not known (no `aimass.io/requested-by`).
    pub const REQUESTER_UNKNOWN: &str = "RequesterUnknown";
    /// The artifact's digest is not the one proven and approved.
    pub const DIGEST_MISMATCH: &str = "DigestMismatch";
    /// The version served now is still soaking under `spec.evidence`.
    pub const SOAKING: &str = "Soaking";
    /// No version of the Model is served, or `spec.evidence` is not set.
    pub const NOT_SERVED: &str = "NotServed";
    /// A stability index is at the action level.
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    /// Every stability index is below the action level (or back below the
    /// warning level after drift).
    pub const NO_DRIFT: &str = "NoDrift";
    /// Too few rows were scored in the window to judge drift.
    pub const INSUFFICIENT_DATA: &str = "InsufficientData";
    /// The version served has no baseline to compare with.
    pub const NO_BASELINE: &str = "NoBaseline";
}
