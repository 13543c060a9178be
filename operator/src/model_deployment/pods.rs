//! The serving replicas as the reconcile reads them: their pods (listed
//! fresh, not cached), and the summed metrics of a track.

use aimass_crds::v1alpha1::ModelDeployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::workload::{self, Track};
use crate::context::Context;
use crate::error::Error;
use crate::scrape::{self, Snapshot};

/// Every pod of `md` matching `selector`, with its IP when it serves.
pub async fn replicas(
    ctx: &Context,
    md: &ModelDeployment,
    selector: &str,
) -> Result<Vec<(String, Option<String>)>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &md.namespace().unwrap_or_default());
    let listed = pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(Error::kube(format!(
            "listing the pods of {}",
            md.name_any()
        )))?;
    Ok(listed
        .items
        .iter()
        .map(|pod| (pod.name_any(), workload::serving_ip(pod)))
        .collect())
}

/// The IPs of a track's serving replicas.
pub async fn track_ips(
    ctx: &Context,
    md: &ModelDeployment,
    track: Track,
) -> Result<Vec<String>, Error> {
    let selector = format!(
        "{},{}={}",
        workload::selector(md),
        workload::TRACK_LABEL,
        if track == Track::Canary {
            "canary"
        } else {
            "stable"
        }
    );
    Ok(replicas(ctx, md, &selector)
        .await?
        .into_iter()
        .filter_map(|(_, ip)| ip)
        .collect())
}

/// The summed metrics of a track's serving replicas.
pub async fn track_snapshot(
    ctx: &Context,
    md: &ModelDeployment,
    track: Track,
) -> Result<Snapshot, Error> {
    Ok(snapshot_of(&track_ips(ctx, md, track).await?).await)
}

/// The summed metrics of the servers at `ips`; silent ones are left out.
pub async fn snapshot_of(ips: &[String]) -> Snapshot {
    let scraped = futures::future::join_all(
        ips.iter()
            .map(|ip| scrape::scrape(ip, workload::ADMIN_PORT)),
    )
    .await;
    Snapshot::sum(scraped.into_iter().flatten())
}
