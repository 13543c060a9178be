//! What a training run's Job and pods say about it: pending, running,
//! completed, or failed and why. Pure, so every failure path has a test.

use aimass_crds::v1alpha1::conditions::reasons;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use aimass_crds::trainer::{self, Line};

/// How long a first failed image pull may last before the run fails: a
/// registry hiccup should not end a run, a missing image should.
const IMAGE_PULL_GRACE_SECONDS: i64 = 60;
/// Waiting reasons a kubelet reports for images it will not get.
const FATAL_IMAGE_REASONS: [&str; 3] =
    ["ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"];

/// The state of a run as its Job and pods show it.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    /// No trainer runs yet.
    Pending {
        /// Why, in a sentence.
        message: String,
    },
    /// A trainer runs.
    Running {
        /// When the Job started.
        started: Option<Time>,
        /// The pod whose output carries the run's progress (rank 0).
        pod: Option<String>,
    },
    /// Every worker finished successfully.
    Completed {
        /// When the Job started (a run shorter than a reconcile was never
        /// seen running).
        started: Option<Time>,
        /// When the Job completed.
        completed: Option<Time>,
        /// The pod whose output carries the run's progress (rank 0).
        pod: Option<String>,
    },
    /// The run failed.
    Failed(Failure),
}

/// Why a run failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// CamelCase reason.
    pub reason: String,
    /// A sentence for humans.
    pub message: String,
    /// The pod whose output tells more, if any.
    pub pod: Option<String>,
}

/// Reads the state of a run from its Job and the Job's pods at `now`.
pub fn observe(job: &Job, pods: &[Pod], now: &Time) -> Observed {
    let status = job.status.clone().unwrap_or_default();
    let condition = |type_: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == "True")
            .cloned()
    };
    if let Some(failed) = condition("Failed").or_else(|| condition("FailureTarget")) {
        return Observed::Failed(job_failure(
            failed.reason.as_deref().unwrap_or_default(),
            failed.message.as_deref().unwrap_or_default(),
            pods,
        ));
    }
    if condition("Complete").is_some() || condition("SuccessCriteriaMet").is_some() {
        return Observed::Completed {
            started: status.start_time,
            completed: status.completion_time.or_else(|| Some(now.clone())),
            pod: rank0(pods.iter()).and_then(|p| p.metadata.name.clone()),
        };
    }
    if let Some(failure) = image_failure(pods, now) {
        return Observed::Failed(failure);
    }
    match rank0(pods.iter().filter(|p| is_running(p))) {
        Some(pod) => Observed::Running {
            started: status.start_time,
            pod: pod.metadata.name.clone(),
        },
        None => Observed::Pending {
            message: pending_message(pods),
        },
    }
}

fn job_failure(reason: &str, message: &str, pods: &[Pod]) -> Failure {
    let failed = last_failed_container(pods);
    let pod = failed.map(|(pod, _)| pod.to_owned());
    let exit = failed.map(|(_, t)| {
        let mut text = format!("the trainer exited with code {}", t.exit_code);
        if let Some(message) = t
            .message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            text.push_str(&format!(": {}", last_lines(message, 3)));
        }
        text
    });
    let (reason, message) = match reason {
        "BackoffLimitExceeded" => (
            reasons::BACKOFF_LIMIT_EXCEEDED,
            format!(
                "{}; the Job gave up after its backoffLimit of retries",
                exit.unwrap_or_else(|| "the trainer failed".into())
            ),
        ),
        "DeadlineExceeded" => (
            reasons::DEADLINE_EXCEEDED,
            "the run was still active at activeDeadlineSeconds and was stopped".to_owned(),
        ),
        other => (
            other,
            exit.map_or_else(|| message.to_owned(), |e| format!("{e} ({message})")),
        ),
    };
    Failure {
        reason: reason.to_owned(),
        message,
        pod,
    }
}

/// Applies the trainer's own account of its failure (an `error` line in the
/// last lines it printed) and appends those lines to the message.
pub fn explain(mut failure: Failure, tail: &str) -> Failure {
    let lines: Vec<&str> = tail.lines().filter(|l| !l.trim().is_empty()).collect();
    let own = lines.iter().rev().find_map(|l| match trainer::parse(l) {
        Some(Line::Error { reason, message }) => Some((reason, message)),
        _ => None,
    });
    if let Some((reason, message)) = own {
        failure.message = format!("{message} ({})", failure.message);
        failure.reason = reason;
    } else if !lines.is_empty() && failure.reason != reasons::DEADLINE_EXCEEDED {
        let shown = lines[lines.len().saturating_sub(3)..]
            .iter()
            .map(|l| cut(l, SHOWN_LINE_CHARS))
            .collect::<Vec<_>>()
            .join(" | ");
        failure.message = format!("{}; last output: {shown}", failure.message);
    }
    failure
}

/// The most characters of one output line a failure message quotes.
const SHOWN_LINE_CHARS: usize = 200;

/// `line`, cut to `max` characters (marked with `…`).
fn cut(line: &str, max: usize) -> String {
    match line.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", line.get(..end).unwrap_or_default()),
        None => line.to_owned(),
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn last_failed_container(pods: &[Pod]) -> Option<(&str, &ContainerStateTerminated)> {
    pods.iter()
        .filter_map(|pod| {
            let name = pod.metadata.name.as_deref()?;
            let terminated = pod
                .status
                .as_ref()?
                .container_statuses
                .iter()
                .flatten()
                .find_map(|c| c.state.as_ref()?.terminated.as_ref())
                .filter(|t| t.exit_code != 0)?;
            Some((name, terminated))
        })
        .max_by_key(|(_, t)| t.finished_at.clone().map(|f| f.0))
}

fn image_failure(pods: &[Pod], now: &Time) -> Option<Failure> {
    pods.iter().find_map(|pod| {
        let status = pod.status.as_ref()?;
        let waiting = status
            .container_statuses
            .iter()
            .flatten()
            .find_map(|c| c.state.as_ref()?.waiting.clone())?;
        let reason = waiting.reason.as_deref()?;
        let waited = status
            .start_time
            .as_ref()
            .map_or(0, |s| now.0.as_second() - s.0.as_second());
        let fatal = FATAL_IMAGE_REASONS.contains(&reason)
            || (reason == "ErrImagePull" && waited >= IMAGE_PULL_GRACE_SECONDS);
        fatal.then(|| Failure {
            reason: reasons::IMAGE_UNAVAILABLE.to_owned(),
            message: format!(
                "the trainer image cannot be pulled ({reason}): {}",
                waiting.message.unwrap_or_default()
            ),
            pod: pod.metadata.name.clone(),
        })
    })
}

/// The pod of rank 0 among `pods`, or the first one.
fn rank0<'a>(pods: impl Iterator<Item = &'a Pod> + Clone) -> Option<&'a Pod> {
    pods.clone()
        .find(|p| completion_index(p).is_none_or(|i| i == "0"))
        .or_else(|| pods.clone().next())
}

fn is_running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        })
}

fn completion_index(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(super::job::COMPLETION_INDEX)
        .map(String::as_str)
}

fn pending_message(pods: &[Pod]) -> String {
    let waiting = pods.iter().find_map(|pod| {
        let status = pod.status.as_ref()?;
        if let Some(w) = status
            .container_statuses
            .iter()
            .flatten()
            .find_map(|c| c.state.as_ref()?.waiting.as_ref())
        {
            return Some(format!(
                "pod {} waits: {}",
                pod.metadata.name.as_deref().unwrap_or(""),
                w.reason.as_deref().unwrap_or("ContainerCreating")
            ));
        }
        status.conditions.iter().flatten().find_map(|c| {
            (c.type_ == "PodScheduled" && c.status == "False").then(|| {
                format!(
                    "the trainer pod is not scheduled: {}",
                    c.message.as_deref().unwrap_or("")
                )
            })
        })
    });
    waiting.unwrap_or_else(|| "waiting for the trainer pod to start".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).unwrap())
    }

    fn job(conditions: &str) -> Job {
        serde_json::from_str(&format!(
            r#"{{"metadata": {{"name": "j"}}, "status": {{"startTime": "2026-01-01T00:00:00Z", "conditions": {conditions}}}}}"#
        ))
        .unwrap()
    }

    fn pod(name: &str, state: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "annotations": {COMPLETION_INDEX_KEY: "0"}},
            "status": {"startTime": "1970-01-01T00:00:00Z", "containerStatuses": [{
                "name": "trainer", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0, "state": state
            }]}
        }))
        .unwrap()
    }

    const COMPLETION_INDEX_KEY: &str = super::super::job::COMPLETION_INDEX;

    #[test]
    fn a_running_trainer_is_running_and_names_rank_0() {
        let pods = [pod("j-abc", serde_json::json!({"running": {}}))];
        match observe(&job("[]"), &pods, &at(5)) {
            Observed::Running { pod, started } => {
                assert_eq!(pod.as_deref(), Some("j-abc"));
                assert!(started.is_some());
            }
            other => panic!("{other:?}"),
        }
        let waiting = [pod(
            "j-abc",
            serde_json::json!({"waiting": {"reason": "ContainerCreating"}}),
        )];
        assert!(
            matches!(observe(&job("[]"), &waiting, &at(5)), Observed::Pending { message } if message.contains("ContainerCreating"))
        );
    }

    #[test]
    fn exit_codes_and_the_trainers_own_reason_explain_a_failure() {
        let pods = [pod(
            "j-abc",
            serde_json::json!({"terminated": {"exitCode": 1, "message": "line 1\nTraceback\nValueError: bad"}}),
        )];
        let failed = job(
            r#"[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]"#,
        );
        let Observed::Failed(failure) = observe(&failed, &pods, &at(5)) else {
            panic!("not failed")
        };
        assert_eq!(failure.reason, "BackoffLimitExceeded");
        assert!(
            failure.message.contains("exited with code 1"),
            "{}",
            failure.message
        );
        assert!(
            failure.message.contains("ValueError: bad"),
            "{}",
            failure.message
        );
        assert_eq!(failure.pod.as_deref(), Some("j-abc"));

        let own = explain(
            failure.clone(),
            "reading data\n{\"error\": \"DatasetUnavailable\", \"message\": \"no such file: /d.csv\"}\n",
        );
        assert_eq!(own.reason, "DatasetUnavailable");
        assert!(
            own.message.starts_with("no such file: /d.csv ("),
            "{}",
            own.message
        );
        let long = explain(failure.clone(), &format!("{}\n", "é".repeat(70_000)));
        assert!(long.message.len() < 1024, "{} bytes", long.message.len());
        assert!(long.message.ends_with("éé…"), "{}", long.message);
        let plain = explain(failure, "a\nb\nc\nd\n");
        assert!(
            plain.message.ends_with("last output: b | c | d"),
            "{}",
            plain.message
        );
    }

    #[test]
    fn a_deadline_and_a_completion_are_read_from_job_conditions() {
        let deadline = job(
            r#"[{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]"#,
        );
        let Observed::Failed(failure) = observe(&deadline, &[], &at(5)) else {
            panic!("not failed")
        };
        assert_eq!(failure.reason, "DeadlineExceeded");
        let complete = job(r#"[{"type": "Complete", "status": "True"}]"#);
        assert!(matches!(
            observe(&complete, &[], &at(5)),
            Observed::Completed { .. }
        ));
    }

    #[test]
    fn image_pull_failures_end_the_run_once_they_are_clearly_not_transient() {
        let first = [pod(
            "j-abc",
            serde_json::json!({"waiting": {"reason": "ErrImagePull", "message": "not found"}}),
        )];
        assert!(matches!(
            observe(&job("[]"), &first, &at(10)),
            Observed::Pending { .. }
        ));
        let Observed::Failed(failure) = observe(&job("[]"), &first, &at(120)) else {
            panic!("a long ErrImagePull fails the run")
        };
        assert_eq!(failure.reason, "ImageUnavailable");
        let backoff = [pod(
            "j-abc",
            serde_json::json!({"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}),
        )];
        assert!(
            matches!(observe(&job("[]"), &backoff, &at(10)), Observed::Failed(f) if f.message.contains("not found"))
        );
    }
}
