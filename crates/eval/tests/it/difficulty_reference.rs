//! The split by difficulty (CNR bins) against numbers computed without nii-atr's code by
//! eval/reference/difficulty_reference.py on the committed fixtures: COCO AP and AP50 from
//! pycocotools with the other bins' truths as crowd regions, brute-force hits, and a
//! Mann-Whitney / brute-force scan ROC of the scans whose hardest threat lies in the bin.

use std::path::{Path, PathBuf};

use nii_atr_eval::atr::AtrConfig;
use nii_atr_eval::{Dataset, EvalConfig, Predictions, evaluate};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join("tests/fixtures/coco").join(name)
}

fn close(ours: Option<f64>, theirs: &Value, tol: f64, what: &str) {
    match (ours, theirs.as_f64()) {
        (None, None) => {}
        (Some(a), Some(b)) => assert!((a - b).abs() <= tol, "{what}: {a} vs {b}"),
        (a, _) => panic!("{what}: {a:?} vs {theirs}"),
    }
}

#[test]
fn ap_hits_and_scan_roc_by_difficulty_agree_with_pycocotools_and_brute_force() {
    let reference: Value =
        serde_json::from_slice(&std::fs::read(fixture("difficulty_reference.json")).unwrap()).unwrap();
    let bins: Vec<f64> =
        reference["bins"].as_array().unwrap().iter().map(|b| b.as_f64().unwrap_or(f64::INFINITY)).collect();
    let limits: Vec<f64> = reference["pfa_limits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let config = EvalConfig {
        atr: AtrConfig { cnr_bins: bins.clone(), pfa_limits: limits.clone(), ..AtrConfig::default() },
        bootstrap: None,
        ..EvalConfig::default()
    };
    assert_eq!(config.coco.max_dets, vec![1, 10, 100]);
    for (set, rows) in reference["sets"].as_object().unwrap() {
        let gt = Dataset::from_coco_json(&fixture(&format!("{set}.gt.json"))).unwrap();
        let preds = Predictions::from_coco_json(&fixture(&format!("{set}.results.json")), &gt).unwrap();
        let report = evaluate(&gt, &preds, &config, set).unwrap().report;
        let ours = &report.atr.by_cnr;
        let rows = rows.as_array().unwrap();
        assert_eq!(ours.len(), rows.len(), "{set}");
        for (k, (b, want)) in ours.iter().zip(rows).enumerate() {
            let at = format!("{set} bin {k} [{}, {:?})", b.cnr_min, b.cnr_max);
            assert_eq!(b.n_truth as u64, want["n_truth"].as_u64().unwrap(), "{at} truths");
            assert_eq!(b.n_hit as u64, want["n_hit"].as_u64().unwrap(), "{at} hits");
            close(b.ap, &want["ap"], 1e-9, &format!("{at} AP"));
            close(b.ap50, &want["ap50"], 1e-9, &format!("{at} AP50"));
            assert_eq!(b.n_scans as u64, want["n_scans"].as_u64().unwrap(), "{at} scans");
            close(b.scan_auc, &want["auc"], 1e-12, &format!("{at} AUC"));
            let pds: Vec<f64> = want["pd_at_pfa"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(b.scan_pd_at_pfa.len(), pds.len(), "{at} Pd count");
            for ((p, want), l) in b.scan_pd_at_pfa.iter().zip(&pds).zip(&limits) {
                assert!((p.pd - want).abs() < 1e-12, "{at} Pd at Pfa {l}: {} vs {want}", p.pd);
            }
        }
        // The bins' truths add up to every truth that carries a CNR.
        let n: usize = ours.iter().map(|b| b.n_truth).sum();
        assert_eq!(n + report.atr.n_truth_without_cnr, gt.annotations.iter().filter(|g| !g.iscrowd).count(), "{set}");
    }
}
