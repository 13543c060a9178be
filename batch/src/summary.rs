//! What one shard learnt, written beside its outputs for the report pod to
//! merge: counts, the first refusals, and each version's score tallies
//! (overall and per segment). Bounded: refusals and segments are capped, so
//! a hostile data set cannot make a summary grow with its rows.

use std::collections::BTreeMap;

use aimass_crds::v1alpha1::Refusal;
use serde::{Deserialize, Serialize};

use crate::distribution::{Distribution, Outcome, SEGMENT_CAPACITY};

/// The most refusals listed (all are counted).
pub const REFUSALS_LISTED: usize = 100;
/// The longest refusal reason kept, in characters (it quotes tenant data).
const REASON_CHARS: usize = 200;
/// The most distinct segments kept; rows of later ones count as
/// [`OTHER_SEGMENT`].
pub const SEGMENTS_KEPT: usize = 1000;
/// The segment rows fall into past [`SEGMENTS_KEPT`].
pub const OTHER_SEGMENT: &str = "(other)";

/// One shard's (or, merged, the whole job's) findings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardSummary {
    /// Data rows read.
    pub rows: u64,
    /// Rows labelled good or bad.
    pub labelled: u64,
    /// Rows without a usable label (with a label column).
    pub unlabelled: u64,
    /// Rows labelled bad.
    pub bad: u64,
    /// Per version, in plan order.
    pub versions: Vec<VersionSummary>,
}

/// One version's findings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionSummary {
    /// Rows refused.
    pub refused: u64,
    /// The first refusals, by line.
    pub refusals: Vec<Refusal>,
    /// Every scored row's score and outcome.
    pub scores: Distribution,
    /// The same per segment.
    pub segments: BTreeMap<String, Distribution>,
}

impl ShardSummary {
    /// An empty summary for `versions` versions.
    pub fn new(versions: usize) -> Self {
        Self {
            versions: vec![VersionSummary::default(); versions],
            ..Self::default()
        }
    }

    /// Counts a row read, with its label's `outcome` (`None` without a label
    /// column).
    pub fn count_row(&mut self, outcome: Option<Outcome>) {
        self.rows += 1;
        match outcome {
            Some(Outcome::Bad) => {
                self.labelled += 1;
                self.bad += 1;
            }
            Some(Outcome::Good) => self.labelled += 1,
            Some(Outcome::Unknown) => self.unlabelled += 1,
            None => {}
        }
    }

    /// Adds another shard's findings. Refusals stay in line order.
    pub fn merge(&mut self, other: &ShardSummary) {
        self.rows += other.rows;
        self.labelled += other.labelled;
        self.unlabelled += other.unlabelled;
        self.bad += other.bad;
        if self.versions.len() < other.versions.len() {
            self.versions
                .resize(other.versions.len(), VersionSummary::default());
        }
        for (mine, theirs) in self.versions.iter_mut().zip(&other.versions) {
            mine.refused += theirs.refused;
            mine.refusals.extend(theirs.refusals.iter().cloned());
            mine.refusals.sort_by_key(|r| r.line);
            mine.refusals.truncate(REFUSALS_LISTED);
            mine.scores.merge(&theirs.scores);
            for (segment, scores) in &theirs.segments {
                mine.segment(segment).merge(scores);
            }
        }
    }
}

impl VersionSummary {
    /// Counts a refused row.
    pub fn refuse(&mut self, line: u64, reason: String) {
        self.refused += 1;
        if self.refusals.len() < REFUSALS_LISTED {
            self.refusals.push(Refusal {
                line: i64::try_from(line).unwrap_or(i64::MAX),
                reason: reason.chars().take(REASON_CHARS).collect(),
            });
        }
    }

    /// Counts a scored row.
    pub fn score(&mut self, score: f64, outcome: Outcome, segment: Option<&str>) {
        self.scores.add(score, outcome);
        if let Some(segment) = segment {
            self.segment(segment).add(score, outcome);
        }
    }

    /// The tallies of `segment`, or of [`OTHER_SEGMENT`] once
    /// [`SEGMENTS_KEPT`] are kept.
    fn segment(&mut self, segment: &str) -> &mut Distribution {
        let key = if self.segments.contains_key(segment) || self.segments.len() < SEGMENTS_KEPT {
            segment
        } else {
            OTHER_SEGMENT
        };
        self.segments
            .entry(key.to_owned())
            .or_insert_with(|| Distribution::with_capacity(SEGMENT_CAPACITY))
    }
}
