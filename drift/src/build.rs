//! Building a baseline from a sample of rows, as the platform does when a
//! trainer wrote none: codes (whole numbers, at most [`MAX_CODES`]
//! distinct) become categories, other numbers deciles, each edge halfway
//! between a decile and the next distinct value so that tied values never
//! straddle an edge.

use crate::Column;

/// The most distinct whole numbers read as codes rather than numbers.
pub const MAX_CODES: usize = 12;
/// Bins of a numeric column.
const BINS: usize = 10;

impl Column {
    /// The column `name` (at `index` of `tensor`) describing `values`
    /// (missing values, NaN, left out); `None` without any value.
    pub fn from_values(name: &str, tensor: &str, index: usize, values: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        let mut distinct = sorted.clone();
        distinct.dedup();
        let column = Column {
            name: name.to_owned(),
            tensor: tensor.to_owned(),
            index,
            ..Column::default()
        };
        let codes = distinct.len() <= MAX_CODES
            && distinct.iter().all(|v| v.fract() == 0.0 && v.abs() < 1e15);
        let mut edges: Vec<f64> = if codes {
            Vec::new()
        } else {
            (1..BINS)
                .filter_map(|q| {
                    let decile = quantile(&sorted, q as f64 / BINS as f64);
                    let above = distinct.partition_point(|d| *d <= decile);
                    distinct.get(above).map(|next| (decile + next) / 2.0)
                })
                .collect()
        };
        edges.dedup();
        // Codes, and the few values no decile separates (a constant), are
        // categories.
        if codes || (edges.is_empty() && distinct.len() <= MAX_CODES) {
            let mut proportions: Vec<f64> = distinct
                .iter()
                .map(|d| {
                    let count =
                        sorted.partition_point(|v| v <= d) - sorted.partition_point(|v| v < d);
                    count as f64 / n
                })
                .collect();
            proportions.push(0.0);
            return Some(Column {
                categories: distinct.iter().map(|d| format!("{d}")).collect(),
                proportions,
                ..column
            });
        }
        let mut counts = vec![0u64; edges.len() + 1];
        for v in &sorted {
            counts[edges.partition_point(|e| e <= v)] += 1;
        }
        Some(Column {
            proportions: counts.iter().map(|c| *c as f64 / n).collect(),
            min: sorted.first().copied(),
            max: sorted.last().copied(),
            edges,
            ..column
        })
    }
}

/// The `q` quantile of `sorted`, interpolated linearly between ranks
/// (NumPy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = q * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    let fraction = rank - low as f64;
    sorted[low] + (sorted[high] - sorted[low]) * fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_deciles_between_distinct_values() {
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        let column = Column::from_values("amount", "x", 0, &values).unwrap();
        assert_eq!(column.edges.len(), 9);
        // The first decile of 0..999 is 99.9; the next value above is 100.
        assert!((column.edges[0] - 99.95).abs() < 1e-9, "{:?}", column.edges);
        assert!(
            column.proportions.iter().all(|p| (p - 0.1).abs() < 1e-9),
            "{:?}",
            column.proportions
        );
        assert_eq!((column.min, column.max), (Some(0.0), Some(999.0)));
        assert!(column.categories.is_empty());
        assert!(
            crate::Baseline {
                rows: 1000,
                features: vec![column],
                scores: vec![]
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn tied_values_stay_together_and_codes_become_categories() {
        // 70 % of the scores are one value: no edge may fall on it.
        let mut values = vec![0.25; 700];
        values.extend((0..300).map(|i| 0.5 + f64::from(i) / 1000.0));
        let column = Column::from_values("p", "probabilities", 1, &values).unwrap();
        assert!(column.edges.iter().all(|e| *e != 0.25));
        assert!(
            (column.proportions[0] - 0.7).abs() < 1e-9,
            "{:?}",
            column.proportions
        );
        let codes = [3.0, 1.0, 1.0, 2.0, f64::NAN];
        let column = Column::from_values("channel", "x", 2, &codes).unwrap();
        assert_eq!(column.categories, ["1", "2", "3"]);
        assert_eq!(column.proportions, [0.5, 0.25, 0.25, 0.0]);
        assert_eq!(Column::from_values("empty", "x", 0, &[f64::NAN]), None);
        let constant = Column::from_values("rate", "x", 3, &[0.5; 10]).unwrap();
        assert_eq!(
            (constant.categories, constant.proportions),
            (vec!["0.5".to_owned()], vec![1.0, 0.0])
        );
    }
}
