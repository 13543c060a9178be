//! Following a running trainer's output through the API server (as
//! `kubectl logs -f` does) and publishing its progress into the
//! TrainingJob's status: a bounded metrics history, the latest values and a
//! one-line summary. One task per running TrainingJob; the reconcile starts
//! it, and stops it when the run ends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aimass_crds::v1alpha1::TrainingJob;
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{LogParams, Patch, PatchParams};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::job::CONTAINER;
use super::progress::{Progress, summary};

/// How often progress is written to status while lines arrive.
const PUBLISH_EVERY: Duration = Duration::from_secs(2);

/// The running followers, by TrainingJob uid.
#[derive(Default)]
pub struct Followers {
    running: Mutex<HashMap<String, (String, JoinHandle<()>)>>,
}

impl Followers {
    /// Makes sure `pod`'s output is followed for the TrainingJob `uid`
    /// (restarting the follower when the pod changed or the follower ended).
    pub fn ensure(&self, jobs: Api<TrainingJob>, pods: Api<Pod>, name: &str, uid: &str, pod: &str) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((followed, task)) = running.get(uid)
            && followed == pod
            && !task.is_finished()
        {
            return;
        }
        let task = tokio::spawn(follow(jobs, pods, name.to_owned(), pod.to_owned()));
        if let Some((_, old)) = running.insert(uid.to_owned(), (pod.to_owned(), task)) {
            old.abort();
        }
    }

    /// Stops following the TrainingJob `uid`.
    pub fn stop(&self, uid: &str) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, task)) = running.remove(uid) {
            task.abort();
        }
    }
}

/// Reads `pod`'s trainer output from its start until it ends, publishing
/// progress at most every [`PUBLISH_EVERY`].
async fn follow(jobs: Api<TrainingJob>, pods: Api<Pod>, name: String, pod: String) {
    let params = LogParams {
        container: Some(CONTAINER.into()),
        follow: true,
        ..LogParams::default()
    };
    let stream = match pods.log_stream(&pod, &params).await {
        Ok(stream) => stream,
        Err(error) => {
            debug!(%error, pod, "cannot follow the trainer's output yet");
            return;
        }
    };
    let mut lines = stream.lines();
    let mut progress = Progress::default();
    let mut published = progress.clone();
    let mut last_publish = tokio::time::Instant::now();
    loop {
        let next = tokio::time::timeout(PUBLISH_EVERY, lines.next()).await;
        match next {
            Ok(Some(Ok(line))) => progress.read(&line, &Time(jiff::Timestamp::now())),
            Ok(Some(Err(error))) => {
                warn!(%error, pod, "reading the trainer's output failed");
                break;
            }
            Ok(None) => break,
            Err(_) => {}
        }
        if progress != published && last_publish.elapsed() >= PUBLISH_EVERY {
            publish(&jobs, &name, &progress).await;
            published = progress.clone();
            last_publish = tokio::time::Instant::now();
        }
    }
    if progress != published {
        publish(&jobs, &name, &progress).await;
    }
}

/// Reads `pod`'s whole trainer output at once, for a run that ended before
/// it could be followed. An unreadable output gives no progress.
pub async fn read_all(pods: &Api<Pod>, pod: &str) -> Progress {
    let params = LogParams {
        container: Some(CONTAINER.into()),
        ..LogParams::default()
    };
    let mut progress = Progress::default();
    match pods.logs(pod, &params).await {
        Ok(text) => {
            let now = Time(jiff::Timestamp::now());
            for line in text.lines() {
                progress.read(line, &now);
            }
        }
        Err(error) => debug!(%error, pod, "cannot read the trainer's output"),
    }
    progress
}

async fn publish(jobs: &Api<TrainingJob>, name: &str, progress: &Progress) {
    if progress.history.is_empty() {
        return;
    }
    let patch = serde_json::json!({"status": {
        "metricsHistory": progress.history,
        "metrics": progress.latest,
        "metricsSummary": summary(&progress.latest),
    }});
    if let Err(error) = jobs
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        warn!(%error, name, "cannot publish training progress");
    }
}
