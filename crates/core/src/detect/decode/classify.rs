//! Per-tile classification heads: `[N, nc]` logits or probabilities.

use super::{DecodeError, DecodeStats, check_batch};
use ndarray::{ArrayViewD, Ix2};
use serde::{Deserialize, Serialize};

/// Decoder name, as specs and errors spell it.
pub const NAME: &str = "classification";

/// What the head's numbers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Logits of mutually exclusive classes.
    #[default]
    Softmax,
    /// Independent logits per class (multi-label).
    Sigmoid,
    /// Already probabilities.
    None,
}

/// The top class of one tile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScores {
    /// Index into the model's class list.
    pub class_id: u32,
    /// Its probability, 0..=1.
    pub score: f32,
    /// Every class's probability (0..=1), in class order.
    pub probabilities: Vec<f32>,
}

/// Per image: the top class when it clears its threshold, else `None`.
pub fn decode(
    out: ArrayViewD<'_, f32>,
    output: &str,
    batch: usize,
    activation: Activation,
    class_thresholds: &[f32],
    stats: &mut DecodeStats,
) -> Result<Vec<Option<ClassScores>>, DecodeError> {
    let nc = class_thresholds.len();
    let shape = out.shape().to_vec();
    let shape_err = || DecodeError::Shape {
        output: output.into(),
        decoder: NAME,
        expected: format!("[N, {nc}] (one value per class)"),
        found: shape.clone(),
    };
    let out = out.into_dimensionality::<Ix2>().map_err(|_| shape_err())?;
    if out.ncols() != nc || nc == 0 {
        return Err(shape_err());
    }
    check_batch(output, out.nrows(), batch)?;
    let mut result = Vec::with_capacity(batch);
    for row in out.outer_iter() {
        if row.iter().any(|v| !v.is_finite()) {
            stats.non_finite += 1;
            result.push(None);
            continue;
        }
        let probabilities: Vec<f32> = match activation {
            Activation::None => row.to_vec(),
            Activation::Sigmoid => row.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect(),
            Activation::Softmax => {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = row.iter().map(|&v| (v - max).exp()).collect();
                let sum: f32 = e.iter().sum();
                e.into_iter().map(|v| v / sum).collect()
            }
        };
        let (c, &score) =
            probabilities.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("nc > 0 checked above");
        if score >= class_thresholds[c] {
            stats.candidates += 1;
            result.push(Some(ClassScores { class_id: c as u32, score, probabilities }));
        } else {
            result.push(None);
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn softmax_of_known_logits() {
        // softmax([0, ln 3]) = [0.25, 0.75]
        let out = ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![0.0, 3f32.ln()]).unwrap();
        let got =
            decode(out.view(), "logits", 1, Activation::Softmax, &[0.5, 0.5], &mut DecodeStats::default()).unwrap();
        let top = got[0].as_ref().unwrap();
        assert_eq!(top.class_id, 1);
        assert!((top.score - 0.75).abs() < 1e-6);
        assert!((top.probabilities[0] - 0.25).abs() < 1e-6);
    }

    #[test]
    fn sigmoid_and_thresholds() {
        let out = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![0.0, -10.0, 10.0, 0.0]).unwrap();
        let got = decode(out.view(), "o", 2, Activation::Sigmoid, &[0.6, 0.6], &mut DecodeStats::default()).unwrap();
        assert!(got[0].is_none(), "sigmoid(0) = 0.5 is below 0.6");
        assert_eq!(got[1].as_ref().unwrap().class_id, 0);
    }

    #[test]
    fn nan_rows_empty_and_malformed() {
        let mut stats = DecodeStats::default();
        let out = ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![f32::NAN, 1.0]).unwrap();
        assert_eq!(decode(out.view(), "o", 1, Activation::Softmax, &[0.0, 0.0], &mut stats).unwrap(), vec![None]);
        assert_eq!(stats.non_finite, 1);
        let empty = ArrayD::<f32>::zeros(IxDyn(&[0, 2]));
        assert!(decode(empty.view(), "o", 0, Activation::None, &[0.0, 0.0], &mut stats).unwrap().is_empty());
        let wrong = ArrayD::<f32>::zeros(IxDyn(&[1, 3]));
        assert!(matches!(
            decode(wrong.view(), "o", 1, Activation::None, &[0.0, 0.0], &mut stats),
            Err(DecodeError::Shape { .. })
        ));
        let rank3 = ArrayD::<f32>::zeros(IxDyn(&[1, 2, 1]));
        assert!(decode(rank3.view(), "o", 1, Activation::None, &[0.0, 0.0], &mut stats).is_err());
    }
}
