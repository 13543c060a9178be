//! `LinearClassifier`: one score per class from coefficients and
//! intercepts, with onnxruntime's conventions for one coefficient row.

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::Kind;
use crate::onnx_ml::forest::PostTransform;
use crate::onnx_ml::shared::Labels;

/// LinearClassifier's parameters, borrowed from its [`Kind`].
pub(super) struct LinearModel<'a> {
    pub(super) coefficients: &'a [f32],
    pub(super) intercepts: &'a [f32],
    pub(super) rows: usize,
    pub(super) labels: &'a Labels,
    pub(super) post: PostTransform,
}

impl LinearModel<'_> {
    /// Labels and scores for the rows of `x`, whose shape is `shape`.
    pub(super) fn eval(&self, x: &[f32], shape: &[usize]) -> TractResult<TVec<TValue>> {
        let width = shape.last().copied().unwrap_or(1).max(1);
        let features = self.coefficients.len() / self.rows;
        if width != features {
            bail!(
                "the linear model has {features} coefficients per class but rows have {width} features"
            );
        }
        let n_rows = shape.first().copied().unwrap_or(0);
        let columns = Kind::linear_columns(self.rows, self.labels);
        let mut scores = Vec::with_capacity(n_rows * columns);
        let mut winners = Vec::with_capacity(n_rows);
        for row in x.chunks_exact(width) {
            let (winner, s) = self.score(row, features, columns);
            winners.push(winner);
            scores.extend(s.into_iter().map(|v| v as f32));
        }
        let label = self.labels.tensor(&winners)?;
        Ok(tvec!(
            label.into_tvalue(),
            Tensor::from_shape(&[n_rows, columns], &scores)?.into_tvalue()
        ))
    }

    /// The winning class and the scores of one row.
    fn score(&self, row: &[f32], features: usize, columns: usize) -> (usize, Vec<f64>) {
        let mut s: Vec<f64> = (0..self.rows)
            .map(|c| {
                let w = &self.coefficients[c * features..(c + 1) * features];
                f64::from(self.intercepts[c])
                    + w.iter()
                        .zip(row)
                        .map(|(a, b)| f64::from(*a) * f64::from(*b))
                        .sum::<f64>()
            })
            .collect();
        if columns == 2 && self.rows == 1 {
            // One coefficient row: the positive class's score.
            let positive = s[0];
            let scores = match self.post {
                PostTransform::Logistic => {
                    let p = crate::onnx_ml::forest::logistic(positive);
                    vec![1.0 - p, p]
                }
                _ => vec![-positive, positive],
            };
            (usize::from(positive > 0.0), scores)
        } else {
            let winner = (0..s.len()).fold(0, |best, k| if s[k] > s[best] { k } else { best });
            self.post.apply(&mut s);
            (winner, s)
        }
    }
}
