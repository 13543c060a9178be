//! The report: from the merged tallies of every shard to the figures risk
//! teams read (AUC, KS, Gini, decisions at thresholds, bad rate by decile,
//! the same per segment, and which version wins each metric). Pure.

use std::collections::BTreeMap;

use aimass_crds::v1alpha1::{
    DecileReport, MetricWinner, ScoringReport, SegmentReport, SeparationMetrics, ThresholdReport,
    VersionReport,
};

pub use crate::distribution::{Distribution, Outcome, Tally};
use crate::summary::{ShardSummary, VersionSummary};

/// The most segments a report lists, largest first.
pub const SEGMENTS_REPORTED: usize = 20;

/// The report over the merged summary of all shards; `versions` are the
/// version numbers in spec order, `labels` whether a label column was given.
pub fn build(
    summary: &ShardSummary,
    versions: &[i64],
    thresholds: &[f64],
    labels: bool,
) -> ScoringReport {
    let reports: Vec<VersionReport> = versions
        .iter()
        .zip(&summary.versions)
        .map(|(&version, v)| version_report(version, v, thresholds, labels))
        .collect();
    let winners = if labels {
        winners(&reports)
    } else {
        Vec::new()
    };
    let summary_line = summary_line(&reports, &winners);
    ScoringReport {
        rows: to_i64(summary.rows),
        labelled: to_i64(summary.labelled),
        unlabelled: to_i64(summary.unlabelled),
        bad: to_i64(summary.bad),
        versions: reports,
        winners,
        summary: summary_line,
    }
}

fn version_report(
    version: i64,
    summary: &VersionSummary,
    thresholds: &[f64],
    labels: bool,
) -> VersionReport {
    let sorted = summary.scores.sorted();
    let mut segments: Vec<SegmentReport> = summary
        .segments
        .iter()
        .map(|(segment, scores)| {
            let sorted = scores.sorted();
            SegmentReport {
                segment: segment.clone(),
                scored: to_i64(sorted.iter().map(|(_, t)| t.all()).sum()),
                // Deciles only overall: the report stays small enough for a
                // status.
                metrics: labels.then(|| SeparationMetrics {
                    deciles: Vec::new(),
                    ..separation(&sorted, thresholds)
                }),
            }
        })
        .collect();
    segments.sort_by(|a, b| b.scored.cmp(&a.scored).then(a.segment.cmp(&b.segment)));
    segments.truncate(SEGMENTS_REPORTED);
    let scored: u64 = sorted.iter().map(|(_, t)| t.all()).sum();
    let sum: f64 = sorted.iter().map(|(s, t)| s * t.all() as f64).sum();
    VersionReport {
        version,
        scored: to_i64(scored),
        refused: to_i64(summary.refused),
        refusals: summary.refusals.clone(),
        score_quantiles: quantiles(&sorted),
        score_resolution: summary.scores.resolution(),
        mean_score: (scored > 0).then(|| sum / scored as f64),
        metrics: labels.then(|| separation(&sorted, thresholds)),
        segments,
    }
}

/// The scores at 0, 10, …, 100 % of the rows (lowest score at or above each
/// share), over every scored row.
fn quantiles(sorted: &[(f64, Tally)]) -> Vec<f64> {
    let total: u64 = sorted.iter().map(|(_, t)| t.all()).sum();
    if total == 0 {
        return Vec::new();
    }
    (0..=10u64)
        .filter_map(|q| {
            // At least one row, so 0 % is the lowest score.
            let wanted = (total * q).div_ceil(10).max(1);
            let mut seen = 0;
            sorted.iter().find_map(|(score, tally)| {
                seen += tally.all();
                (seen >= wanted).then_some(*score)
            })
        })
        .collect()
}

/// AUC, KS, Gini, decisions and deciles over the labelled rows of `sorted`
/// (lowest score first).
fn separation(sorted: &[(f64, Tally)], thresholds: &[f64]) -> SeparationMetrics {
    let bad: u64 = sorted.iter().map(|(_, t)| t.bad).sum();
    let good: u64 = sorted.iter().map(|(_, t)| t.good).sum();
    let rows = bad + good;
    let both = bad > 0 && good > 0;
    // Mann–Whitney: each bad row beats the good rows scored lower, and ties
    // count half; the KS is the widest gap between the two cumulative shares.
    let (mut pairs, mut goods_below, mut bads_below, mut ks) = (0f64, 0u64, 0u64, 0f64);
    for (_, tally) in sorted {
        pairs += tally.bad as f64 * (goods_below as f64 + tally.good as f64 / 2.0);
        goods_below += tally.good;
        bads_below += tally.bad;
        if both {
            let gap = (goods_below as f64 / good as f64 - bads_below as f64 / bad as f64).abs();
            ks = f64::max(ks, gap);
        }
    }
    let auc = both.then(|| pairs / (bad as f64 * good as f64));
    SeparationMetrics {
        rows: to_i64(rows),
        bad: to_i64(bad),
        auc,
        ks: both.then_some(ks),
        gini: auc.map(|a| 2.0 * a - 1.0),
        thresholds: if rows == 0 {
            Vec::new()
        } else {
            thresholds
                .iter()
                .map(|&t| decisions(sorted, t, rows, bad))
                .collect()
        },
        deciles: deciles(sorted, rows),
    }
}

fn decisions(sorted: &[(f64, Tally)], threshold: f64, rows: u64, bad: u64) -> ThresholdReport {
    let (declined, bad_declined) = sorted
        .iter()
        .filter(|(score, _)| *score >= threshold)
        .fold((0u64, 0u64), |(d, b), (_, t)| (d + t.labelled(), b + t.bad));
    let share = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
    ThresholdReport {
        threshold,
        precision: share(bad_declined, declined),
        recall: share(bad_declined, bad),
        approval_rate: (rows - declined) as f64 / rows as f64,
        decline_rate: declined as f64 / rows as f64,
    }
}

/// Labelled rows in tenths by score, riskiest first; rows of one score stay
/// in one decile, so a decile can be empty (and is left out) or large.
fn deciles(sorted: &[(f64, Tally)], rows: u64) -> Vec<DecileReport> {
    let mut deciles: Vec<DecileReport> = Vec::new();
    let mut before = 0u64;
    for (score, tally) in sorted.iter().rev().filter(|(_, t)| t.labelled() > 0) {
        let decile = i32::try_from(before * 10 / rows + 1).unwrap_or(10);
        before += tally.labelled();
        match deciles.last_mut() {
            Some(last) if last.decile == decile => {
                last.rows += to_i64(tally.labelled());
                last.bad += to_i64(tally.bad);
                last.min_score = *score;
            }
            _ => deciles.push(DecileReport {
                decile,
                rows: to_i64(tally.labelled()),
                bad: to_i64(tally.bad),
                bad_rate: 0.0,
                min_score: *score,
                max_score: *score,
            }),
        }
    }
    for decile in &mut deciles {
        decile.bad_rate = decile.bad as f64 / decile.rows as f64;
    }
    deciles
}

/// For AUC, KS and Gini (higher is better for each), the best version.
fn winners(reports: &[VersionReport]) -> Vec<MetricWinner> {
    type Pick = fn(&SeparationMetrics) -> Option<f64>;
    let metrics: [(&str, Pick); 3] = [("auc", |m| m.auc), ("ks", |m| m.ks), ("gini", |m| m.gini)];
    metrics
        .into_iter()
        .filter_map(|(name, pick)| {
            let values: Vec<(i64, f64)> = reports
                .iter()
                .filter_map(|r| Some((r.version, pick(r.metrics.as_ref()?)?)))
                .collect();
            let reference = values.first()?.1;
            // The first best wins a tie: the reference stays unless beaten.
            let (version, best) = values.iter().copied().fold(
                None,
                |best: Option<(i64, f64)>, (v, x)| match best {
                    Some((_, b)) if b >= x => best,
                    _ => Some((v, x)),
                },
            )?;
            Some(MetricWinner {
                metric: name.to_owned(),
                version,
                values: values
                    .iter()
                    .map(|(v, x)| (v.to_string(), *x))
                    .collect::<BTreeMap<_, _>>(),
                lead_over_reference: best - reference,
            })
        })
        .collect()
}

fn summary_line(reports: &[VersionReport], winners: &[MetricWinner]) -> String {
    let auc_winner = winners
        .iter()
        .find(|w| w.metric == "auc")
        .map(|w| w.version);
    reports
        .iter()
        .map(|r| {
            let mut line = format!("v{}", r.version);
            match r.metrics.as_ref().and_then(|m| Some((m.auc?, m.ks?))) {
                Some((auc, ks)) => line.push_str(&format!(" AUC {auc:.3} KS {ks:.3}")),
                None => line.push_str(&format!(" {} scored", r.scored)),
            }
            if r.refused > 0 {
                line.push_str(&format!(", {} refused", r.refused));
            }
            if reports.len() > 1 && auc_winner == Some(r.version) {
                line.push_str(" (best AUC)");
            }
            line
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
