//! TIDE parity: error counts and dAP per type against tidecv 1.0.1 on the committed fixtures
//! (tests/fixtures/coco/tide_reference.json, made by eval/reference/tide_reference.py).

use std::path::{Path, PathBuf};

use nii_atr_eval::tide::{ERROR_TYPES, tide};
use nii_atr_eval::{Dataset, Predictions};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join("tests/fixtures/coco").join(name)
}

#[test]
fn tide_breakdown_agrees_with_tidecv() {
    let reference: Value = serde_json::from_slice(&std::fs::read(fixture("tide_reference.json")).unwrap()).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let set = case["set"].as_str().unwrap();
        let gt = Dataset::from_coco_json(&fixture(&format!("{set}.gt.json"))).unwrap();
        let preds = Predictions::from_coco_json(&fixture(&format!("{set}.results.json")), &gt).unwrap();
        let ours = tide(&gt, &preds, 100);
        let ap50 = case["ap50"].as_f64().unwrap();
        assert!((ours.ap50 - ap50).abs() < 1e-9, "{set} AP50 {} vs tidecv {ap50}", ours.ap50);
        for kind in ERROR_TYPES {
            let key = serde_json::to_value(kind).unwrap();
            let key = key.as_str().unwrap();
            assert_eq!(ours.counts[&kind] as u64, case["counts"][key].as_u64().unwrap(), "{set} {key} count");
            let theirs = case["delta_ap"][key].as_f64().unwrap();
            assert!(
                (ours.delta_ap[&kind] - theirs).abs() < 1e-9,
                "{set} {key} dAP {} vs tidecv {theirs}",
                ours.delta_ap[&kind]
            );
        }
    }
}
