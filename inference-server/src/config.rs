//! Command-line and environment configuration of the inference server.

use std::net::IpAddr;

use clap::{Parser, ValueEnum};
use serde::Deserialize;

/// Who may call the model.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum AuthMode {
    /// Anyone who can reach the port. Only when asked for explicitly.
    None,
    /// Bearer tokens validated by TokenReview, each call authorised by a
    /// SubjectAccessReview (`create models/infer`, `get models`).
    Kubernetes,
}

/// How an ensemble's members' answers combine.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Combine {
    /// Σ weight × the output (weights summing to 1 make a weighted average).
    WeightedSum,
    /// The largest value of each element: highest risk wins.
    Maximum,
    /// The label most members voted for (weights count as votes).
    Vote,
    /// A meta-model (`--meta`) decides from the members' scores.
    Stack,
}

impl From<Combine> for aimass_engine::ensemble::Rule {
    fn from(combine: Combine) -> Self {
        match combine {
            Combine::WeightedSum => Self::WeightedSum,
            Combine::Maximum => Self::Maximum,
            Combine::Vote => Self::Vote,
            Combine::Stack => Self::Stack,
        }
    }
}

/// An ensemble as one document: what `--ensemble` (the operator's
/// `AIMASS_ENSEMBLE`) holds, and what the `--member` flags add up to.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnsemblePlan {
    /// How the answers combine.
    pub combine: Combine,
    /// The output combined.
    #[serde(default = "default_output")]
    pub output: String,
    /// The members, in order.
    pub members: Vec<PlannedMember>,
    /// The meta-model of `stack` (its name is ignored).
    #[serde(default)]
    pub meta: Option<PlannedMember>,
}

/// One member of an [`EnsemblePlan`].
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlannedMember {
    /// Its name: a lower-case DNS label.
    pub name: String,
    /// Where its ONNX artifact is.
    pub uri: String,
    /// Its weight (1 when not given).
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// The artifact's expected sha256.
    #[serde(default)]
    pub sha256: Option<String>,
}

fn default_output() -> String {
    "probabilities".to_owned()
}

fn default_weight() -> f64 {
    1.0
}

/// `--ensemble`: a JSON [`EnsemblePlan`] whose members are named by DNS
/// labels.
fn plan(json: &str) -> Result<EnsemblePlan, String> {
    let plan: EnsemblePlan =
        serde_json::from_str(json).map_err(|e| format!("not an ensemble: {e}"))?;
    if let Some(m) = plan.members.iter().find(|m| !dns_label(&m.name)) {
        return Err(format!(
            "{:?} must be a lower-case DNS label (letters, digits and '-')",
            m.name
        ));
    }
    Ok(plan)
}

/// A lower-case DNS label: at most 63 letters, digits and '-', starting
/// with a letter.
fn dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `NAME=VALUE`, NAME a lower-case DNS label.
fn named<T: std::str::FromStr>(arg: &str) -> Result<(String, T), String>
where
    T::Err: std::fmt::Display,
{
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?} is not NAME=VALUE"))?;
    if !dns_label(name) {
        return Err(format!(
            "{name:?} must be a lower-case DNS label (letters, digits and '-')"
        ));
    }
    let value = value
        .parse()
        .map_err(|e| format!("{name}'s value {value:?}: {e}"))?;
    Ok((name.to_owned(), value))
}

/// What a failed audit write does to the call.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum AuditFailurePolicy {
    /// Refuse the call with 503: no unrecorded model call.
    FailClosed,
    /// Answer the call, count the failure in `aimass_audit_write_failures_total`.
    FailOpen,
}

/// Serves one ONNX model over the Open Inference Protocol v2 (the REST API of
/// KServe and Triton), with dynamic batching and Prometheus metrics.
///
/// The model is loaded, optimised and warmed up once at start; the server
/// reports ready only after that. SIGTERM makes it unready at once, finishes
/// the requests it holds (up to --drain-timeout) and exits.
#[derive(Debug, Parser)]
#[command(name = "aimass-inference-server", version, about, long_about)]
pub struct Config {
    /// Where the ONNX model is: a local path, file://, http(s)://, s3://,
    /// gs:// or az://. Object-store credentials and endpoints come from the
    /// usual environment variables (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL,
    /// GOOGLE_SERVICE_ACCOUNT_KEY, AZURE_STORAGE_ACCOUNT_NAME, …).
    #[arg(long, env = "AIMASS_MODEL_URI", required_unless_present_any = ["members", "ensemble"])]
    pub model_uri: Option<String>,

    /// Serve an ensemble instead of one model: a member as NAME=URI
    /// (repeat, at least two; NAME a lower-case DNS label). Every member
    /// runs over each request, side by side, and their answers are combined
    /// by `--combine`; each member's own outputs follow the combined one,
    /// named `NAME.OUTPUT`. Replaces `--model-uri`.
    #[arg(long = "member", conflicts_with = "model_uri", requires = "combine", value_parser = named::<String>)]
    pub members: Vec<(String, String)>,

    /// A member's weight in `weighted-sum` and `vote`, NAME=WEIGHT (1 when
    /// not given).
    #[arg(long = "member-weight", requires = "members", value_parser = named::<f64>)]
    pub member_weights: Vec<(String, f64)>,

    /// A member's expected sha256, NAME=HEX; start-up fails on a mismatch.
    #[arg(long = "member-sha256", requires = "members", value_parser = named::<String>)]
    pub member_sha256: Vec<(String, String)>,

    /// An ensemble as one JSON document, as the operator passes it:
    /// `{"combine": "weighted-sum", "output": "probabilities", "members":
    /// [{"name": "gbdt", "uri": "s3://…", "weight": 0.7, "sha256": "…"}]}`.
    /// Instead of `--member`, `--member-weight`, `--member-sha256`,
    /// `--combine` and `--combine-output`.
    #[arg(long, env = "AIMASS_ENSEMBLE", conflicts_with_all = ["model_uri", "members"], value_parser = plan)]
    pub ensemble: Option<EnsemblePlan>,

    /// How an ensemble's answers combine.
    #[arg(long, value_enum, requires = "members")]
    pub combine: Option<Combine>,

    /// The meta-model of `--combine stack`: it takes one input, each
    /// member's score (the last column of `--combine-output`) side by side,
    /// `[rows, members]`, and its outputs are the ensemble's.
    #[arg(long, requires = "members")]
    pub meta: Option<String>,

    /// The meta-model's expected sha256.
    #[arg(long, requires = "meta")]
    pub meta_sha256: Option<String>,

    /// The output an ensemble's answers combine (every member must return
    /// it, with the same type and shape).
    #[arg(long, default_value = "probabilities")]
    pub combine_output: String,

    /// A shadow: another version's artifact, scored beside the served model
    /// on `--shadow-percent` of the requests after the answer is made, on a
    /// thread of its own; its answers are compared with the served ones
    /// (`aimass_shadow_*` metrics) and never returned.
    #[arg(long, env = "AIMASS_SHADOW_URI", conflicts_with_all = ["members", "ensemble"])]
    pub shadow_uri: Option<String>,

    /// The shadow artifact's expected sha256.
    #[arg(long, env = "AIMASS_SHADOW_SHA256", requires = "shadow_uri")]
    pub shadow_sha256: Option<String>,

    /// The shadow's version number, for `aimass_shadow_version`.
    #[arg(long, env = "AIMASS_SHADOW_VERSION", default_value = "0")]
    pub shadow_version: String,

    /// The share of requests the shadow scores, in percent (1 to 100).
    #[arg(long, env = "AIMASS_SHADOW_PERCENT", default_value_t = 10, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub shadow_percent: u8,

    /// Name the model is served under: /v2/models/{name}.
    #[arg(long, env = "AIMASS_MODEL_NAME")]
    pub model_name: String,

    /// Version the model is served under: /v2/models/{name}/versions/{version}.
    #[arg(long, env = "AIMASS_MODEL_VERSION", default_value = "1")]
    pub model_version: String,

    /// Expected sha256 of the model file (64 hex digits); start-up fails on a
    /// mismatch.
    #[arg(long, env = "AIMASS_MODEL_SHA256")]
    pub model_sha256: Option<String>,

    /// The version's training baseline (`baseline.json`): each scored row's
    /// features and scores are counted into its bins, for drift (`GET
    /// /drift` on the admin port). Without it nothing is counted.
    #[arg(long, env = "AIMASS_BASELINE_URI")]
    pub baseline_uri: Option<String>,

    /// Expected sha256 of the baseline; start-up fails on a mismatch.
    #[arg(long, env = "AIMASS_BASELINE_SHA256")]
    pub baseline_sha256: Option<String>,

    /// `FEATURE=Reject` answers 400 to a request with a value of FEATURE
    /// outside what training saw (below the baseline's min, above its max,
    /// or an unknown category); `FEATURE=Flag` scores it and counts it in
    /// `aimass_input_out_of_contract_total`. Repeat, or separate with commas.
    #[arg(
        long = "feature-rule",
        env = "AIMASS_FEATURE_RULES",
        value_delimiter = ','
    )]
    pub feature_rules: Vec<crate::drift::FeatureRule>,

    /// With `--validate-only`, when no `baseline.json` sits beside the
    /// model: compute it from this plan's data set (JSON, the operator's
    /// `BaselinePlan`) and write it there.
    #[arg(long, env = aimass_crds::scoring::BASELINE_PLAN_ENV, hide = true)]
    pub baseline_plan: Option<String>,

    /// Only validate the model: fetch it, load it, run a warm-up inference,
    /// print one `{"aimassValidation": ...}` line on stdout and exit. The
    /// operator runs this in a Job in the tenant's namespace, so it never
    /// handles a tenant's artifact itself.
    #[arg(long, env = "AIMASS_VALIDATE_ONLY", default_value_t = false)]
    pub validate_only: bool,

    /// With --validate-only: the largest artifact read, in bytes; a larger
    /// (or endless) one is refused.
    #[arg(long, env = "AIMASS_MAX_MODEL_BYTES", default_value_t = 1 << 30)]
    pub max_model_bytes: usize,

    /// Address to listen on.
    #[arg(long, env = "AIMASS_LISTEN_ADDRESS", default_value = "0.0.0.0")]
    pub address: IpAddr,

    /// Port of the inference API.
    #[arg(long, env = "AIMASS_PORT", default_value_t = 8080)]
    pub port: u16,

    /// Port of the OIP gRPC API (`inference.GRPCInferenceService`), behind
    /// the same authentication, authorisation, rate limits, audit, TLS and
    /// batching as --port; not served when unset.
    #[arg(long, env = "AIMASS_GRPC_PORT")]
    pub grpc_port: Option<u16>,

    /// Port of the probes (/v2/health/live, /v2/health/ready) and /metrics,
    /// which then are no longer served on --port. Required with --auth
    /// kubernetes, so that probes and scrapes need no credentials.
    #[arg(long, env = "AIMASS_ADMIN_PORT")]
    pub admin_port: Option<u16>,

    /// Serve the API over TLS with this certificate chain (PEM); needs
    /// --tls-key-file.
    #[arg(long, env = "AIMASS_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<std::path::PathBuf>,

    /// The TLS private key (PEM).
    #[arg(long, env = "AIMASS_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<std::path::PathBuf>,

    /// CA certificates (PEM) of partner institutions: a client certificate
    /// that chains to one authenticates as `partner:<--client-ca-name>:<CN>`
    /// with groups `partner:<--client-ca-name>:<O>`; a `system:` CN is
    /// refused. Needs TLS.
    #[arg(long, env = "AIMASS_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub client_ca_file: Option<std::path::PathBuf>,

    /// Revocation lists (PEM) of that CA; a revoked certificate cannot
    /// connect. Repeatable.
    #[arg(long, env = "AIMASS_CLIENT_CRL_FILE", requires = "client_ca_file")]
    pub client_crl_file: Vec<std::path::PathBuf>,

    /// The partner CA's name in its certificates' identities (the operator
    /// passes the name of the CA Secret).
    #[arg(long, env = "AIMASS_CLIENT_CA_NAME", default_value = "partner-ca")]
    pub client_ca_name: String,

    /// Who may call the model.
    #[arg(long, env = "AIMASS_AUTH", value_enum, default_value_t = AuthMode::None)]
    pub auth: AuthMode,

    /// The audience bearer tokens must be bound to.
    #[arg(long, env = "AIMASS_AUTH_AUDIENCE", default_value = "aimass")]
    pub auth_audience: String,

    /// Accept the API keys of the ApiClients in --namespace too (with
    /// --auth kubernetes), following them with a watch: a removed key stops
    /// working without a restart. Needs get, list and watch on apiclients
    /// in that namespace.
    #[arg(long, env = "AIMASS_API_CLIENTS", default_value_t = false, action = clap::ArgAction::Set)]
    pub api_clients: bool,

    /// Longest a TokenReview or SubjectAccessReview may take, in
    /// milliseconds; then the call is refused with 503.
    #[arg(long, env = "AIMASS_AUTH_TIMEOUT_MILLIS", default_value_t = 2000)]
    pub auth_timeout_millis: u64,

    /// Namespace of the ModelDeployment: where SubjectAccessReviews ask
    /// about the model, and what audit records name.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,

    /// This pod's name, for audit records.
    #[arg(long, env = "POD_NAME", default_value = "")]
    pub pod_name: String,

    /// This pod's node, for audit records.
    #[arg(long, env = "NODE_NAME", default_value = "")]
    pub node_name: String,

    /// Calls per second each caller may make (with --auth kubernetes);
    /// beyond, 429 with Retry-After. Unlimited when absent.
    #[arg(long, env = "AIMASS_RATE_LIMIT_PER_SECOND", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_second: Option<u32>,

    /// Burst above the rate a caller may make; defaults to one second's worth.
    #[arg(long, env = "AIMASS_RATE_LIMIT_BURST", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: Option<u32>,

    /// Calls per second each source address may make (with --auth
    /// kubernetes), checked before authentication; bursts of one second's
    /// worth. Off when absent: behind a proxy every caller shares its address.
    #[arg(long, env = "AIMASS_RATE_LIMIT_PER_ADDRESS_PER_SECOND", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_address_per_second: Option<u32>,

    /// File the audit trail of calls is appended to (one HMAC-chained JSON
    /// line per call, accepted or refused). Needs --audit-key-file or
    /// --audit-key-service.
    #[arg(long, env = "AIMASS_AUDIT_LOG")]
    pub audit_log: Option<std::path::PathBuf>,

    /// File holding the audit chain's key (at least 32 bytes), for a server
    /// run by hand.
    #[arg(
        long,
        env = "AIMASS_AUDIT_KEY_FILE",
        conflicts_with = "audit_key_service"
    )]
    pub audit_key_file: Option<std::path::PathBuf>,

    /// The operator's audit key service (`http://host:port`): at start the
    /// server asks it for the chain key and the signing key, sealed to this
    /// request, and waits until it answers. How the operator starts its
    /// servers, so no Secret of the namespace holds the keys.
    #[arg(
        long,
        env = "AIMASS_AUDIT_KEY_SERVICE",
        requires_all = ["audit_log", "audit_key_service_public_key"]
    )]
    pub audit_key_service: Option<String>,

    /// The key service's X25519 public key (base64), which the answer must
    /// be sealed with.
    #[arg(long, env = "AIMASS_AUDIT_KEY_SERVICE_PUBLIC_KEY")]
    pub audit_key_service_public_key: Option<String>,

    /// The pod's ServiceAccount token for the key service (audience
    /// `aimass-audit-keys`, bound to the pod), typically a projected volume.
    #[arg(
        long,
        env = "AIMASS_AUDIT_KEY_SERVICE_TOKEN_FILE",
        default_value = "/var/run/secrets/aimass/audit-keys/token"
    )]
    pub audit_key_service_token_file: std::path::PathBuf,

    /// File holding the 32-byte Ed25519 seed that signs the checkpoints
    /// handed out on the admin port (`GET /audit/checkpoint`), typically in
    /// the audit key's Secret. A missing file means unsigned checkpoints
    /// (said in the log): Secrets made before seals existed lack it.
    #[arg(long, env = "AIMASS_AUDIT_SIGNING_KEY_FILE", requires = "audit_log")]
    pub audit_signing_key_file: Option<std::path::PathBuf>,

    /// Where to ship the audit trail so it outlives the pod: a prefix
    /// (`s3://`, `gs://`, `az://` or `file://`) under which each pod's
    /// records land as `<namespace>/<model>/<pod>/<first>-<last>.jsonl`.
    /// Object store settings come from variables named
    /// `AIMASS_AUDIT_ARCHIVE_<usual name>` (e.g.
    /// `AIMASS_AUDIT_ARCHIVE_AWS_ACCESS_KEY_ID`), else the usual ones.
    #[arg(long, env = "AIMASS_AUDIT_ARCHIVE", requires = "audit_log")]
    pub audit_archive: Option<String>,

    /// Seconds between shipments to the archive (one more at shutdown).
    #[arg(long, env = "AIMASS_AUDIT_ARCHIVE_INTERVAL_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub audit_archive_interval_seconds: u64,

    /// With --audit-archive: bytes after which the trail file is rotated
    /// into a segment (`calls.<first sequence>.jsonl`); archived segments
    /// are then removed from the pod, all but the newest, so the trail's
    /// volume stays bounded.
    #[arg(long, env = "AIMASS_AUDIT_SEGMENT_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(4096..))]
    pub audit_segment_bytes: u64,

    /// Which input values audit records keep, as JSON:
    /// `[{"input": "card", "policy": "Keep"}, {"input": "amount", "policy":
    /// "Bucket", "buckets": [10, 100]}, {"input": "merchant", "policy":
    /// "Hash"}]`. Inputs not named keep no values. Card numbers are masked.
    #[arg(long, env = "AIMASS_AUDIT_PAYLOAD")]
    pub audit_payload: Option<String>,

    /// What a failed audit write does to the call.
    #[arg(long, env = "AIMASS_AUDIT_FAILURE_POLICY", value_enum, default_value_t = AuditFailurePolicy::FailClosed)]
    pub audit_failure_policy: AuditFailurePolicy,

    /// Most rows merged into one model run. 1 turns batching off.
    #[arg(long, env = "AIMASS_MAX_BATCH_SIZE", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_batch_size: u32,

    /// Longest a request waits for others to join its batch, in
    /// microseconds. 0 (the default): a free worker runs a request at once,
    /// with whatever else queued while the workers were busy (continuous
    /// batching), so a lone caller never waits; more only pays for engines
    /// whose cost per run dwarfs the wait.
    #[arg(long, env = "AIMASS_MAX_QUEUE_DELAY_MICROS", default_value_t = 0)]
    pub max_queue_delay: u64,

    /// Requests that may wait for the model; when full, requests are refused
    /// at once with 429.
    #[arg(long, env = "AIMASS_QUEUE_CAPACITY", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub queue_capacity: u32,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "AIMASS_MAX_REQUEST_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_request_bytes: usize,

    /// Bytes of request bodies the server holds at once (at least
    /// --max-request-bytes); a body that does not fit is refused with 429.
    #[arg(long, env = "AIMASS_MAX_BODY_BYTES_IN_FLIGHT", default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes_in_flight: usize,

    /// Longest reading a request's body may take, in milliseconds; then it is
    /// answered with 408 and the connection closed.
    #[arg(
        long,
        env = "AIMASS_BODY_READ_TIMEOUT_MILLIS",
        default_value_t = 10_000
    )]
    pub body_read_timeout_millis: u64,

    /// Longest a request's head (request line and headers) may take to
    /// arrive, in milliseconds, from its first byte or, on a new
    /// connection, from the connection's start; then the connection is
    /// closed.
    #[arg(
        long,
        env = "AIMASS_HEADER_READ_TIMEOUT_MILLIS",
        default_value_t = 5_000
    )]
    pub header_read_timeout_millis: u64,

    /// Longest a keep-alive connection may wait for its next request, in
    /// seconds. Longer than the usual proxies' upstream idle timeouts (60 s),
    /// so they close first.
    #[arg(long, env = "AIMASS_IDLE_TIMEOUT_SECONDS", default_value_t = 75)]
    pub idle_timeout_seconds: u64,

    /// Longest a connection may live, in seconds; it then ends after its
    /// current request, and the client reconnects (to any replica).
    #[arg(long, env = "AIMASS_MAX_CONNECTION_AGE_SECONDS", default_value_t = 600)]
    pub max_connection_age_seconds: u64,

    /// Most open connections on each port; more are closed as soon as they
    /// are accepted. The API port's cap never closes the admin port's.
    #[arg(long, env = "AIMASS_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Longest a request may take, queueing included, in milliseconds; then
    /// it is answered with 504.
    #[arg(long, env = "AIMASS_REQUEST_TIMEOUT_MILLIS", default_value_t = 10_000)]
    pub request_timeout_millis: u64,

    /// Longest the server spends finishing requests after SIGTERM, in seconds.
    #[arg(long, env = "AIMASS_DRAIN_TIMEOUT_SECONDS", default_value_t = 20)]
    pub drain_timeout_seconds: u64,

    /// A request the model answers within this many microseconds (its cost
    /// per row, measured at load, times its rows) runs on the thread that
    /// decoded it rather than on an inference thread, saving the hand-off
    /// (only with --max-queue-delay 0). 0 turns this off.
    #[arg(long, env = "AIMASS_INLINE_BELOW_MICROS", default_value_t = 50)]
    pub inline_below_micros: u64,

    /// Threads running the model. Default: the number of CPUs.
    #[arg(long, env = "AIMASS_INFERENCE_THREADS")]
    pub inference_threads: Option<usize>,

    /// For rehearsals only: answer every Nth inference request with a 500
    /// error, to test canary rollbacks and error-rate alerts against a real
    /// server. Off by default.
    #[arg(long, env = "AIMASS_FAULT_ERROR_EVERY")]
    pub fault_error_every: Option<u64>,

    /// For rehearsals only: hold every inference request this many
    /// milliseconds before running it, to make a replica slow (autoscaling
    /// and migration tests, latency alerts). 0, the default, adds nothing.
    #[arg(long, env = "AIMASS_FAULT_LATENCY_MILLIS", default_value_t = 0)]
    pub fault_latency_millis: u64,

    /// For rehearsals only: arm a delay of this many milliseconds that
    /// SIGUSR1 switches on (and off again), to make one replica of many
    /// slow at run time. 0, the default, arms nothing.
    #[arg(
        long,
        env = "AIMASS_FAULT_LATENCY_ON_SIGNAL_MILLIS",
        default_value_t = 0
    )]
    pub fault_latency_on_signal_millis: u64,

    /// Logging.
    #[command(flatten)]
    pub logging: aimass_telemetry::Logging,
}

impl Config {
    /// The ensemble to serve, from `--ensemble` or the `--member` flags;
    /// `None` for one model. An error names what does not add up.
    pub fn ensemble_plan(&self) -> Result<Option<EnsemblePlan>, String> {
        if let Some(plan) = &self.ensemble {
            return Ok(Some(plan.clone()));
        }
        if self.members.is_empty() {
            return Ok(None);
        }
        let known = |name: &String| self.members.iter().any(|(m, _)| m == name);
        let named = self.member_weights.iter().map(|(n, _)| n);
        if let Some(stranger) = named
            .chain(self.member_sha256.iter().map(|(n, _)| n))
            .find(|n| !known(n))
        {
            return Err(format!(
                "--member-weight or --member-sha256 names {stranger}, which is not a --member"
            ));
        }
        let combine = self.combine.ok_or("an ensemble needs --combine")?;
        let members = self
            .members
            .iter()
            .map(|(name, uri)| PlannedMember {
                name: name.clone(),
                uri: uri.clone(),
                weight: self
                    .member_weights
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(1.0, |(_, w)| *w),
                sha256: self
                    .member_sha256
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, s)| s.clone()),
            })
            .collect();
        Ok(Some(EnsemblePlan {
            combine,
            output: self.combine_output.clone(),
            members,
            meta: self.meta.as_ref().map(|uri| PlannedMember {
                name: "meta".into(),
                uri: uri.clone(),
                weight: 1.0,
                sha256: self.meta_sha256.clone(),
            }),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn parses_the_flags_the_operator_sets() {
        let config = Config::try_parse_from([
            "aimass-inference-server",
            "--model-uri",
            "s3://models/fraud/3/model.onnx",
            "--model-name",
            "fraud",
            "--model-version",
            "3",
            "--max-batch-size",
            "64",
            "--max-queue-delay",
            "0",
        ])
        .expect("parses");
        assert_eq!(config.model_version, "3");
        assert_eq!(config.max_batch_size, 64);
        assert_eq!(config.max_queue_delay, 0);
        assert_eq!(config.port, 8080);
    }

    #[test]
    fn an_ensemble_is_named_members_combined_by_a_rule() {
        let config = Config::try_parse_from([
            "aimass-inference-server",
            "--member",
            "gbdt=s3://models/gbdt/3/model.onnx",
            "--member",
            "mlp=s3://models/mlp/1/model.onnx",
            "--member-weight",
            "gbdt=0.7",
            "--member-weight",
            "mlp=0.3",
            "--combine",
            "weighted-sum",
            "--model-name",
            "fraud-blend",
        ])
        .expect("parses");
        assert_eq!(config.model_uri, None);
        assert_eq!(
            config.members[1],
            ("mlp".into(), "s3://models/mlp/1/model.onnx".into())
        );
        assert_eq!(
            config.member_weights,
            [("gbdt".into(), 0.7), ("mlp".into(), 0.3)]
        );
        assert_eq!(config.combine, Some(Combine::WeightedSum));
        assert_eq!(config.combine_output, "probabilities");
        for (bad, why) in [
            (
                vec![
                    "--member",
                    "gbdt=m.onnx",
                    "--model-uri",
                    "m.onnx",
                    "--combine",
                    "vote",
                ],
                "cannot be used with",
            ),
            (vec!["--member", "gbdt=m.onnx"], "--combine"),
            (
                vec!["--member", "GBDT=m.onnx", "--combine", "vote"],
                "lower-case DNS label",
            ),
            (
                vec!["--member", "gbdt", "--combine", "vote"],
                "not NAME=VALUE",
            ),
            (
                vec![
                    "--member",
                    "gbdt=m.onnx",
                    "--member-weight",
                    "gbdt=heavy",
                    "--combine",
                    "vote",
                ],
                "gbdt's value",
            ),
            (vec![], "--model-uri"),
        ] {
            let mut args = vec!["aimass-inference-server", "--model-name", "m"];
            args.extend(bad);
            let err = Config::try_parse_from(&args).expect_err("refused");
            assert!(err.to_string().contains(why), "{args:?}: {err}");
        }
    }

    #[test]
    fn the_operators_ensemble_document_is_the_flags_plan() {
        let flags = Config::try_parse_from([
            "aimass-inference-server",
            "--model-name",
            "blend",
            "--member",
            "gbdt=s3://m/gbdt,v3/model.onnx",
            "--member",
            "mlp=file:///m/mlp.onnx",
            "--member-weight",
            "gbdt=0.7",
            "--member-sha256",
            "mlp=ab",
            "--combine",
            "maximum",
        ])
        .expect("parses");
        let document = r#"{"combine": "maximum", "members": [
            {"name": "gbdt", "uri": "s3://m/gbdt,v3/model.onnx", "weight": 0.7},
            {"name": "mlp", "uri": "file:///m/mlp.onnx", "sha256": "ab"}]}"#;
        let json = Config::try_parse_from([
            "aimass-inference-server",
            "--model-name",
            "blend",
            "--ensemble",
            document,
        ])
        .expect("parses");
        let plan = json.ensemble_plan().expect("a plan").expect("an ensemble");
        assert_eq!(flags.ensemble_plan(), Ok(Some(plan.clone())));
        assert_eq!(plan.output, "probabilities");
        assert_eq!(plan.members[1].weight, 1.0);
        for (bad, why) in [
            (
                r#"{"combine": "average", "members": []}"#,
                "not an ensemble",
            ),
            (
                r#"{"combine": "vote", "members": [{"name": "Gbdt", "uri": "m"}]}"#,
                "lower-case DNS label",
            ),
            (
                r#"{"combine": "vote", "members": [], "extra": 1}"#,
                "unknown field",
            ),
        ] {
            let err = Config::try_parse_from([
                "aimass-inference-server",
                "--model-name",
                "m",
                "--ensemble",
                bad,
            ])
            .expect_err("refused");
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
        let both = Config::try_parse_from([
            "aimass-inference-server",
            "--model-name",
            "m",
            "--model-uri",
            "m.onnx",
            "--ensemble",
            document,
        ]);
        assert!(both.is_err(), "one model or an ensemble");
        let strangers = Config::try_parse_from([
            "aimass-inference-server",
            "--model-name",
            "m",
            "--member",
            "gbdt=m.onnx",
            "--member-weight",
            "mlp=2",
            "--combine",
            "vote",
        ])
        .expect("parses");
        assert!(
            strangers
                .ensemble_plan()
                .is_err_and(|e| e.contains("names mlp, which is not a --member"))
        );
        let stack = Config::try_parse_from([
            "aimass-inference-server",
            "--model-name",
            "m",
            "--member",
            "gbdt=g.onnx",
            "--member",
            "mlp=m.onnx",
            "--combine",
            "stack",
            "--meta",
            "meta.onnx",
            "--meta-sha256",
            "cd",
        ])
        .expect("parses");
        let meta = stack.ensemble_plan().ok().flatten().and_then(|p| p.meta);
        assert_eq!(
            meta.map(|m| (m.uri, m.sha256)),
            Some(("meta.onnx".to_owned(), Some("cd".to_owned())))
        );
        let json = r#"{"combine": "stack", "members": [], "meta": {"name": "meta", "uri": "meta.onnx", "sha256": null}}"#;
        let parsed = Config::try_parse_from([
            "aimass-inference-server",
            "--model-name",
            "m",
            "--ensemble",
            json,
        ])
        .expect("parses");
        assert_eq!(
            parsed
                .ensemble
                .and_then(|p| p.meta)
                .map(|m| m.uri)
                .as_deref(),
            Some("meta.onnx")
        );
    }

    #[test]
    fn refuses_a_zero_batch_size() {
        let err = Config::try_parse_from([
            "aimass-inference-server",
            "--model-uri",
            "m.onnx",
            "--model-name",
            "m",
            "--max-batch-size",
            "0",
        ])
        .expect_err("zero batch");
        assert!(err.to_string().contains("max-batch-size"), "{err}");
    }
}
