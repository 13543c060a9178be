//! One node of the flat layout: 12 bytes when every threshold and leaf value
//! of the forest is exactly a 32-bit float (models written with float
//! attributes: nearly all), 16 otherwise, where the ONNX attributes hold
//! about 40 bytes a node. A branch's true child is the node after it, so it
//! stores only the other.

use super::Mode;

/// A threshold or leaf value as a forest stores it; compared and summed as
/// f64 either way, so the narrow form loses nothing.
pub(super) trait Stored: Copy + Into<f64> + Send + Sync + std::fmt::Debug {
    /// `v` in this form, when it is exact.
    fn exactly(v: f64) -> Option<Self>;
}

impl Stored for f32 {
    fn exactly(v: f64) -> Option<Self> {
        let narrow = v as f32;
        (f64::from(narrow) == v || v.is_nan()).then_some(narrow)
    }
}

impl Stored for f64 {
    fn exactly(v: f64) -> Option<Self> {
        Some(v)
    }
}

/// Bits of [`Node::packed`]: a leaf's flag…
const LEAF: u32 = 1 << 31;
/// …a branch's NaN-goes-true flag…
const MISSING_TRUE: u32 = 1 << 30;
/// …its mode's code (3 bits)…
const MODE_SHIFT: u32 = 27;
/// …and its feature, or a leaf's first weight.
const LOW: u32 = (1 << MODE_SHIFT) - 1;

/// Highest feature index a branch can test.
pub(super) const MAX_FEATURE: usize = LOW as usize;
/// Most leaf weights a forest can list.
pub(super) const MAX_WEIGHTS: usize = (MISSING_TRUE - 1) as usize;

const MODES: [Mode; 7] = [
    Mode::Leq,
    Mode::Lt,
    Mode::Gte,
    Mode::Gt,
    Mode::Eq,
    Mode::Neq,
    Mode::Member,
];

/// One node.
#[derive(Clone, Copy, Debug)]
pub(super) struct Node<V> {
    /// A branch's threshold (a `BRANCH_MEMBER` node's set index), or the one
    /// value a scalar leaf gives.
    pub value: V,
    /// A branch's false child, or one past a leaf's last weight.
    pub other: u32,
    /// See the bit constants above.
    packed: u32,
}

impl<V: Stored> Node<V> {
    /// A branch testing `feature` (at most [`MAX_FEATURE`]) with `mode`
    /// against `threshold`; its false child is set later.
    pub fn branch(feature: usize, mode: Mode, missing_true: bool, threshold: V) -> Self {
        let code = MODES.iter().position(|m| *m == mode).unwrap_or(0) as u32;
        Self {
            value: threshold,
            other: 0,
            packed: (feature as u32 & LOW)
                | (code << MODE_SHIFT)
                | if missing_true { MISSING_TRUE } else { 0 },
        }
    }

    /// A leaf giving weights `first..end` (at most [`MAX_WEIGHTS`]), or
    /// `value` in itself when the forest's leaves are scalar.
    pub fn leaf(first: usize, end: usize, value: V) -> Self {
        Self {
            value,
            other: end as u32,
            packed: LEAF | first as u32,
        }
    }

    #[inline(always)]
    pub fn is_branch(&self) -> bool {
        self.packed & LEAF == 0
    }

    #[inline(always)]
    pub fn feature(&self) -> usize {
        (self.packed & LOW) as usize
    }

    #[inline(always)]
    pub fn missing_true(&self) -> bool {
        self.packed & MISSING_TRUE != 0
    }

    /// A branch's mode (`None` for leaves).
    #[inline(always)]
    pub fn mode(&self) -> Option<Mode> {
        self.is_branch()
            .then(|| MODES[((self.packed >> MODE_SHIFT) & 0b111) as usize % MODES.len()])
    }

    /// A leaf's weights, as a range of the forest's list.
    #[inline(always)]
    pub fn weights(&self) -> std::ops::Range<usize> {
        (self.packed & !LEAF) as usize..self.other as usize
    }

    /// A branch's threshold, or a scalar leaf's value.
    #[inline(always)]
    pub fn threshold(&self) -> f64 {
        self.value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_small_and_keep_what_they_are_given() {
        assert_eq!(std::mem::size_of::<Node<f32>>(), 12);
        assert_eq!(std::mem::size_of::<Node<f64>>(), 16);
        for (i, mode) in MODES.iter().enumerate() {
            let n = Node::branch(MAX_FEATURE - i, *mode, i % 2 == 0, 0.5f32);
            assert!(n.is_branch());
            assert_eq!(
                (n.feature(), n.mode(), n.missing_true(), n.threshold()),
                (MAX_FEATURE - i, Some(*mode), i % 2 == 0, 0.5)
            );
        }
        let leaf = Node::leaf(MAX_WEIGHTS - 2, MAX_WEIGHTS, 0.25f64);
        assert!(!leaf.is_branch() && leaf.mode().is_none());
        assert_eq!(leaf.weights(), MAX_WEIGHTS - 2..MAX_WEIGHTS);
        assert_eq!(leaf.threshold(), 0.25);
    }

    #[test]
    fn only_exact_values_are_narrowed() {
        assert_eq!(f32::exactly(0.5), Some(0.5));
        assert_eq!(f32::exactly(f64::from(0.1f32)), Some(0.1f32));
        assert_eq!(f32::exactly(0.1), None);
        assert_eq!(f32::exactly(1e300), None);
        assert!(f32::exactly(f64::NAN).is_some_and(f32::is_nan));
        assert_eq!(f64::exactly(0.1), Some(0.1));
    }
}
