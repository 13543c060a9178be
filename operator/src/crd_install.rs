//! Keeps the cluster's aimass.io CRDs in step with this operator.
//!
//! Helm installs a chart's `crds/` folder once and never upgrades it, so the
//! operator applies its own CRDs at start-up with server-side apply (the
//! approach Stackable's operators take): upgrading the operator upgrades its
//! API. With `--manage-crds=false` it only waits for them.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use tracing::info;

use crate::Error;

/// The field manager the operator applies its CRDs with.
const FIELD_MANAGER: &str = "aimass-operator";
/// How long a CRD may take to become established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Applies (when `manage` is set) and then waits for every aimass.io CRD.
pub async fn ensure(client: kube::Client, manage: bool) -> Result<(), Error> {
    if !manage {
        return served(&client).await;
    }
    let api: Api<CustomResourceDefinition> = Api::all(client);
    for (_, crd) in aimass_crds::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = tokio::time::timeout(
            ESTABLISH_TIMEOUT,
            api.patch(&name, &params, &Patch::Apply(&crd)),
        )
        .await
        .map_err(|_| Error::CrdNotEstablished {
            name: name.clone(),
            reason: format!("the API server did not answer the apply within {ESTABLISH_TIMEOUT:?}"),
        })?;
        applied.map_err(|source| Error::Kube {
            context: format!("applying CRD {name}"),
            source,
        })?;
        info!(crd = %name, "applied CRD");
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(ESTABLISH_TIMEOUT, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(Error::CrdNotEstablished {
                    name,
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                return Err(Error::CrdNotEstablished {
                    name,
                    reason: format!("not established within {ESTABLISH_TIMEOUT:?}"),
                });
            }
        }
    }
    Ok(())
}

/// Waits until discovery lists every aimass.io kind under its version.
async fn served(client: &kube::Client) -> Result<(), Error> {
    let wanted: Vec<(String, String)> = aimass_crds::crds()
        .into_iter()
        .map(|(_, crd)| (crd.spec.versions[0].name.clone(), crd.spec.names.plural))
        .collect();
    let deadline = tokio::time::Instant::now() + ESTABLISH_TIMEOUT;
    loop {
        let missing: Vec<String> = match kube::discovery::oneshot::group(client, "aimass.io").await
        {
            Ok(group) => wanted
                .iter()
                .filter(|(version, plural)| {
                    !group
                        .versioned_resources(version)
                        .iter()
                        .any(|(r, _)| &r.plural == plural)
                })
                .map(|(version, plural)| format!("{plural}.aimass.io/{version}"))
                .collect(),
            Err(e) => vec![format!("the aimass.io API group ({e})")],
        };
        if missing.is_empty() {
            info!("the aimass.io kinds are served");
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::CrdNotEstablished {
                name: missing.join(", "),
                reason: format!(
                    "not served within {ESTABLISH_TIMEOUT:?}; install the CRDs (the Helm chart does unless crds.install=false, or kubectl apply -f crds/)"
                ),
            });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
