//! Calibration: raw counts to transmission `T = (I - dark) / (air - dark)` and attenuation
//! `A = -ln T`, per detector row, with dead and saturated pixels flagged rather than NaN.

use std::path::Path;

#[cfg(test)]
use ndarray::ArrayView1;
use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};
use serde::{Deserialize, Serialize};

use crate::scan::{CalibrationSpec, Counts, PlaneCounts, Scan, ScanError, ScanKind};

/// Pixel flags (bit set), one byte per pixel.
pub mod flags {
    /// No usable signal: counts at or below dark, or a dead detector row (air not above dark).
    pub const DEAD: u8 = 1;
    /// Counts at the saturation level: the true transmission is unknown (at least this high).
    pub const SATURATED: u8 = 2;
    /// Transmission fell below the floor and was clamped (attenuation is a lower bound).
    pub const FLOOR: u8 = 4;
    /// A dead detector row repaired: attenuation interpolated from the nearest live rows, not
    /// measured (see [`super::CalibrationOptions::dead_row_repair_max_run`]).
    pub const INTERPOLATED: u8 = 8;
}

/// Calibration settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CalibrationOptions {
    /// Smallest transmission kept; below it T is clamped and the pixel flagged `FLOOR`.
    /// 1e-5 is about one count above dark at a typical 60,000-count open beam, so attenuation
    /// never exceeds -ln(1e-5) = 11.5.
    pub transmission_floor: f32,
    /// Percentile of the plane's counts taken as open beam when the scan gives neither air
    /// counts nor an air region (bare TIFFs): scanners always see some open beam around the vehicle.
    pub air_percentile: f32,
    /// Longest run of adjacent dead detector rows (air not above dark, or no count above dark
    /// in the whole row) that is repaired by interpolating attenuation linearly between the
    /// live rows on either side (the nearest live row at the image edge); 0 turns repair off.
    /// Scanners correct bad detector channels before display: left in, a dead row is a
    /// full-length line at the maximum attenuation that no object makes, and models read it as
    /// foreign (it was the whole clean tail of an anomaly candidate). Longer runs stay `DEAD`:
    /// interpolating over more than a few centimetres would invent content.
    pub dead_row_repair_max_run: usize,
}

impl Default for CalibrationOptions {
    fn default() -> Self {
        Self { transmission_floor: 1e-5, air_percentile: 99.9, dead_row_repair_max_run: 4 }
    }
}

/// Calibrated attenuation planes, shape `(rows, columns)`.
#[derive(Debug, Clone)]
pub struct AttenuationImage {
    /// `-ln T` of the high-energy (or only) plane.
    pub high: Array2<f32>,
    /// `-ln T` of the low-energy plane of a dual-energy scan.
    pub low: Option<Array2<f32>>,
    /// [`flags`] per pixel, merged over both planes.
    pub flags: Array2<u8>,
    /// Attenuation given to floor-clamped and dead pixels: `-ln(transmission_floor)`.
    pub max_attenuation: f32,
    /// Per-row open-beam counts used for the high plane (after estimation), for `info`.
    pub air_high: Array1<f32>,
    /// Per-row dark counts used for the high plane, for `info`.
    pub dark_high: Array1<f32>,
}

impl AttenuationImage {
    /// Detector rows (the image height), counts.
    pub fn rows(&self) -> usize {
        self.high.nrows()
    }
    /// Scan lines (the image width), counts.
    pub fn columns(&self) -> usize {
        self.high.ncols()
    }
}

/// One calibrated plane: attenuation, flags, air and dark counts per row, dead detector rows.
type PlaneCalibration = (Array2<f32>, Array2<u8>, Array1<f32>, Array1<f32>, Vec<bool>);

/// Calibrates a scan. Rendered 8-bit scans take grey level as transmission (dark 0, air full scale).
pub fn calibrate(scan: &Scan, opts: &CalibrationOptions) -> Result<AttenuationImage, ScanError> {
    let path = scan.display_name();
    if !(opts.transmission_floor > 0.0 && opts.transmission_floor < 1.0) {
        return Err(ScanError::Calibration {
            path,
            reason: format!("transmission_floor {} must be in (0, 1)", opts.transmission_floor),
        });
    }
    crate::scan::validate_calibration(&path, &scan.descriptor, scan.rows(), scan.columns(), scan.is_dual_energy())?;
    let cal = &scan.descriptor.calibration;
    let planes = PlaneSettings {
        path: &path,
        cal,
        saturation: cal.saturation_counts.unwrap_or(u16::MAX),
        rendered: scan.kind == ScanKind::Rendered,
        opts,
    };
    let (mut high, fl, air_high, dark_high, dead_high) =
        planes.calibrate(&scan.high, false, Array2::zeros(scan.high.dim()))?;
    // The low plane ORs its flags into the high plane's.
    let (mut low, mut fl, dead_low) = match &scan.low {
        Some(l) => {
            let (att, fl, _, _, dead) = planes.calibrate(l, true, fl)?;
            (Some(att), fl, dead)
        }
        None => (None, fl, Vec::new()),
    };
    let max_run = opts.dead_row_repair_max_run;
    if max_run > 0 {
        let mut repaired = repair_dead_rows(&mut high, &dead_high, max_run);
        if let Some(low) = low.as_mut() {
            repaired.extend(repair_dead_rows(low, &dead_low, max_run));
        }
        for r in repaired {
            // The row's pixels were DEAD because the row was; a pixel dead in the other plane's
            // live row loses that flag too (its attenuation stays at the maximum).
            fl.row_mut(r).iter_mut().for_each(|f| *f = (*f & !flags::DEAD) | flags::INTERPOLATED);
        }
    }
    Ok(AttenuationImage { high, low, flags: fl, max_attenuation: -opts.transmission_floor.ln(), air_high, dark_high })
}

/// What every plane of one scan is calibrated with.
struct PlaneSettings<'a> {
    /// The scan's name, for errors.
    path: &'a Path,
    cal: &'a CalibrationSpec,
    /// Counts at or above this are saturated.
    saturation: u16,
    /// An 8-bit rendered picture: grey level is transmission.
    rendered: bool,
    opts: &'a CalibrationOptions,
}

impl PlaneSettings<'_> {
    /// Calibrates one plane (`low`: the low-energy one), ORing its flags into `fl`.
    fn calibrate(&self, counts: &Array2<u16>, low: bool, mut fl: Array2<u8>) -> Result<PlaneCalibration, ScanError> {
        // Scan's planes are public: one built from a transposed or sliced array is copied to
        // row-major once here, so the row kernels can take rows as slices.
        let counts = counts.as_standard_layout();
        let counts = &counts.view();
        let (dark, air) = self.dark_and_air(counts, low);
        let wobble = self.source_wobble(counts, &dark, &air);
        if air.iter().zip(dark.iter()).all(|(a, d)| a - d < 1.0) {
            return Err(ScanError::Calibration {
                path: self.path.to_path_buf(),
                reason: format!(
                    "{} plane: open-beam counts are not above dark counts in any detector row",
                    if low { "low" } else { "high" }
                ),
            });
        }
        let att = self.attenuation(counts, &dark, &air, wobble.as_ref(), &mut fl);
        // A dead detector row: no open beam, or not one count above dark along the whole raw
        // scan (it starts in air and dark noise alone lifts half of an opaque row's counts
        // above dark). A rendered view may be a crop with a black row: never a dead one.
        let dead_rows: Vec<bool> = (0..counts.nrows())
            .map(|r| air[r] - dark[r] < 1.0 || (!self.rendered && counts.row(r).iter().all(|&c| c as f32 <= dark[r])))
            .collect();
        Ok((att, fl, air, dark, dead_rows))
    }

    /// Dark and open-beam counts per detector row: from the descriptor, else air from the air
    /// region's columns or rows, else a high percentile of the plane.
    fn dark_and_air(&self, counts: &ArrayView2<u16>, low: bool) -> (Array1<f32>, Array1<f32>) {
        let (cal, rows) = (self.cal, counts.nrows());
        let dark: Array1<f32> = match (self.rendered, plane_counts(&cal.dark, low)) {
            (true, _) | (false, None) => Array1::zeros(rows),
            (false, Some(c)) => Array1::from_shape_fn(rows, |r| c.at(r)),
        };
        let air: Array1<f32> = if self.rendered {
            Array1::from_elem(rows, u16::MAX as f32)
        } else if let Some(c) = plane_counts(&cal.air, low) {
            Array1::from_shape_fn(rows, |r| c.at(r))
        } else if let Some([c0, c1]) = cal.air_region.as_ref().and_then(|a| a.columns) {
            // Scan lines before the vehicle: mean open beam of each detector row.
            let n = (c1 - c0) as f32;
            Array1::from_shape_fn(rows, |r| {
                counts.row(r).slice(ndarray::s![c0..c1]).iter().map(|&v| v as f32).sum::<f32>() / n
            })
        } else if let Some([r0, r1]) = cal.air_region.as_ref().and_then(|a| a.rows) {
            let region = counts.slice(ndarray::s![r0..r1, ..]);
            let mean = region.iter().map(|&v| v as f64).sum::<f64>() / region.len() as f64;
            Array1::from_elem(rows, mean as f32)
        } else {
            Array1::from_elem(rows, percentile_u16(counts, self.opts.air_percentile))
        };
        (dark, air)
    }

    /// Pulse-to-pulse source intensity along the scan, from detector rows that only see air: a
    /// correction factor per column, `None` without air rows.
    fn source_wobble(&self, counts: &ArrayView2<u16>, dark: &Array1<f32>, air: &Array1<f32>) -> Option<Array1<f32>> {
        let [r0, r1] = self.cal.air_region.as_ref().and_then(|a| a.rows).filter(|_| !self.rendered)?;
        // Row by row over contiguous counts (each column still sums its rows in order).
        let mut sums = vec![0.0f32; counts.ncols()];
        let mut live = 0usize;
        for r in r0..r1 {
            let (d, range) = (dark[r], air[r] - dark[r]);
            // The same test as a dead row: a dead row carries no intensity.
            if range >= 1.0 {
                live += 1;
                let row = counts.row(r);
                let row = row.as_slice().expect("standard layout");
                sums.iter_mut().zip(row).for_each(|(s, &v)| *s += (v as f32 - d) / range);
            }
        }
        let n = live.max(1) as f32;
        Some(
            sums.iter()
                .map(|&s| {
                    let f = s / n;
                    // A wobble factor far from 1 means the "air" rows are not air here: ignore it.
                    if (0.5..=2.0).contains(&f) { 1.0 / f } else { 1.0 }
                })
                .collect(),
        )
    }

    /// `-ln T` of every pixel, rows in parallel, flags ORed into `fl`.
    fn attenuation(
        &self,
        counts: &ArrayView2<u16>,
        dark: &Array1<f32>,
        air: &Array1<f32>,
        wobble: Option<&Array1<f32>>,
        fl: &mut Array2<u8>,
    ) -> Array2<f32> {
        let mut att = Array2::<f32>::zeros(counts.dim());
        let floor = self.opts.transmission_floor;
        let max_att = -floor.ln();
        let sat = self.saturation as f32;
        // With one dark level for all rows (the usual case), -ln(I - dark) is a table over the
        // 65,536 possible counts and each row adds its own -ln(1 / (air - dark)): one load and
        // one add per pixel instead of a logarithm.
        let uniform_dark = dark.iter().all(|&v| v == dark[0]);
        let ln_table = uniform_dark.then(|| ln_table_for(dark[0]));
        let column_offset: Option<Vec<f32>> = wobble.map(|w| w.iter().map(|&f| -f.ln()).collect());
        Zip::from(att.axis_iter_mut(Axis(0)))
            .and(fl.axis_iter_mut(Axis(0)))
            .and(counts.axis_iter(Axis(0)))
            .and(dark)
            .and(air)
            .par_for_each(|mut a_row, mut f_row, c_row, &d, &ai| {
                let range = ai - d;
                if range < 1.0 {
                    a_row.fill(max_att);
                    f_row.iter_mut().for_each(|f| *f |= flags::DEAD);
                    return;
                }
                let inv = 1.0 / range;
                let c_row = c_row.as_slice().expect("standard layout");
                let a_row = a_row.into_slice().expect("standard layout");
                let f_row = f_row.into_slice().expect("standard layout");
                if let Some(table) = &ln_table {
                    // -ln T = -ln(I - dark) - ln(inv) [- ln(wobble)]
                    let row_offset = -inv.ln();
                    match &column_offset {
                        Some(co) => {
                            calibrate_row_table(c_row, a_row, f_row, table, |i| row_offset + co[i], d, sat, max_att)
                        }
                        None => calibrate_row_table(c_row, a_row, f_row, table, |_| row_offset, d, sat, max_att),
                    }
                    return;
                }
                match wobble {
                    Some(w) => {
                        let w = w.as_slice().expect("contiguous");
                        calibrate_row(c_row, a_row, f_row, |i| inv * w[i], d, sat, floor, max_att)
                    }
                    None => calibrate_row(c_row, a_row, f_row, |_| inv, d, sat, floor, max_att),
                }
            });
        att
    }
}

/// The dark or air counts of the high (or `low`) plane, when the descriptor gives them.
fn plane_counts(pc: &Option<PlaneCounts>, low: bool) -> Option<&Counts> {
    pc.as_ref().and_then(|p| if low { p.low.as_ref() } else { Some(&p.high) })
}

/// Replaces each run of at most `max_run` dead rows by linear interpolation, column by column,
/// between the live rows bounding it (a run at the image edge copies its one live neighbour).
/// Returns the rows it repaired.
fn repair_dead_rows(att: &mut Array2<f32>, dead: &[bool], max_run: usize) -> Vec<usize> {
    let rows = att.nrows().min(dead.len());
    let mut repaired = Vec::new();
    let mut r = 0;
    while r < rows {
        if !dead[r] {
            r += 1;
            continue;
        }
        let start = r;
        while r < rows && dead[r] {
            r += 1;
        }
        if r - start > max_run {
            continue;
        }
        let (a, b) = match (start.checked_sub(1), (r < rows).then_some(r)) {
            (Some(a), Some(b)) => (a, b),
            (Some(a), None) => (a, a),
            (None, Some(b)) => (b, b),
            (None, None) => continue,
        };
        let (a_row, b_row) = (att.row(a).to_owned(), att.row(b).to_owned());
        for dr in start..r {
            let w = if b > a { (dr - a) as f32 / (b - a) as f32 } else { 0.0 };
            Zip::from(att.row_mut(dr)).and(&a_row).and(&b_row).for_each(|v, &x, &y| *v = x + w * (y - x));
            repaired.push(dr);
        }
    }
    repaired
}

/// `-ln(I - dark)` for every 16-bit count `I` (0 at or below dark), from a small
/// process-wide cache: building it costs 65,536 logarithms (~1.5 ms, one thread) per plane,
/// and a stream of scans from one scanner shares one or two dark levels.
fn ln_table_for(dark: f32) -> std::sync::Arc<Vec<f32>> {
    use std::sync::{Arc, Mutex};
    const CAPACITY: usize = 4;
    static CACHE: Mutex<Vec<(u32, Arc<Vec<f32>>)>> = Mutex::new(Vec::new());
    let key = dark.to_bits();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = cache.iter().position(|(k, _)| *k == key) {
        let hit = cache.remove(i);
        let table = hit.1.clone();
        cache.push(hit);
        return table;
    }
    let table: Arc<Vec<f32>> = Arc::new(
        (0..=u16::MAX as u32).map(|c| if c as f32 > dark { -((c as f32 - dark).ln()) } else { 0.0 }).collect(),
    );
    if cache.len() >= CAPACITY {
        cache.remove(0);
    }
    cache.push((key, table.clone()));
    table
}

/// One detector row, branch-free so it vectorises: every pixel computes `-ln max(T, floor)`
/// and the flags, then selects.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn calibrate_row(
    counts: &[u16],
    att: &mut [f32],
    fl: &mut [u8],
    scale: impl Fn(usize) -> f32,
    dark: f32,
    saturation: f32,
    floor: f32,
    max_att: f32,
) {
    let n = counts.len().min(att.len()).min(fl.len());
    let (counts, att, fl) = (&counts[..n], &mut att[..n], &mut fl[..n]);
    for i in 0..n {
        let c = counts[i] as f32;
        let t = (c - dark) * scale(i);
        let a = -fast_ln(t.max(floor));
        let (v, f) = settle_pixel(c, a, t < floor, dark, saturation, max_att);
        att[i] = v;
        fl[i] |= f;
    }
}

/// [`calibrate_row`] with `-ln(I - dark)` from a table; `offset(i)` is `-ln(scale)`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn calibrate_row_table(
    counts: &[u16],
    att: &mut [f32],
    fl: &mut [u8],
    table: &[f32],
    offset: impl Fn(usize) -> f32,
    dark: f32,
    saturation: f32,
    max_att: f32,
) {
    let n = counts.len().min(att.len()).min(fl.len());
    let (counts, att, fl) = (&counts[..n], &mut att[..n], &mut fl[..n]);
    let table = &table[..65536];
    for i in 0..n {
        let raw = counts[i];
        let c = raw as f32;
        let a = table[raw as usize] + offset(i);
        // A above -ln(floor) is T below the floor.
        let (v, f) = settle_pixel(c, a, a > max_att, dark, saturation, max_att);
        att[i] = v;
        fl[i] |= f;
    }
}

/// The attenuation and flags of one pixel of count `c` whose attenuation came out as `a`:
/// saturated reads 0 (the true transmission is at least this high), dead (at or below dark)
/// and below-floor read `max_att`. Branch-free selects, so the row loops vectorise.
#[inline(always)]
fn settle_pixel(c: f32, a: f32, below_floor: bool, dark: f32, saturation: f32, max_att: f32) -> (f32, u8) {
    let is_sat = c >= saturation;
    let is_dead = !is_sat & (c <= dark);
    let is_floor = !is_sat & !is_dead & below_floor;
    let att = if is_sat {
        0.0
    } else if is_dead | is_floor {
        max_att
    } else {
        a
    };
    let fl = ((is_sat as u8) * flags::SATURATED) | ((is_dead as u8) * flags::DEAD) | ((is_floor as u8) * flags::FLOOR);
    (att, fl)
}

/// The `p`-th percentile of 16-bit counts, by histogram (one pass, no sort).
fn percentile_u16(a: &ndarray::ArrayView2<u16>, p: f32) -> f32 {
    let mut hist = vec![0u64; 65536];
    for &v in a.iter() {
        hist[v as usize] += 1;
    }
    let target = ((p.clamp(0.0, 100.0) / 100.0) as f64 * (a.len() as f64 - 1.0)).round() as u64;
    let mut seen = 0u64;
    for (v, &n) in hist.iter().enumerate() {
        seen += n;
        if seen > target {
            return v as f32;
        }
    }
    65535.0
}

/// Natural log for positive normal floats, accurate to ~1e-7 relative: mantissa reduced to
/// [sqrt(1/2), sqrt(2)) and `ln m = 2 atanh((m-1)/(m+1))` by its odd series. The calibration
/// loop calls it once per pixel and plane; it is branch-free so the loop vectorises, which
/// libm's `ln` does not.
#[inline(always)]
pub fn fast_ln(x: f32) -> f32 {
    const LN2: f32 = std::f32::consts::LN_2;
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    // Fold [sqrt2, 2) down to [sqrt2/2, 1) so |t| stays below 0.172.
    let fold = m > std::f32::consts::SQRT_2;
    m = if fold { m * 0.5 } else { m };
    e += fold as i32;
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let series = t * (2.0 + t2 * (2.0 / 3.0 + t2 * (2.0 / 5.0 + t2 * (2.0 / 7.0 + t2 * (2.0 / 9.0)))));
    e as f32 * LN2 + series
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{AirRegion, CalibrationSpec, PlaneFiles, ScanDescriptor, SourceKind, SourceSpec};

    #[test]
    fn fast_ln_matches_libm() {
        let mut x = 1e-6f32;
        while x < 70_000.0 {
            let (a, b) = (fast_ln(x), x.ln());
            assert!((a - b).abs() <= 2e-6 * b.abs().max(1.0), "ln({x}): {a} vs {b}");
            x *= 1.013;
        }
    }

    #[test]
    fn ln_tables_are_shared_per_dark_level_and_exact() {
        let a = ln_table_for(200.0);
        let b = ln_table_for(200.0);
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        assert_eq!(a[200], 0.0);
        assert_eq!(a[201], 0.0); // -ln(1)
        assert_eq!(a[1200], -(1000f32.ln()));
        let c = ln_table_for(100.0);
        assert_eq!(c[1100], -(1000f32.ln()));
        for d in 0..10 {
            ln_table_for(d as f32);
        }
        assert_eq!(ln_table_for(200.0)[1200], -(1000f32.ln()));
    }

    fn scan_with(cal: CalibrationSpec, high: Array2<u16>, low: Option<Array2<u16>>) -> Scan {
        let source = SourceSpec {
            kind: SourceKind::Linac,
            high_energy: 6.0,
            low_energy: low.as_ref().map(|_| 4.0),
            extra: Default::default(),
        };
        let mut d = ScanDescriptor::minimal("t", source, PlaneFiles { high: "h".into(), low: None });
        d.calibration = cal;
        Scan::new(d, high, low).unwrap()
    }

    #[test]
    fn planes_in_any_memory_order_calibrate_alike() {
        // A console may hand over column-major planes (one detector read-out per column).
        use ndarray::ShapeBuilder;
        let scan = crate::example::container_scan(20.0, 3);
        let fortran = |a: &Array2<u16>| {
            let mut f = Array2::<u16>::zeros(a.dim().f());
            f.assign(a);
            f
        };
        let mut transposed = scan.clone();
        transposed.high = fortran(&scan.high);
        transposed.low = scan.low.as_ref().map(fortran);
        assert!(!transposed.high.is_standard_layout());
        let want = calibrate(&scan, &CalibrationOptions::default()).unwrap();
        let got = calibrate(&transposed, &CalibrationOptions::default()).unwrap();
        assert_eq!(got.high, want.high);
        assert_eq!(got.low, want.low);
        assert_eq!(got.flags, want.flags);
    }

    #[test]
    fn per_row_dark_and_air_give_beer_lambert_attenuation() {
        // Row r: dark 100 + r, air 40000 + 1000 r; column c transmits exp(-0.5 c).
        let (rows, cols) = (4, 6);
        let dark: Vec<f32> = (0..rows).map(|r| 100.0 + r as f32).collect();
        let air: Vec<f32> = (0..rows).map(|r| 40_000.0 + 1000.0 * r as f32).collect();
        let high = Array2::from_shape_fn((rows, cols), |(r, c)| {
            (dark[r] + (air[r] - dark[r]) * (-0.5 * c as f32).exp()).round() as u16
        });
        let cal = CalibrationSpec {
            dark: Some(PlaneCounts { high: Counts::PerRow(dark.clone()), low: None }),
            air: Some(PlaneCounts { high: Counts::PerRow(air.clone()), low: None }),
            ..Default::default()
        };
        let att = calibrate(&scan_with(cal, high, None), &CalibrationOptions::default()).unwrap();
        for r in 0..rows {
            for c in 0..cols {
                // Rounding to whole counts limits agreement to ~1 count in (air - dark).
                let expect = 0.5 * c as f32;
                let tol = (1.0 / ((air[r] - dark[r]) * (-expect).exp())).max(1e-4);
                assert!((att.high[[r, c]] - expect).abs() < tol, "r{r} c{c}: {} vs {expect}", att.high[[r, c]]);
            }
        }
        assert!(att.flags.iter().all(|&f| f == 0));
    }

    #[test]
    fn dead_saturated_and_floor_pixels_are_flagged_not_nan() {
        let high = ndarray::array![[50u16, 65535, 101, 30000], [0, 0, 0, 0]];
        let cal = CalibrationSpec {
            dark: Some(PlaneCounts { high: Counts::Scalar(100.0), low: None }),
            air: Some(PlaneCounts { high: Counts::PerRow(vec![60000.0, 60000.0]), low: None }),
            ..Default::default()
        };
        // Row 1 (no count above dark) is a dead detector row; keep it unrepaired here.
        let opts = CalibrationOptions { dead_row_repair_max_run: 0, ..Default::default() };
        let att = calibrate(&scan_with(cal, high, None), &opts).unwrap();
        assert!(att.high.iter().all(|v| v.is_finite()));
        assert_eq!(att.flags[[0, 0]], flags::DEAD);
        assert_eq!(att.flags[[0, 1]], flags::SATURATED);
        assert_eq!(att.high[[0, 1]], 0.0);
        // 1 count above dark of 59,900 is T = 1.7e-5: above the 1e-5 floor.
        assert_eq!(att.flags[[0, 2]], 0);
        assert!(att.flags.row(1).iter().all(|&f| f == flags::DEAD));
        assert_eq!(att.high[[1, 0]], att.max_attenuation);
    }

    /// Rows `dead` read dark in both planes (dark 100 + r, no open beam either); the others
    /// see open beam in columns 0..4 and then transmission exp(-(0.2 r + 0.1 c)) (high) and
    /// exp(-(0.3 r + 0.1 c)) (low), so the exact attenuation of any row is known.
    fn scan_with_dead_rows(rows: usize, dead: &[usize]) -> Scan {
        let cols = 12;
        let (air, dark) = (50_000.0f32, |r: usize| 100.0 + r as f32);
        let plane = |k: f32| {
            Array2::from_shape_fn((rows, cols), |(r, c)| {
                let a = if c < 4 { 0.0 } else { k * r as f32 + 0.1 * c as f32 };
                if dead.contains(&r) { dark(r) as u16 } else { (dark(r) + air * (-a).exp()).round() as u16 }
            })
        };
        let dark_rows = Counts::PerRow((0..rows).map(dark).collect());
        let cal = CalibrationSpec {
            dark: Some(PlaneCounts { high: dark_rows.clone(), low: Some(dark_rows) }),
            air_region: Some(AirRegion { rows: None, columns: Some([0, 4]) }),
            ..Default::default()
        };
        scan_with(cal, plane(0.2), Some(plane(0.3)))
    }

    #[test]
    fn dead_detector_rows_are_interpolated_from_their_live_neighbours() {
        // A single dead row, a run of two, and one at each edge.
        let (rows, dead) = (16, [0usize, 5, 9, 10, 15]);
        let att = calibrate(&scan_with_dead_rows(rows, &dead), &CalibrationOptions::default()).unwrap();
        let low = att.low.as_ref().unwrap();
        let exact = |k: f32, r: usize, c: usize| if c < 4 { 0.0 } else { k * r as f32 + 0.1 * c as f32 };
        for c in 0..12 {
            // Inside: linear between the live rows either side, which is exact for attenuation
            // linear in the row. At the edges: the nearest live row's value.
            for (r, src) in [(5, 5), (9, 9), (10, 10), (0, 1), (15, 14)] {
                let (h, l) = (att.high[[r, c]], low[[r, c]]);
                assert!((h - exact(0.2, src, c)).abs() < 2e-3, "high r{r} c{c}: {h}");
                assert!((l - exact(0.3, src, c)).abs() < 2e-3, "low r{r} c{c}: {l}");
            }
        }
        for r in 0..rows {
            let want = if dead.contains(&r) { flags::INTERPOLATED } else { 0 };
            assert!(att.flags.row(r).iter().all(|&f| f == want), "row {r}: {:?}", att.flags.row(r));
        }
    }

    #[test]
    fn dead_rows_of_a_container_scan_read_close_to_the_lost_rows() {
        // Three detector rows die (read dark, as in the generator): one in the rows that track
        // the source intensity, one in the load, one beside another in the load.
        let scan = crate::example::container_scan(20.0, 3);
        let mut broken = scan.clone();
        let dead = [5usize, 110, 111];
        for &r in &dead {
            broken.high.row_mut(r).fill(220);
            broken.low.as_mut().unwrap().row_mut(r).fill(220);
        }
        let truth = calibrate(&scan, &CalibrationOptions::default()).unwrap();
        let off = CalibrationOptions { dead_row_repair_max_run: 0, ..Default::default() };
        let unrepaired = calibrate(&broken, &off).unwrap();
        assert!(unrepaired.high.row(110).iter().all(|&a| a == unrepaired.max_attenuation));
        let got = calibrate(&broken, &CalibrationOptions::default()).unwrap();
        let mean_abs = |a: ArrayView1<f32>, b: ArrayView1<f32>| {
            a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
        };
        for &r in &dead {
            // Against a load whose attenuation spans 0..6: the lost row is recovered to a few
            // hundredths on average (the neighbours differ from it by noise and real edges).
            let err = mean_abs(got.high.row(r), truth.high.row(r));
            assert!(err < 0.05, "row {r}: mean |error| {err}");
            assert!(got.flags.row(r).iter().all(|&f| f & flags::INTERPOLATED != 0 && f & flags::DEAD == 0));
        }
        // A dead row among the intensity-tracking rows does not bias the other rows.
        for r in [0, 60, 140] {
            let err = mean_abs(got.high.row(r), truth.high.row(r));
            assert!(err < 1e-3, "live row {r} moved by {err}");
        }
    }

    #[test]
    fn long_dead_runs_and_repair_off_stay_dead_at_the_maximum_attenuation() {
        let dead = [3usize, 4, 5, 6, 7];
        let scan = scan_with_dead_rows(12, &dead);
        for max_run in [0, 4] {
            let opts = CalibrationOptions { dead_row_repair_max_run: max_run, ..Default::default() };
            let att = calibrate(&scan, &opts).unwrap();
            for &r in &dead {
                assert!(att.flags.row(r).iter().all(|&f| f == flags::DEAD), "max_run {max_run} row {r}");
                assert!(att.high.row(r).iter().all(|&a| a == att.max_attenuation));
            }
        }
        // A run of 5 is repaired once the limit allows it.
        let opts = CalibrationOptions { dead_row_repair_max_run: 5, ..Default::default() };
        let att = calibrate(&scan, &opts).unwrap();
        assert!((att.high[[5, 8]] - (0.2 * 5.0 + 0.8)).abs() < 2e-3, "{}", att.high[[5, 8]]);
    }

    #[test]
    fn air_is_estimated_from_an_air_region_of_columns_and_rows() {
        // Columns 0..4 are open beam (per-row gain); rows 0..2 are open beam and carry a
        // source intensity wobble of +-10% along the scan.
        let (rows, cols) = (6, 20);
        let gain = |r: usize| 30_000.0 + 2_000.0 * r as f32;
        let wobble = |c: usize| {
            if c < 4 {
                1.0
            } else if c.is_multiple_of(2) {
                1.1
            } else {
                0.9
            }
        };
        let truth = |r: usize, c: usize| if r < 2 || c < 4 { 0.0f32 } else { 1.2 };
        let high = Array2::from_shape_fn((rows, cols), |(r, c)| (gain(r) * wobble(c) * (-truth(r, c)).exp()) as u16);
        let cal = CalibrationSpec {
            air_region: Some(AirRegion { rows: Some([0, 2]), columns: Some([0, 4]) }),
            ..Default::default()
        };
        let att = calibrate(&scan_with(cal, high, None), &CalibrationOptions::default()).unwrap();
        for r in 2..rows {
            for c in 4..cols {
                assert!((att.high[[r, c]] - 1.2).abs() < 2e-3, "r{r} c{c} {}", att.high[[r, c]]);
            }
        }
    }

    #[test]
    fn bad_calibration_is_a_typed_error_naming_the_scan() {
        let high = Array2::from_elem((3, 3), 1000u16);
        for (cal, needle) in [
            (
                CalibrationSpec {
                    dark: Some(PlaneCounts { high: Counts::Scalar(f32::NAN), low: None }),
                    ..Default::default()
                },
                "finite",
            ),
            (
                CalibrationSpec {
                    dark: Some(PlaneCounts { high: Counts::Scalar(-3.0), low: None }),
                    ..Default::default()
                },
                "non-negative",
            ),
            (
                CalibrationSpec {
                    air: Some(PlaneCounts { high: Counts::PerRow(vec![1.0, 2.0]), low: None }),
                    ..Default::default()
                },
                "3 detector rows",
            ),
            (
                CalibrationSpec {
                    dark: Some(PlaneCounts { high: Counts::Scalar(500.0), low: None }),
                    air: Some(PlaneCounts { high: Counts::Scalar(400.0), low: None }),
                    ..Default::default()
                },
                "not above dark",
            ),
            (
                CalibrationSpec {
                    air_region: Some(AirRegion { rows: Some([2, 9]), columns: None }),
                    ..Default::default()
                },
                "outside",
            ),
        ] {
            let scan = scan_with(cal, high.clone(), None);
            let err = calibrate(&scan, &CalibrationOptions::default()).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, ScanError::Calibration { .. }) && msg.contains(needle) && msg.starts_with("t:"),
                "{msg}"
            );
        }
    }
}
