//! The state of a pod's containers and the PodStatus built from it, as a
//! kubelet reports it: phase, conditions, container statuses.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, PodCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// What one container is doing.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// Not running: being created, backing off, or misconfigured.
    Waiting {
        /// CamelCase reason.
        reason: String,
        /// Details.
        message: Option<String>,
    },
    /// Running since a moment.
    Running {
        /// When it started.
        started_at: Timestamp,
    },
    /// Exited.
    Terminated(Exit),
}

/// How a container attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Exit {
    /// Exit code (128 + signal when killed by a signal).
    pub exit_code: i32,
    /// Signal that ended it, if any.
    pub signal: Option<i32>,
    /// `Completed`, `Error` or another CamelCase reason.
    pub reason: String,
    /// Details.
    pub message: Option<String>,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Timestamp,
}

/// One container's record.
#[derive(Clone, Debug)]
pub struct ContainerRecord {
    /// Container name.
    pub name: String,
    /// Its image.
    pub image: String,
    /// Current state.
    pub state: State,
    /// The previous attempt's end.
    pub last: Option<Exit>,
    /// Restarts so far.
    pub restart_count: i32,
    /// Passed its readiness probe (or has none) while running.
    pub ready: bool,
    /// Passed its startup probe (or has none) while running.
    pub started: bool,
}

impl ContainerRecord {
    /// A container not yet started.
    pub fn new(name: &str, image: &str) -> Self {
        Self {
            name: name.to_owned(),
            image: image.to_owned(),
            state: State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            last: None,
            restart_count: 0,
            ready: false,
            started: false,
        }
    }

    fn exit(e: &Exit) -> ContainerStateTerminated {
        ContainerStateTerminated {
            exit_code: e.exit_code,
            signal: e.signal,
            reason: Some(e.reason.clone()),
            message: e.message.clone(),
            started_at: Some(Time(e.started_at)),
            finished_at: Some(Time(e.finished_at)),
            container_id: None,
        }
    }

    /// The record as a ContainerStatus.
    pub fn to_status(&self) -> ContainerStatus {
        let state = match &self.state {
            State::Waiting { reason, message } => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..Default::default()
            },
            State::Running { started_at } => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(*started_at)),
                }),
                ..Default::default()
            },
            State::Terminated(e) => ContainerState {
                terminated: Some(Self::exit(e)),
                ..Default::default()
            },
        };
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: format!("aimass-local://{}", self.image),
            container_id: Some(format!("aimass://{}-{}", self.name, self.restart_count)),
            ready: self.ready && matches!(self.state, State::Running { .. }),
            started: Some(self.started && matches!(self.state, State::Running { .. })),
            restart_count: self.restart_count,
            state: Some(state),
            last_state: self.last.as_ref().map(|e| ContainerState {
                terminated: Some(Self::exit(e)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The pod-level phase from its containers and restart policy.
pub fn phase(
    init_done: bool,
    init_failed: bool,
    containers: &[ContainerRecord],
    restart_policy: &str,
) -> &'static str {
    if init_failed {
        return "Failed";
    }
    if !init_done {
        return "Pending";
    }
    let exits: Vec<Option<&Exit>> = containers
        .iter()
        .map(|c| match &c.state {
            State::Terminated(e) => Some(e),
            _ => None,
        })
        .collect();
    let all_done = exits.iter().all(Option::is_some);
    let started = containers.iter().any(|c| {
        !matches!(c.state, State::Waiting { ref reason, .. } if reason == "ContainerCreating")
            || c.restart_count > 0
    });
    match restart_policy {
        "Never" if all_done => {
            if exits.iter().flatten().all(|e| e.exit_code == 0) {
                "Succeeded"
            } else {
                "Failed"
            }
        }
        "OnFailure" if all_done && exits.iter().flatten().all(|e| e.exit_code == 0) => "Succeeded",
        _ if started => "Running",
        _ => "Pending",
    }
}

/// The status patch for a pod.
pub struct PodReport<'a> {
    /// Phase from [`phase`].
    pub phase: &'a str,
    /// Pod address, once it has one.
    pub pod_ip: Option<String>,
    /// Node address.
    pub host_ip: String,
    /// When the agent accepted the pod.
    pub start_time: Timestamp,
    /// Init containers finished.
    pub initialized: bool,
    /// Init containers' records.
    pub init_containers: &'a [ContainerRecord],
    /// Containers' records.
    pub containers: &'a [ContainerRecord],
    /// A pod-level reason (e.g. a failed sandbox), shown by `kubectl get`.
    pub reason: Option<(String, String)>,
}

impl PodReport<'_> {
    /// Renders the strategic-merge patch of `status`.
    pub fn to_patch(&self) -> Value {
        let now = Time(Timestamp::now());
        let all_ready =
            !self.containers.is_empty() && self.containers.iter().all(|c| c.to_status().ready);
        let condition = |type_: &str, ok: bool| PodCondition {
            type_: type_.into(),
            status: if ok { "True" } else { "False" }.into(),
            last_transition_time: Some(now.clone()),
            ..Default::default()
        };
        let conditions = vec![
            condition("PodReadyToStartContainers", self.pod_ip.is_some()),
            condition("Initialized", self.initialized),
            condition("ContainersReady", all_ready),
            condition("Ready", all_ready),
            condition("PodScheduled", true),
        ];
        // qosClass is left alone: the API server sets it when the pod is
        // created, and refuses a status that changes it.
        let mut status = json!({
            "phase": self.phase,
            "hostIP": self.host_ip,
            "hostIPs": [{"ip": self.host_ip}],
            "startTime": Time(self.start_time),
            "conditions": conditions,
            "containerStatuses": self.containers.iter().map(ContainerRecord::to_status).collect::<Vec<_>>(),
            "initContainerStatuses": self.init_containers.iter().map(ContainerRecord::to_status).collect::<Vec<_>>(),
        });
        if let Some(ip) = &self.pod_ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        if let Some((reason, message)) = &self.reason {
            status["reason"] = json!(reason);
            status["message"] = json!(message);
        }
        json!({"status": status})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> ContainerRecord {
        let mut c = ContainerRecord::new("c", "img");
        c.state = State::Terminated(Exit {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at: Timestamp::now(),
            finished_at: Timestamp::now(),
        });
        c
    }

    fn running() -> ContainerRecord {
        let mut c = ContainerRecord::new("c", "img");
        c.state = State::Running {
            started_at: Timestamp::now(),
        };
        c
    }

    #[test]
    fn phases_follow_the_restart_policy() {
        let creating = ContainerRecord::new("c", "img");
        assert_eq!(
            phase(false, false, std::slice::from_ref(&creating), "Always"),
            "Pending"
        );
        assert_eq!(phase(true, false, &[creating], "Always"), "Pending");
        assert_eq!(phase(true, false, &[running()], "Always"), "Running");
        assert_eq!(phase(true, false, &[exited(0)], "Never"), "Succeeded");
        assert_eq!(
            phase(true, false, &[exited(0), exited(1)], "Never"),
            "Failed"
        );
        assert_eq!(
            phase(true, false, &[exited(0), running()], "Never"),
            "Running"
        );
        assert_eq!(phase(true, false, &[exited(0)], "OnFailure"), "Succeeded");
        // Restarting after a failure, or always restarting: still running.
        assert_eq!(phase(true, false, &[exited(1)], "OnFailure"), "Running");
        assert_eq!(phase(true, false, &[exited(0)], "Always"), "Running");
        assert_eq!(phase(true, true, &[], "Never"), "Failed");
    }

    #[test]
    fn readiness_needs_every_container_running_and_ready() {
        let mut a = running();
        a.ready = true;
        let b = running();
        let report = |cs: &[ContainerRecord]| {
            PodReport {
                phase: "Running",
                pod_ip: Some("10.244.1.2".into()),
                host_ip: "10.244.0.1".into(),
                start_time: Timestamp::now(),
                initialized: true,
                init_containers: &[],
                containers: cs,
                reason: None,
            }
            .to_patch()
        };
        let ready = |patch: &Value| {
            patch["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Ready")
                .unwrap()["status"]
                .clone()
        };
        assert_eq!(ready(&report(&[a.clone(), b])), "False");
        assert_eq!(ready(&report(&[a])), "True");
        assert_eq!(report(&[running()])["status"]["podIP"], "10.244.1.2");
    }
}
