//! A failed reconcile of a Model, said where users look: `Ready=False`
//! with the error and when the next attempt is, a Warning Event when that
//! is news, and a WARN line.

use std::sync::Arc;

use aimass_crds::v1alpha1::Model;
use aimass_crds::v1alpha1::conditions::types;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use tracing::warn;

use super::{CONTROLLER, write_status};
use crate::conditions;
use crate::context::Context;
use crate::error::Error;
use crate::events::Severity;
use crate::failure::Failure;

/// Requeues after a failed reconcile, and says why in status.
pub fn error_policy(model: Arc<Model>, error: &Error, ctx: Arc<Context>) -> Action {
    let conditions = model.status.as_ref().map(|s| s.conditions.clone());
    let conditions = conditions.unwrap_or_default();
    crate::failure::policy(model, &conditions, error, ctx, CONTROLLER, report_failure)
}

/// Says in status (and in an Event when it is news) that reconciling
/// `model` failed.
async fn report_failure(ctx: Arc<Context>, model: Arc<Model>, failure: Failure) {
    let old = model.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = model.metadata.generation;
    let news = failure.is_news(&old.conditions);
    conditions::set(
        &mut status.conditions,
        failure.condition(types::READY),
        model.metadata.generation,
        &Time(jiff::Timestamp::now()),
    );
    let models: Api<Model> =
        Api::namespaced(ctx.client.clone(), &model.namespace().unwrap_or_default());
    if let Err(error) = write_status(&models, &model, &old, status).await {
        warn!(%error, "cannot say in status that the reconcile failed");
    }
    if news {
        ctx.events
            .publish(
                &model.object_ref(&()),
                Severity::Warning,
                failure.reason,
                "Reconcile",
                failure.message,
            )
            .await;
    }
}
