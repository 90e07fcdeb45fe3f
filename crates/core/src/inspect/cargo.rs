//! Declared-cargo verification results as findings, so that manifest discrepancies take part
//! in the decision like any detector's box.

use super::findings::{BoxMm, Finding, FindingKind, MaterialEvidence};
use crate::detect::BoxXyxy;
use crate::detect::spec::ThreatCategory;

/// One finding per flagged check of declared-cargo verification, boxed on the region it points at (else the cargo region, else
/// the whole scan), so manifest discrepancies take part in the decision like any finding. They
/// weigh as `contraband` in the decision rule.
pub fn cargo_findings(
    result: &crate::verify::VerificationResult,
    scan: &crate::scan::Scan,
    attenuation: &crate::preprocess::calibration::AttenuationImage,
    materials: &crate::preprocess::materials::MaterialMap,
    cfg: &crate::verify::VerifyConfig,
) -> Vec<Finding> {
    let pitch = &scan.descriptor.pixel_pitch_mm;
    let whole = BoxXyxy::new(0.0, 0.0, attenuation.columns() as f32, attenuation.rows() as f32);
    let cargo_box = result.measures.as_ref().map_or(whole, |m| {
        let (c, r) = (m.region.columns, m.region.rows);
        BoxXyxy::new(c[0] as f32, r[0] as f32, c[1] as f32, r[1] as f32)
    });
    result
        .flagged()
        .map(|check| {
            let bbox = check.regions.first().map_or(cargo_box, |g| {
                BoxXyxy::new(g.columns[0] as f32, g.rows[0] as f32, g.columns[1] as f32, g.rows[1] as f32)
            });
            Finding {
                kind: FindingKind::ManifestCheck,
                class_id: check.check as u32,
                class_name: check.check.name().to_string(),
                threat: ThreatCategory::Contraband,
                score: cfg.finding_score,
                bbox_px: bbox,
                bbox_mm: BoxMm::from_px(&bbox, pitch.along, pitch.vertical),
                model: "verify".to_string(),
                evidence: MaterialEvidence::in_box(&bbox, &attenuation.high, Some(materials)),
                region: None,
                cargo_check: Some(check.clone()),
            }
        })
        .collect()
}
