//! The counts a server keeps: for each column of its version's baseline,
//! how many rows fell in each bin, how many were missing (NaN) and how many
//! were outside what training saw. Counters only grow (the operator takes
//! differences between readings); no request value is kept.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::{Baseline, Bins, Column, Error};

/// Whether a column is an input feature or a score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An input feature.
    Feature,
    /// A score (an output).
    Score,
}

/// One value of a row, as a tensor holds it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// A number of any numeric type.
    Number(f64),
    /// A string (`BYTES`).
    Text(&'a [u8]),
}

/// A value refused by a `Reject` rule: which feature, where, what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The feature's name.
    pub feature: String,
    /// The input it is read from.
    pub input: String,
    /// The row of the request.
    pub row: usize,
    /// Its position in the row.
    pub index: usize,
    /// The value, as text (at most 64 characters).
    pub value: String,
    /// What training saw instead.
    pub expected: String,
}

struct Counted {
    column: Column,
    bins: Bins,
    counts: Vec<AtomicU64>,
    missing: AtomicU64,
    outside: AtomicU64,
}

impl Counted {
    fn new(column: Column) -> Self {
        let bins = column.bins();
        Self {
            counts: column
                .proportions
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
            bins,
            column,
            missing: AtomicU64::new(0),
            outside: AtomicU64::new(0),
        }
    }

    fn outside(&self, value: Value<'_>) -> bool {
        match value {
            Value::Number(n) => !n.is_nan() && self.column.outside(&self.bins, n),
            Value::Text(t) => match &self.bins {
                Bins::Categorical { other, .. } => self.bins.text(t) == *other,
                Bins::Numeric(_) => true,
            },
        }
    }

    fn count(&self, value: Value<'_>) -> bool {
        let bin = match value {
            Value::Number(n) if n.is_nan() => {
                self.missing.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            Value::Number(n) => self.bins.number(n),
            Value::Text(t) => self.bins.text(t),
        };
        if let Some(counter) = self.counts.get(bin) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let outside = self.outside(value);
        if outside {
            self.outside.fetch_add(1, Ordering::Relaxed);
        }
        outside
    }

    fn snapshot(&self) -> SnapshotColumn {
        SnapshotColumn {
            name: self.column.name.clone(),
            expected: self.column.proportions.clone(),
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            missing: self.missing.load(Ordering::Relaxed),
            outside: self.outside.load(Ordering::Relaxed),
        }
    }

    fn expected(&self) -> String {
        match (&self.bins, self.column.min, self.column.max) {
            (Bins::Numeric(_), Some(min), Some(max)) => format!("from {min} to {max}"),
            (Bins::Numeric(_), Some(min), None) => format!("at least {min}"),
            (Bins::Numeric(_), None, Some(max)) => format!("at most {max}"),
            (Bins::Numeric(_), None, None) => "a number".into(),
            (Bins::Categorical { .. }, ..) => {
                let shown: Vec<&str> = self
                    .column
                    .categories
                    .iter()
                    .take(10)
                    .map(String::as_str)
                    .collect();
                let more = self.column.categories.len().saturating_sub(shown.len());
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                format!("one of {}{more}", shown.join(", "))
            }
        }
    }
}

/// A version's histograms, counted as it serves.
pub struct Histograms {
    sha256: String,
    rows: AtomicU64,
    features: Vec<Counted>,
    scores: Vec<Counted>,
}

impl Histograms {
    /// Empty histograms over the bins of `baseline`, whose file has digest
    /// `sha256`.
    pub fn new(baseline: Baseline, sha256: String) -> Self {
        Self {
            sha256,
            rows: AtomicU64::new(0),
            features: baseline.features.into_iter().map(Counted::new).collect(),
            scores: baseline.scores.into_iter().map(Counted::new).collect(),
        }
    }

    fn side(&self, kind: Kind) -> &[Counted] {
        match kind {
            Kind::Feature => &self.features,
            Kind::Score => &self.scores,
        }
    }

    /// The columns of one kind, in order.
    pub fn columns(&self, kind: Kind) -> impl Iterator<Item = &Column> {
        self.side(kind).iter().map(|c| &c.column)
    }

    /// Counts one value of column `i`; whether it is outside what training
    /// saw. A missing number (NaN) is counted apart, never in a bin.
    pub fn count(&self, kind: Kind, i: usize, value: Value<'_>) -> bool {
        self.side(kind).get(i).is_some_and(|c| c.count(value))
    }

    /// The refusal of `value` at `row` for feature `i`, when it is outside
    /// what training saw; counts nothing.
    pub fn refuse(&self, i: usize, row: usize, value: Value<'_>) -> Option<Refusal> {
        let counted = self.features.get(i)?;
        if !counted.outside(value) {
            return None;
        }
        let mut shown = match value {
            Value::Number(n) => n.to_string(),
            Value::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
        };
        if let Some((cut, _)) = shown.char_indices().nth(64) {
            shown.truncate(cut);
        }
        Some(Refusal {
            feature: counted.column.name.clone(),
            input: counted.column.tensor.clone(),
            row,
            index: counted.column.index,
            value: shown,
            expected: counted.expected(),
        })
    }

    /// Counts `n` rows scored.
    pub fn add_rows(&self, n: u64) {
        self.rows.fetch_add(n, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            baseline_sha256: self.sha256.clone(),
            rows: self.rows.load(Ordering::Relaxed),
            features: self.features.iter().map(Counted::snapshot).collect(),
            scores: self.scores.iter().map(Counted::snapshot).collect(),
        }
    }
}

/// What a server shows of its histograms (`GET /drift` on its admin port).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// The digest of the baseline the bins come from.
    pub baseline_sha256: String,
    /// Rows scored since the server started.
    pub rows: u64,
    /// The features, in the baseline's order.
    pub features: Vec<SnapshotColumn>,
    /// The scores, in the baseline's order.
    pub scores: Vec<SnapshotColumn>,
}

/// One column's counts since the server started.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotColumn {
    /// The column's name.
    pub name: String,
    /// The baseline's proportions.
    pub expected: Vec<f64>,
    /// Rows per bin.
    pub counts: Vec<u64>,
    /// Rows where the value was missing (NaN).
    pub missing: u64,
    /// Rows where the value was outside what training saw.
    pub outside: u64,
}

impl Snapshot {
    /// Checks a snapshot read from a server (which the operator does not
    /// trust) against the format's bounds.
    pub fn validate(&self) -> Result<(), Error> {
        let columns = [&self.features, &self.scores];
        if columns.iter().map(|c| c.len()).sum::<usize>() > 512 {
            return Err(Error::Malformed("more than 512 columns".into()));
        }
        for column in columns.into_iter().flatten() {
            let fail = |reason: &str| Error::Column {
                column: column.name.chars().take(63).collect(),
                reason: reason.into(),
            };
            if column.name.is_empty() || column.name.chars().count() > 63 {
                return Err(fail("a name has 1 to 63 characters"));
            }
            if column.counts.is_empty()
                || column.counts.len() > 1001
                || column.counts.len() != column.expected.len()
            {
                return Err(fail("counts and proportions differ in length"));
            }
            if column.expected.iter().any(|p| !p.is_finite() || *p < 0.0) {
                return Err(fail("proportions must be numbers from 0 to 1"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histograms() -> Histograms {
        let baseline = Baseline {
            rows: 100,
            features: vec![
                Column {
                    name: "amount".into(),
                    tensor: "x".into(),
                    edges: vec![10.0, 100.0],
                    proportions: vec![0.2, 0.5, 0.3],
                    min: Some(0.0),
                    max: Some(1000.0),
                    ..Column::default()
                },
                Column {
                    name: "currency".into(),
                    tensor: "c".into(),
                    categories: vec!["EUR".into(), "USD".into()],
                    proportions: vec![0.7, 0.3, 0.0],
                    ..Column::default()
                },
            ],
            scores: vec![],
        };
        Histograms::new(baseline, "abc".into())
    }

    #[test]
    fn values_are_counted_in_their_bins_missing_apart_outside_flagged() {
        let h = histograms();
        for v in [1.0, 50.0, 60.0, 5000.0, f64::NAN] {
            h.count(Kind::Feature, 0, Value::Number(v));
        }
        assert!(h.count(Kind::Feature, 1, Value::Text(b"GBP")));
        assert!(!h.count(Kind::Feature, 1, Value::Text(b"EUR")));
        assert!(
            !h.count(Kind::Feature, 7, Value::Number(1.0)),
            "no such column"
        );
        h.add_rows(5);
        let s = h.snapshot();
        assert_eq!(s.rows, 5);
        assert_eq!(s.features[0].counts, vec![1, 2, 1]);
        assert_eq!(s.features[0].missing, 1);
        assert_eq!(s.features[0].outside, 1);
        assert_eq!(s.features[1].counts, vec![1, 0, 1]);
        assert_eq!(s.features[1].outside, 1);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn a_refusal_names_the_feature_the_position_and_what_training_saw() {
        let h = histograms();
        assert_eq!(h.refuse(0, 3, Value::Number(50.0)), None);
        assert_eq!(
            h.refuse(0, 3, Value::Number(f64::NAN)),
            None,
            "missing keeps its meaning"
        );
        let r = h.refuse(0, 3, Value::Number(1500.0)).unwrap();
        assert_eq!((r.feature.as_str(), r.row, r.index), ("amount", 3, 0));
        assert_eq!(
            (r.value.as_str(), r.expected.as_str()),
            ("1500", "from 0 to 1000")
        );
        let r = h.refuse(1, 0, Value::Text(b"GBP")).unwrap();
        assert_eq!(r.expected, "one of EUR, USD");
        let long = vec![b'x'; 500];
        assert!(
            h.refuse(1, 0, Value::Text(&long))
                .unwrap()
                .value
                .chars()
                .count()
                <= 64
        );
        assert!(
            h.snapshot()
                .features
                .iter()
                .all(|c| c.counts.iter().sum::<u64>() == 0)
        );
    }

    #[test]
    fn a_lying_snapshot_is_refused() {
        let mut s = histograms().snapshot();
        s.features[0].counts.push(1);
        assert!(s.validate().is_err());
        let mut s = histograms().snapshot();
        s.scores = vec![
            SnapshotColumn {
                name: "x".repeat(100),
                ..Default::default()
            };
            1
        ];
        assert!(s.validate().is_err());
        let mut s = histograms().snapshot();
        s.features[1].expected[0] = f64::INFINITY;
        assert!(s.validate().is_err());
    }
}
