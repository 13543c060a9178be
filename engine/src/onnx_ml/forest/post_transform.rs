//! What is applied to a tree ensemble's final scores (`post_transform`):
//! logistic, softmax (with or without zeros kept) and probit.

/// The function applied to final scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostTransform {
    /// Scores as they are.
    None,
    /// 1 / (1 + e^-x), per score.
    Logistic,
    /// Softmax over a row.
    Softmax,
    /// Softmax over a row, leaving zeros at zero.
    SoftmaxZero,
    /// The probit (inverse normal CDF), per score.
    Probit,
}

impl PostTransform {
    /// Parses `post_transform`.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "NONE" => Self::None,
            "LOGISTIC" => Self::Logistic,
            "SOFTMAX" => Self::Softmax,
            "SOFTMAX_ZERO" => Self::SoftmaxZero,
            "PROBIT" => Self::Probit,
            other => return Err(format!("unknown post_transform {other:?}")),
        })
    }

    /// Applies the transform to one row of scores.
    pub fn apply(self, row: &mut [f64]) {
        match self {
            Self::None => {}
            Self::Logistic => row.iter_mut().for_each(|x| *x = logistic(*x)),
            Self::Probit => row.iter_mut().for_each(|x| *x = probit(*x)),
            Self::Softmax | Self::SoftmaxZero => {
                let zero = self == Self::SoftmaxZero;
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for x in row.iter_mut() {
                    *x = if zero && *x == 0.0 {
                        0.0
                    } else {
                        (*x - max).exp()
                    };
                    sum += *x;
                }
                if sum > 0.0 {
                    row.iter_mut().for_each(|x| *x /= sum);
                }
            }
        }
    }
}

/// 1 / (1 + e^-x).
pub fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The probit function, sqrt(2) * erfinv(2p - 1).
fn probit(p: f64) -> f64 {
    std::f64::consts::SQRT_2 * erfinv(2.0 * p - 1.0)
}

/// Inverse error function (Giles' single-precision approximation, as
/// onnxruntime uses).
fn erfinv(x: f64) -> f64 {
    let w = -((1.0 - x) * (1.0 + x)).ln();
    if w < 5.0 {
        let w = w - 2.5;
        let mut p = 2.810_226_36e-08;
        for c in [
            3.432_739_39e-07,
            -3.523_387_7e-06,
            -4.391_506_54e-06,
            0.000_218_580_87,
            -0.001_253_725_03,
            -0.004_177_681_64,
            0.246_640_727,
            1.501_409_41,
        ] {
            p = c + p * w;
        }
        p * x
    } else {
        let w = w.sqrt() - 3.0;
        let mut p = -0.000_200_214_257;
        for c in [
            0.000_100_950_558,
            0.001_349_343_22,
            -0.003_673_428_44,
            0.005_739_507_73,
            -0.007_622_461_3,
            0.009_438_870_47,
            1.001_674_06,
            2.832_976_82,
        ] {
            p = c + p * w;
        }
        p * x
    }
}
