//! YOLOv5 / YOLOv7 heads: `[N, A, 5 + nc]`, columns `cx, cy, w, h, objectness` then class
//! scores; a candidate's score is objectness x class score. Needs NMS.

use super::{BoxParams, DecodeError, DecodeStats, MAX_SCORE, best_class, check_batch, nms_per_image, view3};
use crate::detect::geometry::{BoxXyxy, Detection};
use ndarray::ArrayViewD;

pub const NAME: &str = "yolov5";

pub fn decode(
    out: ArrayViewD<'_, f32>,
    output: &str,
    batch: usize,
    params: &BoxParams,
    stats: &mut DecodeStats,
) -> Result<Vec<Vec<Detection>>, DecodeError> {
    let nc = params.num_classes();
    let expected = format!("[N, anchors, {}] (4 box + objectness + {nc} classes)", 5 + nc);
    let out = view3(out, output, NAME, &expected)?;
    let (n, anchors, cols) = out.dim();
    if cols != 5 + nc || nc == 0 {
        return Err(DecodeError::Shape {
            output: output.into(),
            decoder: NAME,
            expected,
            found: vec![n, anchors, cols],
        });
    }
    check_batch(output, n, batch)?;
    // The cheapest test first: a real head's objectness rejects nearly every anchor.
    let min_thr = params.class_thresholds.iter().copied().fold(f32::INFINITY, f32::min);
    let mut images = Vec::with_capacity(n);
    for img in out.outer_iter() {
        let mut cands = Vec::new();
        for row in img.outer_iter() {
            let obj = row[4];
            if !obj.is_finite() {
                stats.non_finite += 1;
                continue;
            }
            if obj < min_thr {
                continue;
            }
            let Some((c, cls)) = best_class((0..nc).map(|k| row[5 + k])) else {
                stats.non_finite += 1;
                continue;
            };
            let score = obj * cls;
            if score < params.class_thresholds[c] {
                continue;
            }
            if obj > MAX_SCORE || cls > MAX_SCORE {
                stats.malformed += 1;
                continue;
            }
            let bbox = BoxXyxy::from_cxcywh(row[0], row[1], row[2], row[3]);
            if !bbox.is_finite() {
                stats.non_finite += 1;
                continue;
            }
            if row[2] < 0.0 || row[3] < 0.0 {
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

    fn one_image(rows: &[[f32; 7]]) -> ArrayD<f32> {
        let mut a = Array3::<f32>::zeros((1, rows.len(), 7));
        for (i, r) in rows.iter().enumerate() {
            for c in 0..7 {
                a[[0, i, c]] = r[c];
            }
        }
        a.into_dyn()
    }

    #[test]
    fn score_is_objectness_times_class() {
        let out = one_image(&[
            [50.0, 50.0, 20.0, 10.0, 0.8, 0.5, 0.9], // 0.72 class 1
            [50.0, 50.0, 20.0, 10.0, 0.2, 0.9, 0.1], // 0.18 below 0.25
        ]);
        let mut stats = DecodeStats::default();
        let got = decode(out.view(), "output0", 1, &params(2, 0.25), &mut stats).unwrap();
        assert_close(&got[0], &[(40.0, 45.0, 60.0, 55.0, 0.72, 1)]);
        assert_eq!(stats.candidates, 1);
    }

    #[test]
    fn nan_objectness_or_class_is_counted() {
        let out = one_image(&[
            [50.0, 50.0, 20.0, 10.0, f32::NAN, 0.5, 0.9],
            [50.0, 50.0, 20.0, 10.0, 0.9, f32::NAN, 0.9],
            [f32::NAN, 50.0, 20.0, 10.0, 0.9, 0.9, 0.9],
            [50.0, 50.0, 20.0, 10.0, 3.0, 0.9, 0.9], // objectness logit, not a probability
        ]);
        let mut stats = DecodeStats::default();
        let got = decode(out.view(), "o", 1, &params(2, 0.25), &mut stats).unwrap();
        assert!(got[0].is_empty());
        assert_eq!(stats.non_finite, 3);
        assert_eq!(stats.malformed, 1);
    }

    #[test]
    fn empty_and_malformed_outputs() {
        let mut stats = DecodeStats::default();
        let empty = ArrayD::<f32>::zeros(IxDyn(&[2, 0, 7]));
        assert_eq!(decode(empty.view(), "o", 2, &params(2, 0.25), &mut stats).unwrap(), vec![vec![], vec![]]);
        // A YOLOv8-shaped tensor fed to this decoder is named in the error.
        let v8 = ArrayD::<f32>::zeros(IxDyn(&[1, 6, 16]));
        let err = decode(v8.view(), "output0", 1, &params(2, 0.25), &mut stats).unwrap_err();
        assert!(err.to_string().contains("yolov5") && err.to_string().contains("output0"), "{err}");
    }
}
