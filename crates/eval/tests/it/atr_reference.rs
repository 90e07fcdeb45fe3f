//! Operating points against numbers computed independently in Python (Mann-Whitney AUC with
//! average ranks, brute-force Pd/Pfa over every threshold, brute-force lenient hits, a
//! straightforward FROC) by
//! eval/reference/make_reference.py on the committed fixtures.

use std::path::{Path, PathBuf};

use nii_atr_eval::atr::{AtrConfig, atr_metrics};
use nii_atr_eval::{Dataset, Predictions};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join("tests/fixtures/coco").join(name)
}

#[test]
fn roc_froc_and_per_class_pd_agree_with_independent_reference() {
    let reference: Value = serde_json::from_slice(&std::fs::read(fixture("reference.json")).unwrap()).unwrap();
    for set in ["mixed", "dense", "ties"] {
        let want = &reference["atr"][set];
        let gt = Dataset::from_coco_json(&fixture(&format!("{set}.gt.json"))).unwrap();
        let preds = Predictions::from_coco_json(&fixture(&format!("{set}.results.json")), &gt).unwrap();
        let m = atr_metrics(&gt, &preds, &AtrConfig::default());
        let roc = m.roc.as_ref().expect("fixtures have clean and threat scans");
        assert_eq!(roc.n_positive as u64, want["n_positive"].as_u64().unwrap(), "{set}");
        assert_eq!(roc.n_negative as u64, want["n_negative"].as_u64().unwrap(), "{set}");
        let auc = want["auc"].as_f64().unwrap();
        assert!((roc.auc - auc).abs() < 1e-12, "{set} AUC {} vs {auc}", roc.auc);
        for (p, key) in m.pd_at_pfa.iter().zip(["0.01", "0.05"]) {
            let pd = want["pd_at_pfa"][key].as_f64().unwrap();
            assert!((p.pd - pd).abs() < 1e-12, "{set} Pd at Pfa {key}: {} vs {pd}", p.pd);
        }
        for (p, key) in m.pfa_at_pd.iter().zip(["0.9", "0.95"]) {
            let pfa = want["pfa_at_pd"][key].as_f64().unwrap();
            assert!((p.pfa - pfa).abs() < 1e-12, "{set} Pfa at Pd {key}: {} vs {pfa}", p.pfa);
        }
        let froc = &want["froc"];
        assert_eq!(m.froc.points.len() as u64, froc["n_points"].as_u64().unwrap(), "{set} FROC points");
        for ((rate, ours), theirs) in m.froc.sensitivity_at.iter().zip(froc["sensitivity_at"].as_array().unwrap()) {
            let theirs = theirs.as_f64().unwrap();
            assert!((ours - theirs).abs() < 1e-12, "{set} FROC at {rate} FP/scan: {ours} vs {theirs}");
        }
        let mean = froc["mean_sensitivity"].as_f64().unwrap();
        assert!((m.froc.mean_sensitivity - mean).abs() < 1e-12, "{set} FROC mean");
        for c in &m.per_class {
            let w = &want["per_class"][c.category_id.to_string()];
            assert_eq!(c.n_truth as u64, w["n_truth"].as_u64().unwrap(), "{set} class {}", c.category_id);
            assert_eq!(c.n_hit as u64, w["n_hit"].as_u64().unwrap(), "{set} class {}", c.category_id);
        }
    }
}
