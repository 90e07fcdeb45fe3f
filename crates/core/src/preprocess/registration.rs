//! Energy-plane registration: finds how far the low-energy plane lags the high-energy one
//! along the scan and resamples it back onto the high plane's scan lines.
//!
//! An interlaced linac fires its high- and low-energy pulses alternately while the vehicle
//! moves, so each low-energy line is recorded about half a scan line after its high-energy
//! partner. Uncorrected, every vertical edge gets a one-column fringe of wrong R-values,
//! which material discrimination reads as a different material and the models as an object.
//! The lag is measured from the scan itself (vendors rarely state it, and it drifts with belt
//! speed): the cross-correlation of the two planes' gradients along the scan peaks at the lag.

use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::calibration::AttenuationImage;

/// Settings for [`register_energies`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationOptions {
    /// Correct the lag when it is large enough. Off (the default): the lag is still measured
    /// and reported.
    pub enabled: bool,
    /// Smallest lag (scan lines) that is corrected. Well-aligned scans measure within
    /// a few hundredths of 0 and interlaced ones near 0.5; resampling a plane that needs none
    /// would only blur it.
    pub min_offset_columns: f32,
    /// Largest lag that is believed: a real interlace lag is under one scan line, and a larger
    /// measurement means the planes are not views of the same scene.
    pub max_offset_columns: f32,
    /// Least normalised gradient correlation at the peak for the measurement to count
    /// (a scan of flat material has no edges to measure on).
    pub min_correlation: f32,
}

impl Default for RegistrationOptions {
    fn default() -> Self {
        // Off by default: the shipped models were trained on unregistered scans, and a model
        // meets a registered plane's smoother noise as something new (see docs/preprocessing.md).
        Self { enabled: false, min_offset_columns: 0.25, max_offset_columns: 1.0, min_correlation: 0.2 }
    }
}

/// What registration measured on a scan, and whether it corrected the low plane.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EnergyRegistration {
    /// Measured lag of the low-energy plane along the scan, in scan lines (positive: the low
    /// line was recorded after the high one).
    pub offset_columns: f32,
    /// Normalised gradient correlation at the measured lag (0..1).
    pub correlation: f32,
    /// Pixel pairs the measurement used.
    pub edge_pixels: usize,
    /// The low plane was resampled by `-offset_columns`.
    pub applied: bool,
}

/// Largest lag searched, in scan lines, on either side.
const MAX_LAG: usize = 2;
const N_LAGS: usize = 2 * MAX_LAG + 1;
/// High-energy attenuation below which both pixels of a pair are air: their gradient is
/// only noise and would dilute the correlation.
const AIR_ATTENUATION: f32 = 0.05;
/// Fewer usable pairs than this: no measurement.
const MIN_EDGE_PIXELS: usize = 1000;
/// Every n-th detector row is measured: edges in a load span many rows, and a quarter of the
/// rows of a real scan still gives tens of thousands of pairs for a peak the whole scan shares.
const ROW_STEP: usize = 4;

/// Measures the low plane's lag (see the module docs); `None` for single-energy scans and
/// scans with too few edges to measure on.
pub fn measure_offset(att: &AttenuationImage) -> Option<EnergyRegistration> {
    let low = att.low.as_ref()?;
    let (rows, cols) = att.high.dim();
    if cols < 2 * MAX_LAG + 4 || rows == 0 {
        return None;
    }
    // Per row: sum over c of gl[c] * gh[c + k] for each lag k, plus the energies of both
    // gradients, over pairs of unflagged, non-air pixels. Sums in f64: a scan has millions.
    let zero = || ([0.0f64; N_LAGS], 0.0f64, 0.0f64, 0usize);
    let (cross, e_low, e_high, n) = (0..rows)
        .into_par_iter()
        .step_by(ROW_STEP)
        .map(|r| {
            let (h, l, f) = (att.high.row(r), low.row(r), att.flags.row(r));
            let m = cols - 1;
            // High-plane gradient per pair, NaN where the pair is flagged, air or not finite.
            let gh: Vec<f32> = (0..m)
                .map(|c| {
                    let ok = f[c] == 0 && f[c + 1] == 0 && h[c].max(h[c + 1]) > AIR_ATTENUATION;
                    let g = h[c + 1] - h[c];
                    if ok && g.is_finite() { g } else { f32::NAN }
                })
                .collect();
            let mut acc = zero();
            for c in MAX_LAG..m - MAX_LAG {
                let g_high = gh[c];
                let g_low = l[c + 1] - l[c];
                if !(g_high.is_finite() && g_low.is_finite()) {
                    continue;
                }
                for (i, &g) in gh[c - MAX_LAG..=c + MAX_LAG].iter().enumerate() {
                    if g.is_finite() {
                        acc.0[i] += f64::from(g_low * g);
                    }
                }
                acc.1 += f64::from(g_low * g_low);
                acc.2 += f64::from(g_high * g_high);
                acc.3 += 1;
            }
            acc
        })
        .reduce(zero, |mut a, b| {
            a.0.iter_mut().zip(b.0).for_each(|(x, y)| *x += y);
            (a.0, a.1 + b.1, a.2 + b.2, a.3 + b.3)
        });
    if n < MIN_EDGE_PIXELS || e_low <= 0.0 || e_high <= 0.0 {
        return None;
    }
    // Sub-line peak: the three-point Gaussian estimator of particle image velocimetry, exact
    // for a Gaussian-shaped correlation peak (the detector's point spread makes it one), and
    // exact by symmetry at lags 0 and 1/2, the two that occur. A peak without positive
    // neighbours (unblurred edges) falls back to the three-point parabola.
    let k = (MAX_LAG - 1..=MAX_LAG + 1).max_by(|&a, &b| cross[a].total_cmp(&cross[b]))?;
    let (left, centre, right) = (cross[k - 1], cross[k], cross[k + 1]);
    if centre.is_nan() || centre <= 0.0 {
        return None;
    }
    let step = if left > 0.0 && right > 0.0 {
        let (l, c, r) = (left.ln(), centre.ln(), right.ln());
        (l - r) / (2.0 * (l - 2.0 * c + r))
    } else {
        (left - right) / (2.0 * (left - 2.0 * centre + right))
    };
    if !step.is_finite() {
        return None;
    }
    let offset = k as f64 - MAX_LAG as f64 + step.clamp(-1.0, 1.0);
    let peak = cross.iter().copied().fold(f64::MIN, f64::max);
    Some(EnergyRegistration {
        offset_columns: offset as f32,
        correlation: (peak / (e_low * e_high).sqrt()) as f32,
        edge_pixels: n,
        applied: false,
    })
}

/// Measures the lag and, when registration is enabled and the lag is real and large enough,
/// resamples the low plane onto the high plane's scan lines (linear interpolation along each
/// detector row; the end columns repeat their neighbour). Flags are left as they are: a
/// half-line shift moves no dead row and no saturated region by a whole pixel.
pub fn register_energies(att: &mut AttenuationImage, opts: &RegistrationOptions) -> Option<EnergyRegistration> {
    let mut m = measure_offset(att)?;
    let delta = m.offset_columns;
    if !opts.enabled
        || m.correlation < opts.min_correlation
        || delta.abs() < opts.min_offset_columns
        || delta.abs() > opts.max_offset_columns
    {
        return Some(m);
    }
    let low = att.low.as_mut()?;
    let cols = low.ncols();
    // low[j] was recorded at x_j + delta: the value at x_c sits at fractional index c - delta.
    let taps: Vec<(usize, usize, f32)> = (0..cols)
        .map(|c| {
            let x = (c as f32 - delta).clamp(0.0, (cols - 1) as f32);
            let i0 = x.floor() as usize;
            let i1 = (i0 + 1).min(cols - 1);
            (i0, i1, x - i0 as f32)
        })
        .collect();
    let mut shifted = Array2::<f32>::zeros(low.dim());
    shifted.axis_iter_mut(ndarray::Axis(0)).into_par_iter().zip(low.axis_iter(ndarray::Axis(0))).for_each(
        |(mut out, row)| {
            for (o, &(i0, i1, t)) in out.iter_mut().zip(&taps) {
                *o = row[i0] * (1.0 - t) + row[i1] * t;
            }
        },
    );
    *low = shifted;
    m.applied = true;
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Zip};

    const ON: RegistrationOptions =
        RegistrationOptions { enabled: true, min_offset_columns: 0.25, max_offset_columns: 1.0, min_correlation: 0.2 };

    /// Two planes of boxes with edges at random sub-line positions, the low plane sampled
    /// `lag` lines later, as an interlaced linac records it.
    fn scene(lag: f32, noise: f32) -> AttenuationImage {
        let (rows, cols) = (64, 400);
        // Boxes: (x0, x1, row0, row1, attenuation) in scan-line units.
        let mut boxes = Vec::new();
        let mut s = 12345u64;
        let mut rnd = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) as f32 / (1u64 << 31) as f32
        };
        for _ in 0..100 {
            let x0 = rnd() * 380.0;
            let w = 3.0 + rnd() * 30.0;
            let r0 = (rnd() * 50.0) as usize;
            boxes.push((x0, x0 + w, r0, r0 + 4 + (rnd() * 10.0) as usize, 0.2 + rnd() * 2.0));
        }
        let plane = |shift: f32, scale: f32, rnd: &mut dyn FnMut() -> f32| {
            Array2::from_shape_fn((rows, cols), |(r, c)| {
                let x = c as f32 + shift;
                // Edges blurred by a point spread of ~0.7 lines (logistic approximation of
                // the Gaussian's integral), as detectors record them.
                let edge = |z: f32| 1.0 / (1.0 + (-1.702 * z / 0.7).exp());
                let a: f32 =
                    boxes.iter().filter(|b| r >= b.2 && r < b.3).map(|b| b.4 * (edge(x - b.0) - edge(x - b.1))).sum();
                a * scale + 0.1 + noise * (rnd() - 0.5)
            })
        };
        let high = plane(0.0, 1.0, &mut rnd);
        let low = plane(lag, 1.3, &mut rnd);
        AttenuationImage {
            high,
            low: Some(low),
            flags: Array2::zeros((rows, cols)),
            max_attenuation: 11.5,
            air_high: Array1::zeros(rows),
            dark_high: Array1::zeros(rows),
        }
    }

    #[test]
    fn measures_the_interlace_lag_and_no_lag_on_aligned_planes() {
        for (lag, noise, tol) in [
            (0.0, 0.0, 0.02),
            (0.5, 0.0, 0.02),
            (0.0, 0.05, 0.05),
            (0.5, 0.05, 0.05),
            (-0.5, 0.05, 0.05),
            (0.25, 0.0, 0.1),
            (1.0, 0.0, 0.05),
        ] {
            let m = measure_offset(&scene(lag, noise)).expect("edges to measure on");
            assert!((m.offset_columns - lag).abs() < tol, "lag {lag} noise {noise}: measured {m:?}");
            assert!(m.correlation > 0.5, "{m:?}");
        }
    }

    #[test]
    fn correcting_the_lag_removes_the_edge_fringes() {
        let aligned = scene(0.0, 0.0);
        let mut lagged = scene(0.5, 0.0);
        let fringe = |a: &AttenuationImage| {
            // Low minus 1.3 x high is 0 - 0.03 wherever the planes see the same material.
            let (l, h) = (a.low.as_ref().unwrap(), &a.high);
            let mut worst = 0.0f32;
            Zip::from(l).and(h).for_each(|&l, &h| worst = worst.max((l - 1.3 * h + 0.03).abs()));
            worst
        };
        assert!(fringe(&aligned) < 1e-4);
        let before = fringe(&lagged);
        assert!(before > 0.5, "a lagged plane has fringes: {before}");
        let m = register_energies(&mut lagged, &ON).unwrap();
        assert!(m.applied && (m.offset_columns - 0.5).abs() < 0.06, "{m:?}");
        // Linear interpolation halves a one-line step into two half steps; the fringes that
        // remain sit on edges that fell between samples and are at most half the original.
        let after = fringe(&lagged);
        let mean_abs = |a: &AttenuationImage| {
            let (l, h) = (a.low.as_ref().unwrap(), &a.high);
            Zip::from(l).and(h).fold(0.0f32, |s, &l, &h| s + (l - 1.3 * h + 0.03).abs()) / l.len() as f32
        };
        assert!(after <= 0.6 * before, "fringes {before} -> {after}");
        assert!(mean_abs(&lagged) < 0.5 * mean_abs(&scene(0.5, 0.0)));
    }

    #[test]
    fn leaves_aligned_flat_and_single_energy_scans_alone() {
        let mut aligned = scene(0.0, 0.05);
        let before = aligned.low.clone();
        let m = register_energies(&mut aligned, &ON).unwrap();
        assert!(!m.applied);
        assert_eq!(aligned.low, before);
        // No edges: nothing to measure.
        let mut flat = scene(0.0, 0.0);
        flat.high.fill(1.0);
        flat.low.as_mut().unwrap().fill(1.3);
        assert!(register_energies(&mut flat, &ON).is_none());
        let mut single = scene(0.5, 0.0);
        single.low = None;
        assert!(register_energies(&mut single, &ON).is_none());
        // Disabled (the default): measures, never touches the planes.
        let mut lagged = scene(0.5, 0.0);
        let before = lagged.low.clone();
        let m = register_energies(&mut lagged, &RegistrationOptions::default()).unwrap();
        assert!(!m.applied && (m.offset_columns - 0.5).abs() < 0.06);
        assert_eq!(lagged.low, before);
    }

    #[test]
    fn flagged_pixels_and_nan_do_not_count() {
        let mut a = scene(0.5, 0.0);
        // Flag every pixel: nothing left to measure.
        a.flags.fill(1);
        assert!(measure_offset(&a).is_none());
        let mut a = scene(0.5, 0.0);
        a.low.as_mut().unwrap()[[3, 50]] = f32::NAN;
        let m = measure_offset(&a).unwrap();
        assert!(m.offset_columns.is_finite() && (m.offset_columns - 0.5).abs() < 0.06);
        // Tiny scans are refused, not indexed out of bounds.
        let tiny = AttenuationImage {
            high: Array2::zeros((2, 5)),
            low: Some(Array2::zeros((2, 5))),
            flags: Array2::zeros((2, 5)),
            max_attenuation: 11.5,
            air_high: Array1::zeros(2),
            dark_high: Array1::zeros(2),
        };
        assert!(measure_offset(&tiny).is_none());
    }
}
