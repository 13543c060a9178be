//! Environment variables of the pods the operator makes.

use k8s_openapi::api::core::v1::EnvVar;

/// Variable `name` set to `value`.
pub fn env(name: &str, value: impl ToString) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_string()),
        value_from: None,
    }
}
