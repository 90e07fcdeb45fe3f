//! COCO parity: every number pycocotools 2.0.10 gives on the committed fixture sets
//! (tests/fixtures/coco, made by eval/reference/make_reference.py) must agree to 1e-9.

use std::path::{Path, PathBuf};

use nii_atr_eval::coco::{self, CocoParams};
use nii_atr_eval::{Dataset, Predictions};
use serde_json::Value;

const TOL: f64 = 1e-9;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join("tests/fixtures/coco")
}

fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not a number: {other}"),
    }
}

struct Mismatches(Vec<String>);

impl Mismatches {
    fn check(&mut self, what: &str, ours: f64, theirs: f64) {
        if (ours - theirs).abs() > TOL || ours.is_nan() {
            self.0.push(format!("{what}: nii-atr {ours} pycocotools {theirs}"));
        }
    }
}

#[test]
fn coco_metrics_agree_with_pycocotools_to_1e9() {
    let reference: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("reference.json")).expect("reference.json")).unwrap();
    assert_eq!(reference["schema_version"], 1);
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 9);
    let mut bad = Mismatches(Vec::new());
    let mut checked = 0usize;
    for case in cases {
        let name = format!("{} maxDets={}", case["set"], case["max_dets"]);
        let gt = Dataset::from_coco_json(&fixtures().join(case["gt"].as_str().unwrap())).unwrap();
        let preds = Predictions::from_coco_json(&fixtures().join(case["results"].as_str().unwrap()), &gt).unwrap();
        let max_dets: Vec<usize> =
            case["max_dets"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let params = CocoParams::with_max_dets(&max_dets).unwrap();
        let ev = coco::evaluate(&gt, &preds, &params).unwrap();

        // Thresholds must be bit-identical or summarize() would pick other rows.
        assert_eq!(ev.params.iou_thrs, floats(&case["iou_thrs"]), "{name}");
        assert_eq!(ev.params.rec_thrs, floats(&case["rec_thrs"]), "{name}");
        let cat_ids: Vec<i64> = case["cat_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        assert_eq!(ev.cat_ids, cat_ids, "{name}");
        assert_eq!(ev.img_ids.len() as u64, case["img_ids"].as_u64().unwrap());

        for (i, theirs) in floats(&case["stats"]).into_iter().enumerate() {
            bad.check(&format!("{name} stats[{i}]"), ev.stats[i], theirs);
            checked += 1;
        }
        let (n_t, n_k, n_a, n_m) = (10, cat_ids.len(), 4, max_dets.len());
        let pm = floats(&case["precision_mean_over_recall"]);
        let rc = floats(&case["recall"]);
        assert_eq!(pm.len(), n_t * n_k * n_a * n_m);
        assert_eq!(rc.len(), n_t * n_k * n_a * n_m);
        for t in 0..n_t {
            for k in 0..n_k {
                for a in 0..n_a {
                    for m in 0..n_m {
                        let idx = ((t * n_k + k) * n_a + a) * n_m + m;
                        let ours = coco::mean_valid((0..101).map(|r| ev.precision(t, r, k, a, m)));
                        bad.check(&format!("{name} mean precision[{t},:,{k},{a},{m}]"), ours, pm[idx]);
                        bad.check(&format!("{name} recall[{t},{k},{a},{m}]"), ev.recall(t, k, a, m), rc[idx]);
                        checked += 2;
                    }
                }
            }
        }
        let ours = ev.per_category();
        for (k, theirs) in case["per_category"].as_array().unwrap().iter().enumerate() {
            assert_eq!(ours[k].category_id, theirs["category_id"].as_i64().unwrap());
            let cid = ours[k].category_id;
            bad.check(&format!("{name} cat {cid} AP"), ours[k].ap, theirs["ap"].as_f64().unwrap());
            bad.check(&format!("{name} cat {cid} AP50"), ours[k].ap50, theirs["ap50"].as_f64().unwrap());
            bad.check(&format!("{name} cat {cid} AP75"), ours[k].ap75, theirs["ap75"].as_f64().unwrap());
            bad.check(&format!("{name} cat {cid} AR"), ours[k].ar, theirs["ar"].as_f64().unwrap());
            for (r, (o, t)) in ev.pr_curve(0, k).into_iter().zip(floats(&theirs["pr_curve_iou50"])).enumerate() {
                bad.check(&format!("{name} cat {cid} precision@IoU.5 r={r}"), o, t);
            }
            checked += 4 + 101;
        }
    }
    if !bad.0.is_empty() {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("coco_parity_mismatches.txt");
        std::fs::write(&out, bad.0.join("\n")).unwrap();
        panic!(
            "{} of {checked} numbers differ from pycocotools (all in {}); first: {}",
            bad.0.len(),
            out.display(),
            bad.0[..bad.0.len().min(10)].join("\n")
        );
    }
    assert!(checked > 10_000, "only {checked} numbers compared");
}
