//! anomalib 2.x exports: `anomaly_map` `[N, 1, H, W]` (or `[N, H, W]`), `pred_score` `[N]`
//! or `[N, 1]`, and optionally `pred_mask` (bool or float) of the map's shape.

use super::{DecodeError, DecodeStats, ModelOutputs, OutputTensor, check_batch};
use ndarray::{Array2, ArrayViewD, Axis, Ix2};

/// Decoder name, as specs and errors spell it.
pub const NAME: &str = "anomalib";

/// One tile's anomaly output.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyTile {
    /// Per-pixel anomaly score; non-finite pixels are replaced by 0 and counted.
    pub map: Array2<f32>,
    /// Image-level score; `None` when the model gave none or a non-finite one.
    pub score: Option<f32>,
    /// The model's own anomalous-pixel mask, when it has a mask output.
    pub mask: Option<Array2<bool>>,
}

/// Output names of an anomaly model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomalyOutputs {
    /// The per-pixel anomaly map.
    pub map: String,
    /// The per-tile score, if any.
    pub score: Option<String>,
    /// The anomalous-pixel mask, if any.
    pub mask: Option<String>,
}

/// Drops the channel axis of `[N, 1, H, W]`; `[N, H, W]` passes through.
fn per_image_planes<'a, T>(a: ArrayViewD<'a, T>, output: &str, what: &str) -> Result<ArrayViewD<'a, T>, DecodeError> {
    match a.ndim() {
        4 if a.shape()[1] == 1 => Ok(a.index_axis_move(Axis(1), 0)),
        3 => Ok(a),
        _ => Err(DecodeError::Shape {
            output: output.into(),
            decoder: NAME,
            expected: format!("{what} [N, 1, H, W] or [N, H, W]"),
            found: a.shape().to_vec(),
        }),
    }
}

/// Decodes `batch` tiles' anomaly outputs: one map (the map output's resolution, scores
/// as the model gives them) per tile, with its score and mask where the model has them.
pub fn decode(
    outputs: &ModelOutputs,
    names: &AnomalyOutputs,
    batch: usize,
    stats: &mut DecodeStats,
) -> Result<Vec<AnomalyTile>, DecodeError> {
    let maps = per_image_planes(outputs.f32(&names.map)?, &names.map, "anomaly map")?;
    check_batch(&names.map, maps.shape()[0], batch)?;
    let (h, w) = (maps.shape()[1], maps.shape()[2]);

    let scores: Option<Vec<f32>> = match &names.score {
        None => None,
        Some(name) => {
            let s = outputs.f32(name)?;
            let ok = matches!(s.shape(), [n] | [n, 1] if *n == batch);
            if !ok {
                return Err(DecodeError::Shape {
                    output: name.clone(),
                    decoder: NAME,
                    expected: format!("pred_score [{batch}] or [{batch}, 1]"),
                    found: s.shape().to_vec(),
                });
            }
            Some(s.iter().copied().collect())
        }
    };

    let masks: Option<Vec<Array2<bool>>> = match &names.mask {
        None => None,
        Some(name) => {
            let tensor = outputs.get(name).ok_or_else(|| DecodeError::MissingOutput {
                output: name.clone(),
                available: outputs.tensors.iter().map(|(n, _)| n.clone()).collect(),
            })?;
            let planes: Vec<Array2<bool>> = match tensor {
                OutputTensor::Bool(a) => {
                    let p = per_image_planes(a.view(), name, "pred_mask")?;
                    p.outer_iter().map(|m| m.to_owned().into_dimensionality::<Ix2>().expect("rank checked")).collect()
                }
                OutputTensor::F32(a) => {
                    let p = per_image_planes(a.view(), name, "pred_mask")?;
                    p.outer_iter()
                        .map(|m| m.mapv(|v| v > 0.5).into_dimensionality::<Ix2>().expect("rank checked"))
                        .collect()
                }
            };
            if planes.len() != batch || planes.iter().any(|m| m.dim() != (h, w)) {
                return Err(DecodeError::Shape {
                    output: name.clone(),
                    decoder: NAME,
                    expected: format!("pred_mask of the map's shape [{batch}, 1, {h}, {w}]"),
                    found: tensor.shape().to_vec(),
                });
            }
            Some(planes)
        }
    };

    let mut tiles = Vec::with_capacity(batch);
    for (i, m) in maps.outer_iter().enumerate() {
        let mut map = m.to_owned().into_dimensionality::<Ix2>().expect("rank checked");
        let mut bad = 0usize;
        map.mapv_inplace(|v| {
            if v.is_finite() {
                v
            } else {
                bad += 1;
                0.0
            }
        });
        stats.non_finite += bad;
        let score = scores.as_ref().and_then(|s| {
            let v = s[i];
            if v.is_finite() {
                Some(v)
            } else {
                stats.non_finite += 1;
                None
            }
        });
        let mask = masks.as_ref().map(|m| m[i].clone());
        tiles.push(AnomalyTile { map, score, mask });
    }
    Ok(tiles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    fn names(score: bool, mask: bool) -> AnomalyOutputs {
        AnomalyOutputs {
            map: "anomaly_map".into(),
            score: score.then(|| "pred_score".into()),
            mask: mask.then(|| "pred_mask".into()),
        }
    }

    fn outputs(map: ArrayD<f32>, score: Option<ArrayD<f32>>, mask: Option<OutputTensor>) -> ModelOutputs {
        let mut t = vec![("anomaly_map".to_string(), OutputTensor::F32(map.into()))];
        if let Some(s) = score {
            t.push(("pred_score".into(), OutputTensor::F32(s.into())));
        }
        if let Some(m) = mask {
            t.push(("pred_mask".into(), m));
        }
        ModelOutputs { tensors: t }
    }

    #[test]
    fn decodes_map_score_and_bool_mask() {
        let mut map = ArrayD::<f32>::zeros(IxDyn(&[2, 1, 3, 4]));
        map[[1, 0, 2, 3]] = 0.8;
        let score = ArrayD::from_shape_vec(IxDyn(&[2, 1]), vec![0.1, 0.8]).unwrap();
        let mask = OutputTensor::Bool(map.mapv(|v| v > 0.5).into());
        let mut stats = DecodeStats::default();
        let tiles = decode(&outputs(map, Some(score), Some(mask)), &names(true, true), 2, &mut stats).unwrap();
        assert_eq!(tiles.len(), 2);
        assert_eq!(tiles[1].map[[2, 3]], 0.8);
        assert_eq!(tiles[1].score, Some(0.8));
        assert_eq!(tiles[1].mask.as_ref().unwrap().iter().filter(|&&b| b).count(), 1);
        assert_eq!(stats, DecodeStats::default());
    }

    #[test]
    fn nan_pixels_and_scores_are_zeroed_and_counted() {
        let mut map = ArrayD::<f32>::zeros(IxDyn(&[1, 2, 2]));
        map[[0, 0, 0]] = f32::NAN;
        map[[0, 1, 1]] = f32::INFINITY;
        let score = ArrayD::from_shape_vec(IxDyn(&[1]), vec![f32::NAN]).unwrap();
        let mut stats = DecodeStats::default();
        let tiles = decode(&outputs(map, Some(score), None), &names(true, false), 1, &mut stats).unwrap();
        assert_eq!(tiles[0].map.sum(), 0.0);
        assert_eq!(tiles[0].score, None);
        assert_eq!(stats.non_finite, 3);
    }

    #[test]
    fn malformed_outputs_are_typed_errors() {
        let mut stats = DecodeStats::default();
        let two_ch = ArrayD::<f32>::zeros(IxDyn(&[1, 2, 4, 4]));
        let err = decode(&outputs(two_ch, None, None), &names(false, false), 1, &mut stats).unwrap_err();
        assert!(matches!(err, DecodeError::Shape { .. }), "{err}");
        let map = ArrayD::<f32>::zeros(IxDyn(&[1, 1, 4, 4]));
        let bad_score = ArrayD::<f32>::zeros(IxDyn(&[1, 3]));
        assert!(decode(&outputs(map.clone(), Some(bad_score), None), &names(true, false), 1, &mut stats).is_err());
        let bad_mask = OutputTensor::F32(ArrayD::<f32>::zeros(IxDyn(&[1, 1, 2, 2])).into());
        assert!(decode(&outputs(map.clone(), None, Some(bad_mask)), &names(false, true), 1, &mut stats).is_err());
        let err = decode(&outputs(map.clone(), None, None), &names(true, false), 1, &mut stats).unwrap_err();
        assert!(matches!(err, DecodeError::MissingOutput { .. }), "{err}");
        assert!(matches!(
            decode(&outputs(map, None, None), &names(false, false), 3, &mut stats),
            Err(DecodeError::Batch { .. })
        ));
    }

    #[test]
    fn empty_map_is_fine() {
        let map = ArrayD::<f32>::zeros(IxDyn(&[1, 1, 0, 0]));
        let tiles = decode(&outputs(map, None, None), &names(false, false), 1, &mut DecodeStats::default()).unwrap();
        assert_eq!(tiles[0].map.len(), 0);
    }
}
