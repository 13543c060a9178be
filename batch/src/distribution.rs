//! A score's distribution by outcome: each distinct score with how many
//! good, bad and unlabelled rows had it. Exact while the distinct scores fit
//! its capacity; past it, scores are rounded to a grid (multiples of 2^-k,
//! coarser as needed), so memory stays bounded whatever the data set's size
//! and the figures are exact up to ties inside one grid step, which the
//! report states (`scoreResolution`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The most distinct scores of a whole version's distribution.
pub const CAPACITY: usize = 1 << 18;
/// The most distinct scores of one segment's.
pub const SEGMENT_CAPACITY: usize = 1 << 10;
/// The finest grid used once the capacity is reached: 2^-30.
const FINEST: i32 = 30;

/// How many rows had one score, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Labelled good.
    pub good: u64,
    /// Labelled bad.
    pub bad: u64,
    /// Without a usable label.
    pub unlabelled: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.good += other.good;
        self.bad += other.bad;
        self.unlabelled += other.unlabelled;
    }

    /// Labelled rows.
    pub fn labelled(&self) -> u64 {
        self.good + self.bad
    }

    /// All rows.
    pub fn all(&self) -> u64 {
        self.labelled() + self.unlabelled
    }
}

/// What a row's label says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Good business.
    Good,
    /// Fraud, default: what the score should rank high.
    Bad,
    /// No usable label.
    Unknown,
}

/// Scores and their tallies; see the module.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Scores are multiples of 2^-grid; `None` while exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grid: Option<i32>,
    /// Each score with its tally.
    #[serde(with = "entries")]
    tallies: HashMap<u64, Tally>,
    /// The most distinct scores kept.
    #[serde(skip, default = "capacity")]
    capacity: usize,
}

fn capacity() -> usize {
    CAPACITY
}

impl Default for Distribution {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl Distribution {
    /// An empty distribution of at most `capacity` distinct scores.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            grid: None,
            tallies: HashMap::new(),
            capacity: capacity.max(2),
        }
    }

    /// Counts one row scoring `score` (finite) with `outcome`.
    pub fn add(&mut self, score: f64, outcome: Outcome) {
        let tally = match outcome {
            Outcome::Good => Tally {
                good: 1,
                ..Tally::default()
            },
            Outcome::Bad => Tally {
                bad: 1,
                ..Tally::default()
            },
            Outcome::Unknown => Tally {
                unlabelled: 1,
                ..Tally::default()
            },
        };
        self.add_tally(score, tally);
        self.fit();
    }

    /// Adds every row of `other`, on the coarser of the two grids.
    pub fn merge(&mut self, other: &Distribution) {
        if let Some(theirs) = other.grid
            && self.grid.is_none_or(|mine| theirs < mine)
        {
            self.regrid(theirs);
        }
        for (&bits, &tally) in &other.tallies {
            self.add_tally(f64::from_bits(bits), tally);
        }
        self.fit();
    }

    /// The grid step scores were rounded to, if they were.
    pub fn resolution(&self) -> Option<f64> {
        self.grid.map(|k| (-f64::from(k)).exp2())
    }

    /// Distinct scores, lowest first.
    pub fn sorted(&self) -> Vec<(f64, Tally)> {
        let mut entries: Vec<(f64, Tally)> = self
            .tallies
            .iter()
            .map(|(&bits, &tally)| (f64::from_bits(bits), tally))
            .collect();
        entries.sort_by(|a, b| a.0.total_cmp(&b.0));
        entries
    }

    fn add_tally(&mut self, score: f64, tally: Tally) {
        let score = match self.grid {
            Some(k) => round_to(score, k),
            None => score,
        };
        // -0.0 and 0.0 are one score.
        let key = (score + 0.0).to_bits();
        self.tallies.entry(key).or_default().add(tally);
    }

    /// Coarsens the grid until the distinct scores fit the capacity.
    fn fit(&mut self) {
        while self.tallies.len() > self.capacity {
            let next = self.grid.map_or(FINEST, |k| k - 2);
            self.regrid(next);
        }
    }

    fn regrid(&mut self, k: i32) {
        self.grid = Some(k);
        let old = std::mem::take(&mut self.tallies);
        for (bits, tally) in old {
            self.add_tally(f64::from_bits(bits), tally);
        }
    }
}

/// `score` rounded to a multiple of 2^-k.
fn round_to(score: f64, k: i32) -> f64 {
    let scale = f64::from(k).exp2();
    (score * scale).round() / scale
}

/// Tallies as a list of `[score, tally]`, lowest score first.
mod entries {
    use std::collections::HashMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Tally;

    pub fn serialize<S: Serializer>(
        tallies: &HashMap<u64, Tally>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(f64, Tally)> = tallies
            .iter()
            .map(|(&bits, &tally)| (f64::from_bits(bits), tally))
            .collect();
        entries.sort_by(|a, b| a.0.total_cmp(&b.0));
        entries.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<HashMap<u64, Tally>, D::Error> {
        let entries: Vec<(f64, Tally)> = Vec::deserialize(deserializer)?;
        let mut tallies: HashMap<u64, Tally> = HashMap::with_capacity(entries.len());
        for (score, tally) in entries.into_iter().filter(|(s, _)| s.is_finite()) {
            tallies
                .entry((score + 0.0).to_bits())
                .or_default()
                .add(tally);
        }
        Ok(tallies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_its_capacity_a_distribution_rounds_to_a_grid_and_keeps_every_row() {
        let mut d = Distribution::with_capacity(100);
        for i in 0..10_000 {
            d.add(f64::from(i) / 10_000.0, Outcome::Good);
        }
        let sorted = d.sorted();
        assert!(sorted.len() <= 100, "{} scores kept", sorted.len());
        assert_eq!(sorted.iter().map(|(_, t)| t.good).sum::<u64>(), 10_000);
        let step = d.resolution().unwrap();
        assert!(sorted.iter().all(|(s, _)| (s / step).fract() == 0.0));
        // Below the capacity it is exact.
        let mut exact = Distribution::with_capacity(100);
        exact.add(0.123_456_789, Outcome::Bad);
        assert_eq!(exact.resolution(), None);
        assert_eq!(exact.sorted()[0].0, 0.123_456_789);
    }

    #[test]
    fn merging_takes_the_coarser_grid_and_survives_json() {
        let mut fine = Distribution::with_capacity(1000);
        let mut coarse = Distribution::with_capacity(10);
        for i in 0..500 {
            fine.add(f64::from(i) / 500.0, Outcome::Bad);
            coarse.add(f64::from(i) / 500.0, Outcome::Good);
        }
        assert_eq!(fine.resolution(), None);
        fine.merge(&coarse);
        assert_eq!(fine.resolution(), coarse.resolution());
        let json = serde_json::to_string(&fine).unwrap();
        let read: Distribution = serde_json::from_str(&json).unwrap();
        assert_eq!(read.sorted(), fine.sorted());
        assert_eq!(read.resolution(), fine.resolution());
    }
}
