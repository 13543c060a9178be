//! Version `v1alpha1` of the aimass.io API.

mod api_client;
mod common;
pub mod conditions;
mod drift;
mod ensemble;
mod model;
mod model_deployment;
mod model_deployment_status;
mod promotion;
mod scoring_job;
mod serving_security;
mod training_job;

pub use api_client::*;
pub use common::*;
pub use drift::*;
pub use ensemble::*;
pub use model::*;
pub use model_deployment::*;
pub use model_deployment_status::*;
pub use promotion::*;
pub use scoring_job::*;
pub use serving_security::*;
pub use training_job::*;
