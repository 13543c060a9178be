//! The stability index of a distribution against its baseline, as model
//! risk teams compute it: the population stability index (PSI) for a score,
//! the characteristic stability index (CSI) for an input feature; the same
//! formula over the same bins.

/// The smallest share a bin is given on either side, so that an empty bin
/// counts as very unlikely rather than making the index infinite.
pub const FLOOR: f64 = 1e-4;

/// `Σ (actual − expected) · ln(actual / expected)` over the bins, with the
/// actual shares taken from `counts` and every share floored at [`FLOOR`];
/// `None` without any count or when the two lengths differ.
pub fn stability(expected: &[f64], counts: &[u64]) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 || expected.len() != counts.len() {
        return None;
    }
    Some(
        expected
            .iter()
            .zip(counts)
            .map(|(e, c)| {
                let a = (*c as f64 / total as f64).max(FLOOR);
                let e = e.max(FLOOR);
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_shares_are_stable_and_a_shift_is_not() {
        assert_eq!(stability(&[0.5, 0.5], &[50, 50]), Some(0.0));
        // Worked by hand: (0.8-0.5)ln(1.6) + (0.2-0.5)ln(0.4).
        let psi = stability(&[0.5, 0.5], &[80, 20]).unwrap();
        let by_hand = 0.3 * 1.6f64.ln() + (-0.3) * 0.4f64.ln();
        assert!((psi - by_hand).abs() < 1e-12, "{psi} vs {by_hand}");
    }

    #[test]
    fn empty_bins_are_floored_not_infinite() {
        let psi = stability(&[0.0, 1.0], &[10, 0]).unwrap();
        let by_hand = (1.0 - FLOOR) * (1.0 / FLOOR).ln() + (FLOOR - 1.0) * (FLOOR / 1.0f64).ln();
        assert!((psi - by_hand).abs() < 1e-9, "{psi} vs {by_hand}");
        assert!(psi.is_finite());
    }

    #[test]
    fn no_counts_or_other_bins_give_nothing() {
        assert_eq!(stability(&[0.5, 0.5], &[0, 0]), None);
        assert_eq!(stability(&[0.5, 0.5], &[1, 2, 3]), None);
    }
}
