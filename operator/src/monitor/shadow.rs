//! A shadow's comparison as status reports it: the servers' latest
//! `aimass_shadow_*` counts summed, for the newest version shadowed. Pure.

use std::collections::BTreeMap;

use aimass_crds::v1alpha1::{DifferenceBucket, ShadowStatus};

use crate::scrape::ShadowCounts;

/// How often the comparison is written to status, in seconds.
pub const EVERY_SECONDS: f64 = 10.0;

/// The status of the newest version in `counts` (summed over the servers
/// that shadow it); `None` when no server shadows.
pub fn status(counts: &BTreeMap<i64, ShadowCounts>) -> Option<ShadowStatus> {
    let (version, c) = counts.iter().next_back()?;
    let whole = |v: f64| v.max(0.0).round() as i64;
    let share = |part: f64, of: f64| (of > 0.0).then(|| part / of);
    Some(ShadowStatus {
        version: *version,
        requests: whole(c.requests),
        rows: whole(c.rows),
        label_agreement: share(c.agreements, c.rows)
            .filter(|_| c.labelled)
            .map(|s| s.clamp(0.0, 1.0)),
        mean_absolute_difference: share(c.difference_sum, c.difference_count),
        differences: c
            .differences
            .iter()
            .filter(|(bound, _)| bound.0.is_finite())
            .map(|(bound, rows)| DifferenceBucket {
                le: bound.0,
                rows: whole(*rows),
            })
            .collect(),
        dropped: whole(c.dropped),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::{OrderedF64, Snapshot};

    /// One server's metrics text, as the server renders it.
    fn server(version: i64, requests: u64, rows: u64, agreements: u64, sum: f64) -> Snapshot {
        Snapshot::parse(&format!(
            "# TYPE aimass_shadow_version gauge
aimass_shadow_version{{model=\"m\",version=\"1\"}} {version}
# TYPE aimass_shadow_requests_total counter
aimass_shadow_requests_total{{model=\"m\",version=\"1\"}} {requests}
# TYPE aimass_shadow_rows_total counter
aimass_shadow_rows_total{{model=\"m\",version=\"1\"}} {rows}
# TYPE aimass_shadow_label_agreements_total counter
aimass_shadow_label_agreements_total{{model=\"m\",version=\"1\"}} {agreements}
# TYPE aimass_shadow_dropped_total counter
aimass_shadow_dropped_total{{model=\"m\",version=\"1\",why=\"busy\"}} 1
# TYPE aimass_shadow_score_difference histogram
aimass_shadow_score_difference_bucket{{model=\"m\",version=\"1\",le=\"0.01\"}} {half}
aimass_shadow_score_difference_bucket{{model=\"m\",version=\"1\",le=\"1\"}} {rows}
aimass_shadow_score_difference_bucket{{model=\"m\",version=\"1\",le=\"+Inf\"}} {rows}
aimass_shadow_score_difference_sum{{model=\"m\",version=\"1\"}} {sum}
aimass_shadow_score_difference_count{{model=\"m\",version=\"1\"}} {rows}
",
            half = rows / 2
        ))
        .expect("parses")
    }

    #[test]
    fn the_servers_comparisons_add_up_for_the_newest_version() {
        let total = Snapshot::sum([
            server(3, 10, 160, 120, 8.0),
            server(3, 5, 80, 60, 4.0),
            server(2, 99, 99, 0, 0.0),
        ]);
        let status = status(&total.shadow).expect("a shadow");
        assert_eq!((status.version, status.requests, status.rows), (3, 15, 240));
        assert_eq!(status.label_agreement, Some(0.75));
        assert_eq!(status.mean_absolute_difference, Some(0.05));
        assert_eq!(status.dropped, 2);
        assert_eq!(
            status.differences,
            [
                DifferenceBucket {
                    le: 0.01,
                    rows: 120
                },
                DifferenceBucket { le: 1.0, rows: 240 }
            ]
        );
        assert_eq!(total.shadow[&2].requests, 99.0, "kept apart");
        assert_eq!(status_of_nothing(), None);
    }

    fn status_of_nothing() -> Option<ShadowStatus> {
        status(&BTreeMap::new())
    }

    #[test]
    fn a_lying_server_cannot_make_figures_out_of_range() {
        let mut counts = BTreeMap::new();
        counts.insert(
            4,
            ShadowCounts {
                requests: -5.0,
                rows: 0.0,
                agreements: 7.0,
                labelled: true,
                dropped: f64::NAN,
                differences: BTreeMap::from([(OrderedF64(f64::INFINITY), 3.0)]),
                difference_sum: 1.0,
                difference_count: 0.0,
            },
        );
        let status = status(&counts).expect("a shadow");
        assert_eq!((status.requests, status.rows, status.dropped), (0, 0, 0));
        assert_eq!(status.label_agreement, None, "no rows, no share");
        assert_eq!(status.mean_absolute_difference, None);
        assert!(status.differences.is_empty(), "+Inf is not a bound");
    }
}
