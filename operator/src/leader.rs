//! Leader election through a `coordination.k8s.io` Lease with the
//! maintained `kube-lease-manager` crate: one replica reconciles, the others
//! wait and take over when its Lease expires.

use std::time::Duration;

use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tracing::info;

use crate::error::Error;

/// How long a Lease stays valid without renewal.
const LEASE_SECONDS: u64 = 15;
/// How long before expiry the holder renews.
const GRACE_SECONDS: u64 = 5;

/// A replica's part in the election.
pub struct Election {
    state: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<Result<LeaseManager, kube_lease_manager::LeaseManagerError>>,
}

impl Election {
    /// Joins the election for `lease` in `namespace` as `identity`.
    pub async fn join(
        client: kube::Client,
        namespace: &str,
        lease: &str,
        identity: &str,
    ) -> Result<Self, Error> {
        let manager = LeaseManagerBuilder::new(client, lease)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(GRACE_SECONDS)
            .build()
            .await?;
        let (state, task) = manager.watch().await;
        Ok(Self { state, task })
    }

    /// Resolves once this replica leads.
    pub async fn acquired(&mut self) {
        info!("waiting for leadership");
        let _ = self.state.wait_for(|leading| *leading).await;
        info!("leading");
    }

    /// Resolves when this replica stops leading.
    pub async fn lost(&mut self) {
        let _ = self.state.wait_for(|leading| !*leading).await;
    }

    /// Gives the Lease up so another replica takes over at once.
    pub async fn resign(self) {
        drop(self.state);
        if let Ok(Ok(Ok(manager))) = tokio::time::timeout(Duration::from_secs(5), self.task).await {
            let _ = manager.release().await;
        }
    }
}
