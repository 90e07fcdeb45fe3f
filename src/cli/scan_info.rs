//! What `nii-atr info` reports about a scan: sizes, energies, calibration, plane statistics
//! and material fractions.

use serde::Serialize;

use nii_atr_core::preprocess::Preprocessed;
use nii_atr_core::preprocess::calibration::flags;
use nii_atr_core::preprocess::materials::MaterialClass;
use nii_atr_core::scan::{CalibrationSpec, Counts, Scan, ScanKind};

/// Everything `info` reports about one scan.
#[derive(Debug, Clone, Serialize)]
pub struct ScanInfo {
    /// The descriptor's scan id.
    pub scan_id: String,
    /// The file it was read from.
    pub file: Option<String>,
    /// Raw counts or a rendered picture.
    pub kind: ScanKind,
    /// Detector rows, counts.
    pub rows: usize,
    /// Scan lines, counts.
    pub columns: usize,
    /// Pixel pitch along the vehicle and vertically, mm.
    pub pixel_pitch_mm: [f32; 2],
    /// Physical size along the vehicle and vertically, in metres.
    pub size_m: [f32; 2],
    /// Source kind and energies, e.g. `linac 6/4 MV`.
    pub source: String,
    /// Whether the scan has a low-energy plane.
    pub dual_energy: bool,
    /// ISO size-type code and container number, when the descriptor gives them.
    pub container: Option<String>,
    /// Where dark and air counts came from.
    pub calibration: CalibrationInfo,
    /// Counts and attenuation statistics per plane (high, then low).
    pub planes: Vec<PlaneStats>,
    /// Pixels flagged by calibration.
    pub flagged: FlaggedPixels,
    /// The low-energy plane's measured lag along the scan and whether it was corrected.
    pub energy_registration: Option<nii_atr_core::preprocess::registration::EnergyRegistration>,
    /// Name of the material profile used.
    pub profile: String,
    /// Share of pixels per material class, only classes present.
    pub material_fractions: Vec<(MaterialClass, f64)>,
    /// The manifest's lines, one sentence each (`declared empty` first when it says so).
    pub manifest: Vec<String>,
}

/// Where a scan's calibration counts came from.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationInfo {
    /// The high plane's dark counts as given, or `0 (not given)`.
    pub dark: String,
    /// How air (open-beam) counts were found: given, or estimated from what.
    pub air: String,
    /// Per-row air counts of the high plane used: minimum, mean, maximum.
    pub air_high_counts: [f32; 3],
}

/// Statistics of one plane.
#[derive(Debug, Clone, Serialize)]
pub struct PlaneStats {
    /// `high` or `low`.
    pub plane: &'static str,
    /// Lowest raw count.
    pub counts_min: u16,
    /// Mean raw count.
    pub counts_mean: f64,
    /// Highest raw count.
    pub counts_max: u16,
    /// Mean attenuation, `-ln T`.
    pub attenuation_mean: f64,
    /// 99th percentile of the attenuation.
    pub attenuation_p99: f32,
}

/// How many pixels calibration flagged, by flag.
#[derive(Debug, Clone, Serialize)]
pub struct FlaggedPixels {
    /// Pixels without signal (at or below dark).
    pub dead: u64,
    /// Pixels at the saturation count.
    pub saturated: u64,
    /// Pixels whose transmission fell below the floor (attenuation is a lower bound).
    pub below_floor: u64,
    /// Detector rows found dead and interpolated from their neighbours (scanner QA: a
    /// detector channel to replace).
    pub repaired_rows: Vec<usize>,
}

fn describe_counts(c: &Counts) -> String {
    match c {
        Counts::Scalar(v) => format!("{v}"),
        Counts::PerRow(v) => {
            let (lo, hi) = v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            format!("per row, {lo}..{hi}")
        }
    }
}

fn describe_air(cal: &CalibrationSpec, kind: ScanKind) -> String {
    if kind == ScanKind::Rendered {
        return "rendered image: grey level taken as transmission".into();
    }
    let mut parts = Vec::new();
    if let Some(a) = &cal.air {
        parts.push(format!("given (high {})", describe_counts(&a.high)));
    } else if let Some([c0, c1]) = cal.air_region.as_ref().and_then(|r| r.columns) {
        parts.push(format!("estimated per row from columns {c0}..{c1}"));
    } else if let Some([r0, r1]) = cal.air_region.as_ref().and_then(|r| r.rows) {
        parts.push(format!("estimated from rows {r0}..{r1}"));
    } else {
        parts.push("estimated from the brightest counts (99.9th percentile)".into());
    }
    if let Some([r0, r1]) = cal.air_region.as_ref().and_then(|r| r.rows) {
        parts.push(format!("source intensity tracked by rows {r0}..{r1}"));
    }
    parts.join("; ")
}

impl ScanInfo {
    /// Gathers the report from a scan and its preprocessing.
    pub fn gather(scan: &Scan, pre: &Preprocessed) -> Self {
        let d = &scan.descriptor;
        let att = &pre.attenuation;
        let mut planes = vec![plane_stats("high", &scan.high, &att.high)];
        if let (Some(l), Some(al)) = (&scan.low, &att.low) {
            planes.push(plane_stats("low", l, al));
        }
        let mut flagged = FlaggedPixels { dead: 0, saturated: 0, below_floor: 0, repaired_rows: Vec::new() };
        for &f in att.flags.iter() {
            flagged.dead += (f & flags::DEAD != 0) as u64;
            flagged.saturated += (f & flags::SATURATED != 0) as u64;
            flagged.below_floor += (f & flags::FLOOR != 0) as u64;
        }
        // Repair flags whole rows only.
        flagged.repaired_rows = (0..att.rows())
            .filter(|&r| att.flags.row(r).first().is_some_and(|&f| f & flags::INTERPOLATED != 0))
            .collect();
        let fr = pre.materials.class_fractions();
        let material_fractions =
            MaterialClass::ALL.iter().zip(fr).filter(|(_, f)| *f > 0.0).map(|(c, f)| (*c, f)).collect();
        let air = att.air_high.as_slice().unwrap_or(&[]);
        let (lo, hi, sum) = air
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY, 0.0f64), |(a, b, s), &x| (a.min(x), b.max(x), s + x as f64));
        let energies = match d.source.low_energy {
            Some(lo) => format!("{}/{} {}", d.source.high_energy, lo, d.source.unit()),
            None => format!("{} {}", d.source.high_energy, d.source.unit()),
        };
        let source = format!("{} {energies}", format!("{:?}", d.source.kind).to_lowercase());
        Self {
            scan_id: d.scan_id.clone(),
            file: scan.origin.as_ref().map(|p| p.display().to_string()),
            kind: scan.kind,
            rows: scan.rows(),
            columns: scan.columns(),
            pixel_pitch_mm: [d.pixel_pitch_mm.along, d.pixel_pitch_mm.vertical],
            size_m: [
                scan.columns() as f32 * d.pixel_pitch_mm.along / 1000.0,
                scan.rows() as f32 * d.pixel_pitch_mm.vertical / 1000.0,
            ],
            source,
            dual_energy: scan.is_dual_energy(),
            container: d.container.as_ref().map(|c| {
                format!("{} {}", c.iso_type.clone().unwrap_or_default(), c.id.clone().unwrap_or_default())
                    .trim()
                    .to_string()
            }),
            calibration: CalibrationInfo {
                dark: d
                    .calibration
                    .dark
                    .as_ref()
                    .map(|c| describe_counts(&c.high))
                    .unwrap_or_else(|| "0 (not given)".into()),
                air: describe_air(&d.calibration, scan.kind),
                air_high_counts: [lo, (sum / air.len().max(1) as f64) as f32, hi],
            },
            planes,
            flagged,
            energy_registration: pre.registration,
            profile: pre.profile.name.clone(),
            material_fractions,
            manifest: d
                .manifest
                .as_ref()
                .map(|m| {
                    let mut lines: Vec<String> = m
                        .goods
                        .iter()
                        .map(|g| {
                            format!(
                                "HS {} {} ({} packages, {} kg)",
                                g.hs_code,
                                g.description,
                                g.packages.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
                                g.gross_mass_kg.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
                            )
                        })
                        .collect();
                    if m.declared_empty {
                        lines.insert(0, "declared empty".into());
                    }
                    lines
                })
                .unwrap_or_default(),
        }
    }

    /// The human-readable report `info` prints.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "scan        {}{}",
            self.scan_id,
            self.file.as_ref().map(|f| format!("  ({f})")).unwrap_or_default()
        );
        let _ = writeln!(
            s,
            "size        {} rows x {} columns, pitch {} x {} mm = {:.2} m along x {:.2} m high",
            self.rows, self.columns, self.pixel_pitch_mm[0], self.pixel_pitch_mm[1], self.size_m[0], self.size_m[1]
        );
        let _ = writeln!(
            s,
            "source      {}{}",
            self.source,
            if self.kind == ScanKind::Rendered { "  (rendered 8-bit image: degraded single view)" } else { "" }
        );
        if let Some(c) = &self.container {
            let _ = writeln!(s, "container   {c}");
        }
        let _ = writeln!(s, "dark        {}", self.calibration.dark);
        let _ = writeln!(s, "air         {}", self.calibration.air);
        let a = self.calibration.air_high_counts;
        let _ = writeln!(s, "            high-plane open beam {:.0}..{:.0} counts (mean {:.0})", a[0], a[2], a[1]);
        let _ = writeln!(s, "plane       counts min / mean / max      attenuation mean / p99");
        for p in &self.planes {
            let _ = writeln!(
                s,
                "  {:<9} {:>6} / {:>8.1} / {:>6}      {:>6.3} / {:.3}",
                p.plane, p.counts_min, p.counts_mean, p.counts_max, p.attenuation_mean, p.attenuation_p99
            );
        }
        let _ = writeln!(
            s,
            // DEAD also marks pixels at or below dark behind an impenetrable load: "dead" alone
            // reads as a detector fault to an operator.
            "flagged     {} without signal (dead or at dark), {} saturated, {} below the transmission floor",
            self.flagged.dead, self.flagged.saturated, self.flagged.below_floor
        );
        if !self.flagged.repaired_rows.is_empty() {
            let rows: Vec<String> = self.flagged.repaired_rows.iter().map(|r| r.to_string()).collect();
            let _ = writeln!(
                s,
                "dead rows   {} detector row(s) without signal, interpolated from their neighbours: {}",
                rows.len(),
                rows.join(", ")
            );
        }
        if let Some(r) = &self.energy_registration {
            let _ = writeln!(
                s,
                "energy lag  low plane {:+.2} scan lines behind the high one (gradient correlation {:.2}, {} pixel pairs){}",
                r.offset_columns,
                r.correlation,
                r.edge_pixels,
                if r.applied { ": resampled onto the high plane" } else { "" }
            );
        }
        let _ = writeln!(s, "profile     {}", self.profile);
        let fr: Vec<String> =
            self.material_fractions.iter().map(|(c, f)| format!("{} {:.1}%", c.name(), 100.0 * f)).collect();
        let _ = writeln!(s, "materials   {}", fr.join(", "));
        for (i, m) in self.manifest.iter().enumerate() {
            let _ = writeln!(s, "{}{m}", if i == 0 { "manifest    " } else { "            " });
        }
        s
    }
}

fn plane_stats(name: &'static str, counts: &ndarray::Array2<u16>, att: &ndarray::Array2<f32>) -> PlaneStats {
    let (mut lo, mut hi, mut sum) = (u16::MAX, 0u16, 0u64);
    for &v in counts.iter() {
        lo = lo.min(v);
        hi = hi.max(v);
        sum += v as u64;
    }
    let n = counts.len().max(1);
    let att_mean = att.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let mut sorted: Vec<f32> = att.iter().copied().collect();
    let k = (sorted.len() * 99 / 100).min(sorted.len().saturating_sub(1));
    let p99 = if sorted.is_empty() { 0.0 } else { *sorted.select_nth_unstable_by(k, f32::total_cmp).1 };
    PlaneStats {
        plane: name,
        counts_min: lo,
        counts_mean: sum as f64 / n as f64,
        counts_max: hi,
        attenuation_mean: att_mean,
        attenuation_p99: p99,
    }
}
