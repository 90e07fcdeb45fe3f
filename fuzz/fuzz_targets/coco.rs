#![no_main]
//! COCO ground truth and COCO results, split at the first NUL byte, through the evaluation's
//! readers and, when both read, a whole evaluation without bootstrap.

mod common;

use libfuzzer_sys::fuzz_target;
use nii_atr_eval::{Dataset, EvalConfig, Predictions, evaluate};

fuzz_target!(|data: &[u8]| {
    let (gt, results) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"[]"[..]),
    };
    let gt_path = common::file("gt.json", gt);
    let Ok(dataset) = Dataset::from_coco_json(&gt_path) else { return };
    let results_path = common::file("results.json", results);
    let Ok(predictions) = Predictions::from_coco_json(&results_path, &dataset) else { return };
    let config = EvalConfig { bootstrap: None, ..EvalConfig::default() };
    let _ = evaluate(&dataset, &predictions, &config, "fuzz");
});
