//! Declared-cargo verification end to end on generated scans: the generator renders a 20 ft
//! container (empty, and loaded with garments), the scan core calibrates it, verification
//! measures the load and checks the manifest. The generator's recorded load mass is the
//! reference for the estimate.

use std::path::Path;

use nii_atr_core::preprocess::{PreprocessOptions, preprocess};
use nii_atr_core::scan::{Manifest, Scan};
use nii_atr_core::verify::{CheckKind, CommodityReference, Outcome, VerificationResult, VerifyConfig, verify};
use nii_atr_synth::case::build_case;
use nii_atr_synth::dataset::{build_profile, case_scan};
use nii_atr_synth::recipe::{Recipe, Split};
use nii_atr_synth::render::{ScannerPhysics, render};

use crate::common::catalogue;

fn recipe(mix: &str) -> Recipe {
    let text = format!(
        "schema_version = 1\nname = \"v\"\nseed = 7\n[splits]\ntest = 1\n[scanner]\npitch_mm = 10.0\nenergy_bins = 16\n\
         [mix]\ncontainer_types = {{ iso20 = 1.0 }}\nthreat_share = 0.0\nmismatch_share = 0.0\nartefact_share = 0.0\n{mix}"
    );
    Recipe::parse(&text, Path::new("v.toml")).unwrap()
}

/// The scan of case `index` and its true load mass.
fn case(r: &Recipe, index: usize) -> (Scan, f64) {
    let c = build_case(r, &catalogue(), Split::Test, index).unwrap();
    let physics =
        ScannerPhysics::new(&r.scanner.source_pair(), &r.scanner.detector, true, r.scanner.energy_bins).unwrap();
    let rendered = render(&c.scene, &r.scanner.fan(), &physics, &c.noise, c.seed).unwrap();
    let scan = case_scan(r, &c, &rendered, &build_profile(r).unwrap()).unwrap();
    (scan, c.load.iter().map(|l| l.mass_kg).sum())
}

fn run(scan: &Scan) -> VerificationResult {
    let pre = preprocess(scan, &PreprocessOptions::default()).unwrap();
    verify(scan, &pre.attenuation, &pre.materials, &CommodityReference::embedded().unwrap(), &VerifyConfig::default())
}

fn outcome(r: &VerificationResult, k: CheckKind) -> Outcome {
    r.check(k).unwrap().outcome
}

#[test]
fn loaded_and_empty_containers_are_measured_and_checked() {
    // A garment load: light organic cartons, nothing impenetrable.
    let (mut scan, true_kg) = case(&recipe("empty_share = 0.0\ncommodities = [\"garments\"]\n"), 0);
    assert!(true_kg > 500.0, "{true_kg}");
    let r = run(&scan);
    let m = r.measures.as_ref().unwrap_or_else(|| panic!("not measured: {:?}", r.measure_error));
    let err = (m.mass_kg - true_kg) / true_kg;
    assert!(err.abs() < 0.2, "estimated {:.0} kg vs true {true_kg:.0} kg", m.mass_kg);
    assert!(m.mix_by_mass[0] > 0.7, "garments are organic: {:?}", m.mix_by_mass);
    assert!(m.fill_ratio > 0.1 && m.length_fill > 0.3, "{} {}", m.fill_ratio, m.length_fill);
    // The interior lies inside the container's ends, 20 ft = 6.06 m at 10 mm.
    let [f, b] = m.region.container_columns;
    assert!(((b - f) as f64 * 0.01 - 6.058).abs() < 0.06, "{f}..{b}");
    assert!(m.region.floor_found);
    // Correctly declared: weight and commodity pass.
    assert_eq!(outcome(&r, CheckKind::WeightMismatch), Outcome::Passed, "{:?}", r.check(CheckKind::WeightMismatch));
    assert_eq!(
        outcome(&r, CheckKind::CommodityMismatch),
        Outcome::Passed,
        "{:?}",
        r.check(CheckKind::CommodityMismatch)
    );
    assert_eq!(outcome(&r, CheckKind::NotEmpty), Outcome::Skipped);

    // The same scan declared at half its mass, then declared empty.
    let declared = scan.descriptor.manifest.clone().unwrap();
    let mut half = declared.clone();
    half.goods[0].gross_mass_kg = Some(0.5 * true_kg);
    scan.descriptor.manifest = Some(half);
    let w = run(&scan);
    assert_eq!(outcome(&w, CheckKind::WeightMismatch), Outcome::Flagged);
    scan.descriptor.manifest = Some(Manifest { declared_empty: true, ..Manifest::default() });
    let e = run(&scan);
    assert_eq!(outcome(&e, CheckKind::NotEmpty), Outcome::Flagged);
    assert!(!e.check(CheckKind::NotEmpty).unwrap().regions.is_empty());
    // No manifest: every check skipped with the reason, the measures still there.
    scan.descriptor.manifest = None;
    let n = run(&scan);
    assert!(n.measures.is_some());
    assert!(n.checks.iter().all(|c| c.outcome == Outcome::Skipped && c.reason.contains("no manifest")));

    // A truly empty container declared empty: near zero load, passes.
    let (empty, true_kg) = case(&recipe("empty_share = 1.0\n"), 0);
    assert_eq!(true_kg, 0.0);
    let r = run(&empty);
    let m = r.measures.as_ref().unwrap();
    assert!(m.mass_kg.abs() < 250.0, "empty container measured {:.0} kg", m.mass_kg);
    assert_eq!(outcome(&r, CheckKind::NotEmpty), Outcome::Passed, "{:?}", r.check(CheckKind::NotEmpty));
}

#[test]
fn an_image_without_a_container_is_skipped_with_a_reason() {
    let (mut scan, _) = case(&recipe("empty_share = 1.0\n"), 0);
    // Open beam everywhere: counts at the air level in every pixel.
    let air = *scan.high.iter().max().unwrap();
    scan.high.fill(air);
    if let Some(low) = scan.low.as_mut() {
        let air = *low.iter().max().unwrap();
        low.fill(air);
    }
    let r = run(&scan);
    assert!(r.measures.is_none());
    assert!(r.measure_error.as_deref().unwrap().contains("no container"), "{:?}", r.measure_error);
    assert!(r.checks.iter().all(|c| c.outcome == Outcome::Skipped));
}

#[test]
fn inspection_carries_the_checks_and_a_flag_reaches_the_decision() {
    use nii_atr_core::inspect::findings::FindingKind;
    use nii_atr_core::inspect::{Decision, Pipeline, PipelineConfig};
    let (mut scan, _) = case(&recipe("empty_share = 0.0\ncommodities = [\"garments\"]\n"), 0);
    scan.descriptor.manifest = Some(Manifest { declared_empty: true, ..Manifest::default() });
    let cfg =
        PipelineConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join("models/pipeline.default.toml"))
            .unwrap();
    let (r, _) = Pipeline::load(cfg.clone()).unwrap().inspect(&scan).unwrap();
    let cargo = r.cargo.as_ref().expect("verification is on by default");
    assert_eq!(cargo.checks.len(), 4);
    let f = r.findings.iter().find(|f| f.kind == FindingKind::ManifestCheck).expect("a manifest finding");
    assert_eq!(f.class_name, "not_empty");
    assert_eq!(f.cargo_check.as_ref().unwrap().outcome, Outcome::Flagged);
    assert!(r.decision >= Decision::Review, "{:?}: {:?}", r.decision, r.reasons);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["cargo"]["checks"][3]["check"], "not_empty");
    // Verification off: no cargo block, no manifest finding.
    let mut off = cfg;
    off.verify.enabled = false;
    let (r, _) = Pipeline::load(off).unwrap().inspect(&scan).unwrap();
    assert!(r.cargo.is_none() && r.findings.iter().all(|f| f.kind != FindingKind::ManifestCheck));
}
