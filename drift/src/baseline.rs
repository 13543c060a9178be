//! A version's baseline: `baseline.json` beside its artifact, as the
//! trainer wrote it. Read once, bounded and checked, by the validation Job
//! (which refuses a version whose baseline breaks the format) and by each
//! server that serves the version.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::Error;

/// The largest `baseline.json` read.
pub const MAX_BASELINE_BYTES: usize = 1024 * 1024;
/// Most columns (features and scores together).
const MAX_COLUMNS: usize = 512;
/// Most bins of a numeric column (edges + 1).
const MAX_BINS: usize = 100;
/// Most categories of a categorical column.
const MAX_CATEGORIES: usize = 1000;
/// Longest column name, as it is a metric label.
const MAX_NAME: usize = 63;
/// Longest category.
const MAX_CATEGORY: usize = 256;
/// How far the proportions may sum from 1.
const SUM_TOLERANCE: f64 = 1e-3;

/// The training distribution of a version's inputs and scores.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Baseline {
    /// Rows the proportions were counted on.
    pub rows: u64,
    /// One column per input feature watched.
    #[serde(default)]
    pub features: Vec<Column>,
    /// One column per score watched (an output and a position in it); the
    /// first is the score whose index is the PSI.
    #[serde(default)]
    pub scores: Vec<Column>,
}

/// One feature or score: where it is in the model's tensors, its bins and
/// the share of training rows in each.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Column {
    /// Its name, as status, metrics and errors show it.
    pub name: String,
    /// The input (for a feature) or output (for a score) it is read from.
    pub tensor: String,
    /// Its position in each row of that tensor (0 for a one-value tensor).
    #[serde(default)]
    pub index: usize,
    /// Numbers: the bin edges, ascending; bin `i` holds the values `v` with
    /// `edges[i-1] <= v < edges[i]` (NumPy's `searchsorted(edges, v,
    /// side="right")`), so k edges make k + 1 bins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<f64>,
    /// Codes and strings: the known values; one bin each plus a last bin
    /// for any other value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// The share of training rows in each bin, summing to 1.
    pub proportions: Vec<f64>,
    /// Numbers: the smallest value seen in training (the contract's low end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Numbers: the largest value seen in training (the contract's high end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// A tensor of the model's signature, as a baseline is checked against it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tensor<'a> {
    /// Its name.
    pub name: &'a str,
    /// Values per row, when the signature fixes it.
    pub width: Option<usize>,
    /// Whether it holds strings (`BYTES`).
    pub text: bool,
}

/// A column's bins, ready to place values.
#[derive(Clone, Debug, PartialEq)]
pub enum Bins {
    /// Bin edges.
    Numeric(Vec<f64>),
    /// Known values and the bin of each; any other value goes to bin `other`.
    Categorical {
        /// Numeric categories, sorted by value.
        numbers: Vec<(f64, usize)>,
        /// Categories as bytes.
        texts: HashMap<Vec<u8>, usize>,
        /// The bin of other values (the number of categories).
        other: usize,
    },
}

impl Bins {
    /// The bin of a number.
    pub fn number(&self, value: f64) -> usize {
        match self {
            Self::Numeric(edges) => edges.partition_point(|e| *e <= value),
            Self::Categorical { numbers, other, .. } => numbers
                .binary_search_by(|(n, _)| n.total_cmp(&value))
                .map_or(*other, |i| numbers[i].1),
        }
    }

    /// The bin of a string; a numeric column puts every string in its last bin.
    pub fn text(&self, value: &[u8]) -> usize {
        match self {
            Self::Numeric(edges) => edges.len(),
            Self::Categorical { texts, other, .. } => texts.get(value).copied().unwrap_or(*other),
        }
    }
}

impl Column {
    /// Its bins.
    pub fn bins(&self) -> Bins {
        if self.categories.is_empty() {
            return Bins::Numeric(self.edges.clone());
        }
        let mut numbers: Vec<(f64, usize)> = self
            .categories
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((c.trim().parse::<f64>().ok()?, i)))
            .collect();
        numbers.sort_by(|a, b| a.0.total_cmp(&b.0));
        Bins::Categorical {
            numbers,
            texts: self
                .categories
                .iter()
                .enumerate()
                .map(|(i, c)| (c.as_bytes().to_vec(), i))
                .collect(),
            other: self.categories.len(),
        }
    }

    /// Whether a number is outside what training saw: below `min`, above
    /// `max`, or not a known category.
    pub fn outside(&self, bins: &Bins, value: f64) -> bool {
        match bins {
            Bins::Numeric(_) => {
                self.min.is_some_and(|m| value < m) || self.max.is_some_and(|m| value > m)
            }
            Bins::Categorical { other, .. } => bins.number(value) == *other,
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.chars().count() > MAX_NAME {
            return Err(format!("a name has 1 to {MAX_NAME} characters"));
        }
        let bins = match (self.edges.is_empty(), self.categories.is_empty()) {
            (false, false) => return Err("give edges or categories, not both".into()),
            (true, true) => return Err("give edges (numbers) or categories".into()),
            (false, true) => {
                if self.edges.len() >= MAX_BINS {
                    return Err(format!("at most {} edges", MAX_BINS - 1));
                }
                if self.edges.iter().any(|e| !e.is_finite()) {
                    return Err("edges must be finite numbers".into());
                }
                if self.edges.windows(2).any(|w| w[0] >= w[1]) {
                    return Err("edges must be strictly ascending".into());
                }
                self.edges.len() + 1
            }
            (true, false) => {
                if self.categories.len() > MAX_CATEGORIES {
                    return Err(format!("at most {MAX_CATEGORIES} categories"));
                }
                if self.categories.iter().any(|c| c.len() > MAX_CATEGORY) {
                    return Err(format!("a category has at most {MAX_CATEGORY} bytes"));
                }
                let distinct: BTreeSet<&str> = self.categories.iter().map(String::as_str).collect();
                if distinct.len() != self.categories.len() {
                    return Err("categories must be distinct".into());
                }
                if self.min.is_some() || self.max.is_some() {
                    return Err("min and max are for numbers, not categories".into());
                }
                self.categories.len() + 1
            }
        };
        if self.proportions.len() != bins {
            return Err(format!(
                "{} proportions for {bins} bins (edges + 1, or categories + 1 for other values)",
                self.proportions.len()
            ));
        }
        if self.proportions.iter().any(|p| !p.is_finite() || *p < 0.0) {
            return Err("proportions must be numbers from 0 to 1".into());
        }
        let sum: f64 = self.proportions.iter().sum();
        if (sum - 1.0).abs() > SUM_TOLERANCE {
            return Err(format!("proportions sum to {sum}, not 1"));
        }
        match (self.min, self.max) {
            (Some(min), Some(max)) if !(min.is_finite() && max.is_finite() && min <= max) => Err(
                format!("min {min} and max {max} must be finite with min <= max"),
            ),
            _ => Ok(()),
        }
    }
}

impl Baseline {
    /// Parses and checks `baseline.json`.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_BASELINE_BYTES {
            return Err(Error::Malformed(format!(
                "{} bytes, more than the {MAX_BASELINE_BYTES} read",
                bytes.len()
            )));
        }
        let baseline: Baseline =
            serde_json::from_slice(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
        baseline.validate()?;
        Ok(baseline)
    }

    /// Checks the format's rules.
    pub fn validate(&self) -> Result<(), Error> {
        if self.features.len() + self.scores.len() > MAX_COLUMNS {
            return Err(Error::Malformed(format!("more than {MAX_COLUMNS} columns")));
        }
        if self.features.is_empty() && self.scores.is_empty() {
            return Err(Error::Malformed("no features and no scores".into()));
        }
        for columns in [&self.features, &self.scores] {
            let mut names = BTreeSet::new();
            for column in columns {
                column.check().map_err(|reason| Error::Column {
                    column: column.name.clone(),
                    reason,
                })?;
                if !names.insert(column.name.as_str()) {
                    return Err(Error::Column {
                        column: column.name.clone(),
                        reason: "the name is used twice".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks that every column is in the model's signature: features in
    /// `inputs`, scores in `outputs`, at a position the tensor has, with
    /// categories for string tensors.
    pub fn check(&self, inputs: &[Tensor<'_>], outputs: &[Tensor<'_>]) -> Result<(), Error> {
        for (columns, tensors, what) in [
            (&self.features, inputs, "input"),
            (&self.scores, outputs, "output"),
        ] {
            for column in columns {
                let fail = |reason: String| Error::Column {
                    column: column.name.clone(),
                    reason,
                };
                let Some(tensor) = tensors.iter().find(|t| t.name == column.tensor) else {
                    let names: Vec<&str> = tensors.iter().map(|t| t.name).collect();
                    return Err(fail(format!(
                        "the model has no {what} {:?} (its {what}s: {})",
                        column.tensor,
                        names.join(", ")
                    )));
                };
                if let Some(width) = tensor.width
                    && column.index >= width
                {
                    return Err(fail(format!(
                        "index {} is past the {width} values of a row of {what} {:?}",
                        column.index, column.tensor
                    )));
                }
                if tensor.text && column.categories.is_empty() {
                    return Err(fail(format!(
                        "{what} {:?} holds strings: give categories, not edges",
                        column.tensor
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric() -> Column {
        Column {
            name: "amount".into(),
            tensor: "x".into(),
            index: 0,
            edges: vec![10.0, 100.0],
            proportions: vec![0.2, 0.5, 0.3],
            min: Some(0.0),
            max: Some(5000.0),
            ..Column::default()
        }
    }

    fn categorical() -> Column {
        Column {
            name: "mcc".into(),
            tensor: "x".into(),
            index: 1,
            categories: vec!["5411".into(), "7995".into()],
            proportions: vec![0.6, 0.3, 0.1],
            ..Column::default()
        }
    }

    #[test]
    fn numbers_fall_in_bins_like_numpy_searchsorted_right() {
        let bins = numeric().bins();
        for (value, bin) in [
            (-1.0, 0),
            (9.99, 0),
            (10.0, 1),
            (99.0, 1),
            (100.0, 2),
            (1e9, 2),
        ] {
            assert_eq!(bins.number(value), bin, "{value}");
        }
        assert!(numeric().outside(&bins, 5000.5));
        assert!(numeric().outside(&bins, -0.1));
        assert!(!numeric().outside(&bins, 5000.0));
    }

    #[test]
    fn categories_match_codes_and_strings_and_the_rest_is_other() {
        let column = categorical();
        let bins = column.bins();
        assert_eq!(bins.number(5411.0), 0);
        assert_eq!(bins.number(7995.0), 1);
        assert_eq!(bins.number(1234.0), 2);
        assert_eq!(bins.text(b"7995"), 1);
        assert_eq!(bins.text(b"EUR"), 2);
        assert!(column.outside(&bins, 1234.0));
        assert!(!column.outside(&bins, 5411.0));
    }

    #[test]
    fn each_broken_rule_names_the_column_and_the_rule() {
        let cases: Vec<(Column, &str)> = vec![
            (
                Column {
                    edges: vec![5.0, 5.0],
                    ..numeric()
                },
                "strictly ascending",
            ),
            (
                Column {
                    edges: vec![f64::NAN, 5.0],
                    ..numeric()
                },
                "finite",
            ),
            (
                Column {
                    proportions: vec![0.5, 0.5],
                    ..numeric()
                },
                "2 proportions for 3 bins",
            ),
            (
                Column {
                    proportions: vec![0.5, 0.5, 0.5],
                    ..numeric()
                },
                "sum to 1.5",
            ),
            (
                Column {
                    proportions: vec![-0.1, 0.6, 0.5],
                    ..numeric()
                },
                "from 0 to 1",
            ),
            (
                Column {
                    categories: vec!["a".into()],
                    ..numeric()
                },
                "not both",
            ),
            (
                Column {
                    edges: vec![],
                    ..numeric()
                },
                "give edges",
            ),
            (
                Column {
                    min: Some(10.0),
                    max: Some(1.0),
                    ..numeric()
                },
                "min <= max",
            ),
            (
                Column {
                    min: Some(1.0),
                    ..categorical()
                },
                "for numbers",
            ),
            (
                Column {
                    categories: vec!["a".into(), "a".into()],
                    ..categorical()
                },
                "distinct",
            ),
            (
                Column {
                    name: "n".repeat(64),
                    ..numeric()
                },
                "1 to 63",
            ),
        ];
        for (column, expected) in cases {
            let baseline = Baseline {
                rows: 10,
                features: vec![column],
                scores: vec![],
            };
            let err = baseline.validate().expect_err(expected).to_string();
            assert!(err.contains(expected), "{err} should say {expected}");
        }
        let twice = Baseline {
            rows: 1,
            features: vec![numeric(), numeric()],
            scores: vec![],
        };
        assert!(
            twice
                .validate()
                .unwrap_err()
                .to_string()
                .contains("used twice")
        );
    }

    #[test]
    fn parse_refuses_unknown_fields_huge_files_and_empty_baselines() {
        let ok = serde_json::to_vec(&Baseline {
            rows: 3,
            features: vec![numeric(), categorical()],
            scores: vec![],
        })
        .unwrap();
        assert!(Baseline::parse(&ok).is_ok());
        assert!(Baseline::parse(br#"{"rows":1,"features":[],"extra":1}"#).is_err());
        assert!(matches!(
            Baseline::parse(br#"{"rows":1}"#),
            Err(Error::Malformed(m)) if m.contains("no features")
        ));
        let huge = vec![b' '; MAX_BASELINE_BYTES + 1];
        assert!(
            matches!(Baseline::parse(&huge), Err(Error::Malformed(m)) if m.contains("more than"))
        );
    }

    #[test]
    fn columns_must_exist_in_the_signature() {
        let baseline = Baseline {
            rows: 1,
            features: vec![numeric(), categorical()],
            scores: vec![Column {
                name: "score".into(),
                tensor: "probabilities".into(),
                index: 1,
                ..numeric()
            }],
        };
        let x = Tensor {
            name: "x",
            width: Some(2),
            text: false,
        };
        let probabilities = Tensor {
            name: "probabilities",
            width: Some(2),
            text: false,
        };
        assert_eq!(baseline.check(&[x], &[probabilities]), Ok(()));
        let narrow = Tensor {
            width: Some(1),
            ..x
        };
        let err = baseline
            .check(&[narrow], &[probabilities])
            .unwrap_err()
            .to_string();
        assert!(err.contains("index 1 is past the 1 values"), "{err}");
        let err = baseline
            .check(
                &[x],
                &[Tensor {
                    name: "label",
                    ..probabilities
                }],
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no output \"probabilities\" (its outputs: label)"),
            "{err}"
        );
        let text = Tensor { text: true, ..x };
        let err = baseline
            .check(&[text], &[probabilities])
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds strings"), "{err}");
    }
}
