//! Names the operator puts on the objects it creates, so users and the
//! operator itself can find them with label selectors.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

/// `app.kubernetes.io/managed-by` value of everything the operator creates.
pub const MANAGER: &str = "aimass-operator";
/// Label naming the Model an object belongs to.
pub const MODEL: &str = "aimass.io/model";
/// Label naming the TrainingJob an object belongs to.
pub const TRAINING_JOB: &str = "aimass.io/training-job";
/// Label marking a TrainingJob a Model's schedule created, with the tick's
/// Unix time in seconds.
pub const SCHEDULED_AT: &str = "aimass.io/scheduled-at";

/// The standard labels of an object of `component` for `model`.
pub fn common(component: &str, model: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), component.into()),
        ("app.kubernetes.io/managed-by".into(), MANAGER.into()),
        (MODEL.into(), model.into()),
    ])
}

/// The metadata of an object `owner` controls: same namespace, the given
/// labels, and a controller owner reference, so deleting the owner deletes it.
pub fn owned_meta<K>(owner: &K, name: String, labels: BTreeMap<String, String>) -> ObjectMeta
where
    K: Resource<DynamicType = ()>,
{
    ObjectMeta {
        name: Some(name),
        namespace: owner.meta().namespace.clone(),
        labels: Some(labels),
        owner_references: owner.controller_owner_ref(&()).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// `name` made to fit a label value or a DNS label of at most `max`
/// characters: unchanged when it fits, otherwise cut and suffixed with a
/// short hash so distinct names stay distinct.
pub fn fit(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let hash = aimass_storage::sha256_hex(name.as_bytes());
    let keep = max.saturating_sub(7);
    let mut cut = name[..keep].trim_end_matches(['-', '.']).to_owned();
    cut.push('-');
    cut.push_str(&hash[..6]);
    cut
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn long_names_are_cut_with_a_hash() {
        assert_eq!(fit("fraud", 52), "fraud");
        let long = "a".repeat(60);
        let other = format!("{}b", "a".repeat(59));
        assert_eq!(fit(&long, 52).len(), 52);
        assert_ne!(fit(&long, 52), fit(&other, 52));
    }
}
