//! The registry of a Model's versions as pure steps: merging the records
//! found in storage into status, and retention.

use std::collections::BTreeSet;

use aimass_crds::v1alpha1::ModelVersion;

/// `status` plus every record in `stored` whose version number status does
/// not know yet, oldest first. Records already in status are never changed.
pub fn merge(status: &[ModelVersion], stored: Vec<ModelVersion>) -> Vec<ModelVersion> {
    let known: BTreeSet<i64> = status.iter().map(|v| v.version).collect();
    let mut merged = status.to_vec();
    merged.extend(stored.into_iter().filter(|v| !known.contains(&v.version)));
    merged.sort_by_key(|v| v.version);
    merged.dedup_by_key(|v| v.version);
    merged
}

/// Splits `versions` into those kept (the newest `keep_last`, plus every
/// version in `protected`) and those dropped, both oldest first.
pub fn retain(
    versions: Vec<ModelVersion>,
    keep_last: usize,
    protected: &BTreeSet<i64>,
) -> (Vec<ModelVersion>, Vec<ModelVersion>) {
    let newest: BTreeSet<i64> = versions
        .iter()
        .rev()
        .take(keep_last)
        .map(|v| v.version)
        .collect();
    versions
        .into_iter()
        .partition(|v| newest.contains(&v.version) || protected.contains(&v.version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimass_crds::v1alpha1::VersionPhase;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn version(n: i64, uri: &str) -> ModelVersion {
        ModelVersion {
            version: n,
            phase: VersionPhase::Ready,
            reason: None,
            message: None,
            uri: uri.to_owned(),
            sha256: None,
            size_bytes: None,
            signature: None,
            metrics: Default::default(),
            lineage: None,
            provenance: None,
            created: Time(jiff::Timestamp::UNIX_EPOCH),
            baseline: None,
        }
    }

    fn numbers(versions: &[ModelVersion]) -> Vec<i64> {
        versions.iter().map(|v| v.version).collect()
    }

    #[test]
    fn merging_adds_unknown_versions_and_never_rewrites_known_ones() {
        let status = [version(2, "status"), version(4, "status")];
        let stored = vec![
            version(1, "storage"),
            version(2, "storage"),
            version(3, "storage"),
        ];
        let merged = merge(&status, stored);
        assert_eq!(numbers(&merged), [1, 2, 3, 4]);
        assert_eq!(merged[1].uri, "status");
        assert_eq!(merged[0].uri, "storage");
    }

    #[test]
    fn retention_keeps_the_newest_and_everything_in_use() {
        let versions: Vec<_> = (1..=6).map(|n| version(n, "u")).collect();
        let (kept, dropped) = retain(versions.clone(), 2, &BTreeSet::from([1, 3]));
        assert_eq!(numbers(&kept), [1, 3, 5, 6]);
        assert_eq!(numbers(&dropped), [2, 4]);
        let (kept, dropped) = retain(versions, 10, &BTreeSet::new());
        assert_eq!((kept.len(), dropped.len()), (6, 0));
    }
}
