//! Scans taken at another pixel pitch than a model was trained at are resampled to the
//! model's pitch before tiling, so that an object covers as many input pixels as it did in
//! training (a convolutional model has learnt object sizes in pixels, not millimetres).
//! Findings are mapped back to the scan's own pixels afterwards.

use super::calibration::AttenuationImage;
use super::materials::MaterialMap;
use super::views::ScanViews;
use ndarray::{Array1, Array2};

/// Relative pitch difference under which a scan is used as it is: resampling by 2 % would
/// blur the image for no gain in object size.
pub const PITCH_TOLERANCE: f32 = 0.02;

/// Most pixels a resampled scan may have (about 1 GiB of planes and views): a 40 ft scan at
/// 5 mm has ~2.5 M; this bound only stops absurd pitch ratios from allocating without end.
pub const MAX_RESAMPLED_PIXELS: usize = 64 << 20;

/// The size `(rows, columns)` a scan of `rows` x `columns` pixels at pitch `along` (columns)
/// and `vertical` (rows) takes at the model's `model_pitch` (mm, both axes); `None` when both
/// pitches are within [`PITCH_TOLERANCE`] of the model's, so the scan runs as it is.
pub fn target_size(
    rows: usize,
    columns: usize,
    along: f32,
    vertical: f32,
    model_pitch: f32,
) -> Result<Option<(usize, usize)>, String> {
    for (name, p) in [("along", along), ("vertical", vertical), ("model", model_pitch)] {
        if !(p.is_finite() && p > 0.0) {
            return Err(format!("{name} pixel pitch {p} mm is not a positive number"));
        }
    }
    let close = |p: f32| ((p - model_pitch) / model_pitch).abs() <= PITCH_TOLERANCE;
    if close(along) && close(vertical) {
        return Ok(None);
    }
    let scaled = |n: usize, p: f32| ((n as f64 * (p / model_pitch) as f64).round().max(1.0)) as usize;
    let (r, c) = (scaled(rows, vertical), scaled(columns, along));
    if r.saturating_mul(c) > MAX_RESAMPLED_PIXELS {
        return Err(format!(
            "resampling {rows} x {columns} px at {along} x {vertical} mm to the model's {model_pitch} mm gives \
             {r} x {c} px, over the {MAX_RESAMPLED_PIXELS} pixel limit"
        ));
    }
    Ok(Some((r, c)))
}

/// Source pixels and weights of each output pixel along one axis of `n_in` -> `n_out`.
/// Shrinking averages the source pixels an output pixel covers, by covered length (a box
/// filter, so a thin dense bar keeps its integrated attenuation); enlarging interpolates
/// linearly between the two nearest source centres.
fn axis_weights(n_in: usize, n_out: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = n_out as f64 / n_in as f64;
    (0..n_out)
        .map(|i| {
            if scale < 1.0 {
                let (a, b) = (i as f64 / scale, ((i + 1) as f64 / scale).min(n_in as f64));
                let first = a.floor() as usize;
                let last = (b.ceil() as usize).clamp(first + 1, n_in);
                let w: Vec<f32> = (first..last)
                    .map(|j| ((j + 1) as f64).min(b) - (j as f64).max(a))
                    .map(|len| (len.max(0.0) * scale) as f32)
                    .collect();
                (first, w)
            } else {
                let c = ((i as f64 + 0.5) / scale - 0.5).clamp(0.0, (n_in - 1) as f64);
                let j0 = (c.floor() as usize).min(n_in.saturating_sub(2));
                let t = (c - j0 as f64) as f32;
                if n_in == 1 { (0, vec![1.0]) } else { (j0, vec![1.0 - t, t]) }
            }
        })
        .collect()
}

/// Index of the source pixel holding output pixel `i`'s centre (for classes, which do not mix).
fn nearest(i: usize, n_in: usize, n_out: usize) -> usize {
    (((i as f64 + 0.5) * n_in as f64 / n_out as f64) as usize).min(n_in - 1)
}

fn resample_1d(src: &Array1<f32>, w: &[(usize, Vec<f32>)]) -> Array1<f32> {
    w.iter().map(|(s, k)| k.iter().enumerate().map(|(j, k)| k * src[s + j]).sum()).collect()
}

fn resample_plane(src: &Array2<f32>, rw: &[(usize, Vec<f32>)], cw: &[(usize, Vec<f32>)]) -> Array2<f32> {
    let rows_in = src.nrows();
    let mut across = Array2::<f32>::zeros((rows_in, cw.len()));
    for (y, mut out) in across.outer_iter_mut().enumerate() {
        let row = src.row(y);
        for (o, (s, k)) in out.iter_mut().zip(cw) {
            *o = k.iter().enumerate().map(|(j, k)| k * row[s + j]).sum();
        }
    }
    Array2::from_shape_fn((rw.len(), cw.len()), |(y, x)| {
        let (s, k) = &rw[y];
        k.iter().enumerate().map(|(j, k)| k * across[[s + j, x]]).sum()
    })
}

/// The views at `rows` x `columns`: attenuation and Z_eff resampled (averaged by covered length
/// when shrinking, linear when enlarging), material classes taken from the nearest source
/// pixel, the pseudo-colour view resized with a triangle filter. Per-pixel flags are not carried (no model input reads them).
pub fn resample(v: &ScanViews, rows: usize, columns: usize) -> ScanViews {
    let (rows_in, cols_in) = (v.attenuation.rows(), v.attenuation.columns());
    let (rw, cw) = (axis_weights(rows_in, rows), axis_weights(cols_in, columns));
    let a = &v.attenuation;
    let per_row = |src: &Array1<f32>| if src.len() == rows_in { resample_1d(src, &rw) } else { src.clone() };
    let attenuation = AttenuationImage {
        high: resample_plane(&a.high, &rw, &cw),
        low: a.low.as_ref().map(|l| resample_plane(l, &rw, &cw)),
        flags: Array2::zeros((rows, columns)),
        max_attenuation: a.max_attenuation,
        air_high: per_row(&a.air_high),
        dark_high: per_row(&a.dark_high),
    };
    let class = Array2::from_shape_fn((rows, columns), |(y, x)| {
        v.materials.class[[nearest(y, rows_in, rows), nearest(x, cols_in, columns)]]
    });
    let materials = MaterialMap { class, z_eff: resample_plane(&v.materials.z_eff, &rw, &cw) };
    let pseudo_colour =
        image::imageops::resize(&v.pseudo_colour, columns as u32, rows as u32, image::imageops::FilterType::Triangle);
    ScanViews { attenuation, materials, pseudo_colour }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_within_tolerance_run_as_they_are() {
        assert_eq!(target_size(100, 400, 5.05, 4.95, 5.0).unwrap(), None);
        assert_eq!(target_size(100, 400, 10.0, 10.0, 5.0).unwrap(), Some((200, 800)));
        // Pitches differ per axis: each axis gets its own factor.
        assert_eq!(target_size(100, 400, 4.0, 6.0, 5.0).unwrap(), Some((120, 320)));
    }

    #[test]
    fn absurd_pitches_are_refused_before_any_allocation() {
        let e = target_size(2000, 8000, 10.0, 10.0, 0.05).unwrap_err();
        assert!(e.contains("pixel limit"), "{e}");
        assert!(target_size(10, 10, f32::NAN, 5.0, 5.0).unwrap_err().contains("along"));
        assert!(target_size(10, 10, 5.0, 5.0, 0.0).unwrap_err().contains("model"));
    }

    #[test]
    fn shrinking_is_a_box_filter_that_keeps_the_integral() {
        // 3 -> 2: each output pixel covers 1.5 source pixels.
        let w = axis_weights(3, 2);
        assert_eq!(w[0].0, 0);
        assert!((w[0].1[0] - 2.0 / 3.0).abs() < 1e-6 && (w[0].1[1] - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(w[1].0, 1);
        assert!((w[1].1[0] - 1.0 / 3.0).abs() < 1e-6 && (w[1].1[1] - 2.0 / 3.0).abs() < 1e-6);
        // A one-pixel bar of attenuation 3 over 7 px at 10 mm keeps its sum times the scale.
        let src = Array1::from(vec![0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0]);
        let out = resample_1d(&src, &axis_weights(7, 3));
        assert!((out.sum() - 3.0 * 3.0 / 7.0).abs() < 1e-5, "{out}");
    }

    #[test]
    fn enlarging_interpolates_between_centres() {
        // 2 -> 4 (10 mm -> 5 mm): centres at -0.25, 0.25, 0.75, 1.25 of the source.
        let out = resample_1d(&Array1::from(vec![1.0, 3.0]), &axis_weights(2, 4));
        assert_eq!(out.to_vec(), vec![1.0, 1.5, 2.5, 3.0]);
        // A constant plane stays constant at any size.
        let plane = Array2::from_elem((5, 7), 2.5f32);
        let r = resample_plane(&plane, &axis_weights(5, 11), &axis_weights(7, 3));
        assert_eq!(r.dim(), (11, 3));
        assert!(r.iter().all(|&v| (v - 2.5).abs() < 1e-6));
        assert_eq!(resample_1d(&Array1::from(vec![4.0]), &axis_weights(1, 3)).to_vec(), vec![4.0; 3]);
    }
}
