//! Outputs of an inspection: the report JSON, the officer's overlay PNG and COCO results.

use super::InspectError;
use super::findings::{Decision, Inspection};
use crate::detect::spec::ThreatCategory;
use image::{Rgb, RgbImage};
use serde::Serialize;
use std::path::Path;

/// Writes the versioned report (`schema_version` inside).
pub fn write_report(inspection: &Inspection, path: &Path) -> Result<(), InspectError> {
    let json = serde_json::to_string_pretty(inspection).expect("report types serialise");
    std::fs::write(path, json + "\n").map_err(|source| InspectError::Io { path: path.into(), error: source })
}

/// One entry of a COCO detection results file (what `pycocotools` `loadRes` reads).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CocoResult {
    /// The scan's image id in the COCO ground truth.
    pub image_id: u64,
    /// The model's class id.
    pub category_id: u32,
    /// `[x, y, width, height]` in pixels.
    pub bbox: [f32; 4],
    /// Confidence, 0..=1.
    pub score: f32,
}

/// COCO results of one scan: `category_id` is the model's class id.
pub fn coco_results(inspection: &Inspection, image_id: u64) -> Vec<CocoResult> {
    inspection
        .findings
        .iter()
        .map(|f| {
            let b = f.bbox_px;
            CocoResult { image_id, category_id: f.class_id, bbox: [b.x1, b.y1, b.width(), b.height()], score: f.score }
        })
        .collect()
}

fn threat_colour(t: ThreatCategory) -> Rgb<u8> {
    match t {
        ThreatCategory::Weapon | ThreatCategory::Explosive => Rgb([230, 20, 20]),
        ThreatCategory::Narcotics | ThreatCategory::Currency | ThreatCategory::Contraband => Rgb([240, 0, 200]),
        ThreatCategory::Tobacco | ThreatCategory::Alcohol => Rgb([250, 200, 0]),
        ThreatCategory::Shielding | ThreatCategory::Anomaly => Rgb([0, 220, 230]),
        ThreatCategory::Benign => Rgb([160, 160, 160]),
        ThreatCategory::Unknown => Rgb([255, 255, 255]),
    }
}

/// 5x7 bitmap glyphs (one byte per row, low 5 bits) for labels: no font file needed.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [30, 17, 17, 17, 17, 17, 30],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'J' => [7, 2, 2, 2, 2, 18, 12],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 17, 25, 21, 19, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'Q' => [14, 17, 17, 17, 21, 18, 13],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 10, 4, 4, 4, 4],
        'Z' => [31, 1, 2, 4, 8, 16, 31],
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '-' | '_' => [0, 0, 0, 31, 0, 0, 0],
        ' ' => [0; 7],
        _ => [31, 17, 17, 17, 17, 17, 31],
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

/// Text with a dark backing box so it reads on any part of the scan.
fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: i64, c: Rgb<u8>) {
    let w = text.chars().count() as i64 * 6 * scale;
    for yy in y - scale..y + 8 * scale {
        for xx in x - scale..x + w {
            put(img, xx, yy, Rgb([0, 0, 0]));
        }
    }
    for (i, ch) in text.chars().enumerate() {
        for (row, bits) in glyph(ch).iter().enumerate() {
            for col in 0..5 {
                if bits & (1 << (4 - col)) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            put(img, x + (i as i64 * 6 + col) * scale + dx, y + row as i64 * scale + dy, c);
                        }
                    }
                }
            }
        }
    }
}

fn draw_rect(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, thickness: i64, c: Rgb<u8>) {
    for t in 0..thickness {
        for x in x0..=x1 {
            put(img, x, y0 + t, c);
            put(img, x, y1 - t, c);
        }
        for y in y0..=y1 {
            put(img, x0 + t, y, c);
            put(img, x1 - t, y, c);
        }
    }
}

/// The pseudo-colour view with every finding boxed and labelled (`class score`), and a
/// banner with the decision: what an officer opens first.
pub fn overlay(pseudo_colour: &RgbImage, inspection: &Inspection) -> RgbImage {
    let mut img = pseudo_colour.clone();
    // Labels and lines grow with the image so they stay legible on a 6,000-pixel scan.
    let scale = (img.height().max(img.width()) as i64 / 600).clamp(1, 4);
    // Boxes lowest score first, so the best end up on top.
    for f in inspection.findings.iter().rev() {
        let b = f.bbox_px;
        let (x0, y0) = (b.x1.floor() as i64, b.y1.floor() as i64);
        let (x1, y1) = (b.x2.ceil() as i64 - 1, b.y2.ceil() as i64 - 1);
        draw_rect(&mut img, x0, y0, x1, y1, scale, threat_colour(f.threat));
    }
    // Labels best first; one that would cover an earlier label is left out (its box stays),
    // so crowded areas stay readable.
    let mut placed: Vec<(i64, i64, i64, i64)> = Vec::new();
    for f in &inspection.findings {
        let b = f.bbox_px;
        let label = format!("{} {:.2}", f.class_name, f.score);
        let x = b.x1 as i64 + scale;
        let y = if b.y1 as i64 > 10 * scale { b.y1 as i64 - 9 * scale } else { b.y2 as i64 + 2 * scale };
        let rect = (x - scale, y - scale, x + label.len() as i64 * 6 * scale, y + 8 * scale);
        if placed.iter().any(|p| rect.0 < p.2 && p.0 < rect.2 && rect.1 < p.3 && p.1 < rect.3) {
            continue;
        }
        placed.push(rect);
        draw_text(&mut img, x, y, &label, scale, threat_colour(f.threat));
    }
    let banner_colour = match inspection.decision {
        Decision::Clear => Rgb([60, 200, 60]),
        Decision::Review => Rgb([250, 200, 0]),
        Decision::Alarm => Rgb([230, 20, 20]),
    };
    let banner = format!("{} risk {:.2}", inspection.decision, inspection.risk_score);
    draw_text(&mut img, 2 * scale, 2 * scale, &banner, scale, banner_colour);
    img
}

/// Writes the overlay ([`overlay`]) as a PNG.
pub fn write_overlay(pseudo_colour: &RgbImage, inspection: &Inspection, path: &Path) -> Result<(), InspectError> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let img = overlay(pseudo_colour, inspection);
    let file = std::fs::File::create(path).map_err(|source| InspectError::Io { path: path.into(), error: source })?;
    // Fast deflate: an overlay is written per scan and read once; the default level costs
    // several times the encoding time for files ~20% smaller. Paeth alone compresses these
    // views within 1% of adaptive filtering (which tries five filters per row) in 85% of the time.
    PngEncoder::new_with_quality(std::io::BufWriter::new(file), CompressionType::Fast, FilterType::Paeth)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .map_err(|source| InspectError::Image { path: path.into(), error: source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::BoxXyxy;
    use crate::inspect::findings::{BoxMm, Finding, FindingKind, MaterialEvidence, StageTimings};

    fn inspection() -> Inspection {
        Inspection {
            schema_version: 1,
            scan_id: "s".into(),
            scan_path: None,
            rows: 40,
            columns: 80,
            pixel_pitch_mm: [5.0, 5.0],
            decision: Decision::Alarm,
            risk_score: 0.9,
            reasons: vec![],
            findings: vec![Finding {
                kind: FindingKind::Object,
                class_id: 1,
                class_name: "gun".into(),
                threat: ThreatCategory::Weapon,
                score: 0.9,
                bbox_px: BoxXyxy::new(10.0, 20.0, 30.0, 35.0),
                bbox_mm: BoxMm { x1: 50.0, y1: 100.0, x2: 150.0, y2: 175.0 },
                model: "m".into(),
                evidence: MaterialEvidence {
                    dominant_class: "metal",
                    dominant_fraction: 1.0,
                    mean_z_eff: Some(26.0),
                    mean_attenuation: 3.0,
                },
                region: None,
                cargo_check: None,
            }],
            models: vec![],
            timings: StageTimings::default(),
            cargo: None,
            energy_registration: None,
        }
    }

    #[test]
    fn coco_boxes_are_xywh() {
        let r = coco_results(&inspection(), 7);
        assert_eq!(r, vec![CocoResult { image_id: 7, category_id: 1, bbox: [10.0, 20.0, 20.0, 15.0], score: 0.9 }]);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json[0]["bbox"][2], 20.0);
    }

    #[test]
    fn overlay_draws_the_box_in_the_threat_colour() {
        let base = RgbImage::from_pixel(80, 40, Rgb([255, 255, 255]));
        let img = overlay(&base, &inspection());
        let red = threat_colour(ThreatCategory::Weapon);
        // Box edges (x 10..29, y 20..34) are red; the inside is untouched.
        assert_eq!(*img.get_pixel(10, 27), red);
        assert_eq!(*img.get_pixel(29, 34), red);
        assert_eq!(*img.get_pixel(20, 28), Rgb([255, 255, 255]));
        assert_eq!(img.dimensions(), (80, 40));
    }

    #[test]
    fn report_json_round_trips_its_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        write_report(&inspection(), &p).unwrap();
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["decision"], "alarm");
        assert_eq!(v["findings"][0]["threat"], "weapon");
        assert_eq!(v["findings"][0]["bbox_mm"]["x2"], 150.0);
        assert_eq!(v["findings"][0]["evidence"]["dominant_class"], "metal");
        let err = write_report(&inspection(), &dir.path().join("missing/dir/r.json")).unwrap_err();
        assert!(matches!(err, InspectError::Io { .. }));
    }
}
