//! YOLOv8 / YOLO11 heads: `[N, 4 + nc, A]`, rows `cx, cy, w, h` then one score per class,
//! no objectness. Needs NMS.

use super::{BoxParams, DecodeError, DecodeStats, MAX_SCORE, best_class, check_batch, nms_per_image, view3};
use crate::detect::geometry::{BoxXyxy, Detection};
use ndarray::ArrayViewD;

pub const NAME: &str = "yolov8";

pub fn decode(
    out: ArrayViewD<'_, f32>,
    output: &str,
    batch: usize,
    params: &BoxParams,
    stats: &mut DecodeStats,
) -> Result<Vec<Vec<Detection>>, DecodeError> {
    let nc = params.num_classes();
    let expected = format!("[N, {}, anchors] (4 box rows + {nc} classes)", 4 + nc);
    let out = view3(out, output, NAME, &expected)?;
    let (n, rows, anchors) = out.dim();
    if rows != 4 + nc || nc == 0 {
        return Err(DecodeError::Shape {
            output: output.into(),
            decoder: NAME,
            expected,
            found: vec![n, rows, anchors],
        });
    }
    check_batch(output, n, batch)?;
    let mut images = Vec::with_capacity(n);
    for img in out.outer_iter() {
        let mut cands = Vec::new();
        for a in 0..anchors {
            // Every value is checked, not only those of confident anchors: a head that emits
            // NaN anywhere is broken and the count says so.
            let bbox = BoxXyxy::from_cxcywh(img[[0, a]], img[[1, a]], img[[2, a]], img[[3, a]]);
            let Some((c, score)) = best_class((0..nc).map(|k| img[[4 + k, a]])).filter(|_| bbox.is_finite()) else {
                stats.non_finite += 1;
                continue;
            };
            if score < params.class_thresholds[c] {
                continue;
            }
            if score > MAX_SCORE || img[[2, a]] < 0.0 || img[[3, a]] < 0.0 {
                stats.malformed += 1;
                continue;
            }
            stats.candidates += 1;
            cands.push(Detection { bbox, score, class_id: c as u32 });
        }
        images.push(nms_per_image(cands, params));
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_close, params};
    use super::*;
    use ndarray::{Array3, ArrayD, IxDyn};

    fn one_image(cols: &[[f32; 6]]) -> ArrayD<f32> {
        let mut a = Array3::<f32>::zeros((1, 6, cols.len()));
        for (i, c) in cols.iter().enumerate() {
            for r in 0..6 {
                a[[0, r, i]] = c[r];
            }
        }
        a.into_dyn()
    }

    #[test]
    fn decodes_and_suppresses_duplicates() {
        let out = one_image(&[
            [50.0, 50.0, 20.0, 10.0, 0.9, 0.1],
            [51.0, 50.0, 20.0, 10.0, 0.8, 0.1], // duplicate of the first
            [50.0, 50.0, 20.0, 10.0, 0.1, 0.7], // same place, other class: kept
            [10.0, 10.0, 4.0, 4.0, 0.2, 0.1],   // below threshold
        ]);
        let mut stats = DecodeStats::default();
        let got = decode(out.view(), "output0", 1, &params(2, 0.25), &mut stats).unwrap();
        assert_close(&got[0], &[(40.0, 45.0, 60.0, 55.0, 0.9, 0), (40.0, 45.0, 60.0, 55.0, 0.7, 1)]);
        assert_eq!(stats, DecodeStats { non_finite: 0, malformed: 0, candidates: 3 });
    }

    #[test]
    fn nan_scores_and_boxes_are_counted_not_kept() {
        let out = one_image(&[
            [50.0, 50.0, 20.0, 10.0, f32::NAN, 0.9],
            [50.0, f32::NAN, 20.0, 10.0, 0.9, 0.1],
            [50.0, 50.0, f32::INFINITY, 10.0, 0.9, 0.1],
            [50.0, 50.0, -3.0, 10.0, 0.9, 0.1],
            [50.0, 50.0, 3.0, 10.0, 1.7, 0.1], // not a confidence
        ]);
        let mut stats = DecodeStats::default();
        let got = decode(out.view(), "output0", 1, &params(2, 0.25), &mut stats).unwrap();
        assert!(got[0].is_empty());
        assert_eq!(stats.non_finite, 3);
        assert_eq!(stats.malformed, 2);
    }

    #[test]
    fn empty_and_malformed_outputs() {
        let empty = ArrayD::<f32>::zeros(IxDyn(&[1, 6, 0]));
        let mut stats = DecodeStats::default();
        assert_eq!(decode(empty.view(), "o", 1, &params(2, 0.25), &mut stats).unwrap(), vec![vec![]]);
        let wrong_rows = ArrayD::<f32>::zeros(IxDyn(&[1, 7, 5]));
        let err = decode(wrong_rows.view(), "o", 1, &params(2, 0.25), &mut stats).unwrap_err();
        assert!(matches!(err, DecodeError::Shape { .. }), "{err}");
        assert!(err.to_string().contains("[1, 7, 5]"), "{err}");
        let rank2 = ArrayD::<f32>::zeros(IxDyn(&[6, 5]));
        assert!(matches!(decode(rank2.view(), "o", 1, &params(2, 0.25), &mut stats), Err(DecodeError::Shape { .. })));
        let batch2 = ArrayD::<f32>::zeros(IxDyn(&[2, 6, 5]));
        assert!(matches!(decode(batch2.view(), "o", 1, &params(2, 0.25), &mut stats), Err(DecodeError::Batch { .. })));
    }

    #[test]
    fn max_detections_caps_best_first() {
        let out = one_image(&[
            [10.0, 10.0, 4.0, 4.0, 0.5, 0.0],
            [30.0, 10.0, 4.0, 4.0, 0.9, 0.0],
            [50.0, 10.0, 4.0, 4.0, 0.7, 0.0],
        ]);
        let mut p = params(2, 0.25);
        p.max_detections = 2;
        let got = decode(out.view(), "o", 1, &p, &mut DecodeStats::default()).unwrap();
        assert_eq!(got[0].iter().map(|d| d.score).collect::<Vec<_>>(), vec![0.9, 0.7]);
    }
}
