//! `nii-atr eval --dataset`: the pipeline over a generated split, scored in process, with
//! the pipeline section (decisions, scan scores, latency) and a report `eval compare` reads.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nii-atr"))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Three cases of the tiny recipe's test split.
fn split() -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["synth", "--recipe"])
        .arg(root().join("datasets/recipes/tiny.toml"))
        .args(["--cases", "3", "--split", "test", "--no-preview", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn eval(split: &Path, report: &Path, extra: &[&str]) -> std::process::Output {
    bin()
        .arg("eval")
        .arg("--dataset")
        .arg(split)
        .arg("--config")
        .arg(root().join("models/pipeline.default.toml"))
        .arg("--report")
        .arg(report)
        .args(["--bootstrap", "50"])
        .args(extra)
        .output()
        .unwrap()
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn dataset_runs_are_scored_with_latency_and_can_be_compared() {
    let data = split();
    let test = data.path().join("test");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let o = eval(&test, &a, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("on 3 scans"), "{stdout}");
    let r = read(&a.join("report.json"));
    assert_eq!(r["inputs"]["n_scans"], 3);
    let p = &r["pipeline"];
    assert_eq!(p["n_scans"], 3);
    assert_eq!(p["failed"].as_array().unwrap().len(), 0);
    let stages: Vec<&str> = p["latency"].as_array().unwrap().iter().map(|l| l["stage"].as_str().unwrap()).collect();
    assert_eq!(
        stages,
        ["read", "calibrate", "render", "preprocess", "ort_run", "decode", "merge", "verify", "inspect", "scan"]
    );
    for l in p["latency"].as_array().unwrap() {
        let (med, p95, max) =
            (l["median_ms"].as_f64().unwrap(), l["p95_ms"].as_f64().unwrap(), l["max_ms"].as_f64().unwrap());
        assert!(med >= 0.0 && med <= p95 && p95 <= max, "{l}");
    }
    let decided: u64 = ["decisions_threat", "decisions_clean"]
        .iter()
        .flat_map(|k| ["clear", "review", "alarm"].map(|d| p[k][d].as_u64().unwrap()))
        .sum();
    assert_eq!(decided, 3);
    assert_eq!(p["scan_scores"][0]["score"], "pipeline risk");
    assert_eq!(p["scan_scores"][1]["score"], "risk without manifest checks");
    // Every scan is kept with its truth, decision, risk and each source's strongest finding,
    // and the risk is the largest share of a source (the decision rule's max).
    let gt = read(&test.join("annotations.json"));
    let scans = p["scans"].as_array().unwrap();
    assert_eq!(scans.len(), 3);
    for s in scans {
        let id = s["image_id"].as_i64().unwrap();
        let held = gt["annotations"].as_array().unwrap().iter().any(|a| a["image_id"].as_i64() == Some(id));
        assert_eq!(!s["classes"].as_array().unwrap().is_empty(), held, "{s}");
        assert!(s["scan"].as_str().unwrap().ends_with("scan.json"), "{s}");
        assert!(["clear", "review", "alarm"].contains(&s["decision"].as_str().unwrap()), "{s}");
        let risk = s["risk"].as_f64().unwrap();
        let shares: Vec<f64> = s["sources"]
            .as_object()
            .map(|o| o.values().map(|v| v["risk"].as_f64().unwrap()).collect())
            .unwrap_or_default();
        let top = shares.iter().copied().fold(0.0, f64::max);
        assert!((risk - top).abs() < 1e-6, "risk {risk} vs shares {shares:?}: {s}");
        for v in s["sources"].as_object().into_iter().flat_map(|o| o.values()) {
            assert!(v["risk"].as_f64().unwrap() <= v["score"].as_f64().unwrap() + 1e-9, "{s}");
        }
    }
    // The default pipeline checks the manifests; a generated split's truth scores them.
    assert_eq!(r["verification"]["cases"], 3);
    assert!(r["verification"]["checks"]["weight_mismatch"].is_object());
    // The shipped detector's classes are the labels' categories: its boxes are scored (the
    // anomaly model's regions are not a category: counted, not scored).
    assert!(r["inputs"]["n_predictions"].as_u64().unwrap() > 0, "{}", r["inputs"]);
    let md = std::fs::read_to_string(a.join("summary.md")).unwrap();
    assert!(md.contains("## Pipeline run") && md.contains("| latency (ms) | median | p95 | max |"), "{md}");
    assert!(md.contains("## Declared-cargo verification"), "{md}");
    // The engine's detections are kept beside the report, so `eval compare` can re-score them.
    assert!(a.join("predictions.json").is_file());
    assert_eq!(
        r["inputs"]["predictions"]["path"],
        std::fs::canonicalize(a.join("predictions.json")).unwrap().display().to_string()
    );

    // --limit takes the first cases only, and says so.
    let o = eval(&test, &b, &["--limit", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("(first 2 only)"));
    assert_eq!(read(&b.join("report.json"))["inputs"]["n_scans"], 2);
    // --skip leaves out the first cases (those a model was chosen on), and says so.
    let c = tmp.path().join("c");
    let o = eval(&test, &c, &["--skip", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("(cases 2..3 of 3 only)"));
    let skipped = read(&c.join("report.json"));
    assert_eq!(skipped["inputs"]["n_scans"], 1);
    let first_two: Vec<Value> = read(&b.join("predictions.json")).as_array().unwrap().clone();
    let last: Vec<Value> = read(&c.join("predictions.json")).as_array().unwrap().clone();
    let ids =
        |v: &[Value]| v.iter().map(|d| d["image_id"].as_i64().unwrap()).collect::<std::collections::BTreeSet<_>>();
    assert!(!last.is_empty() && !first_two.is_empty());
    assert!(ids(&first_two).is_disjoint(&ids(&last)), "{:?} {:?}", ids(&first_two), ids(&last));
    let o = eval(&test, &c, &["--skip", "3"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("leaves none"), "{}", String::from_utf8_lossy(&o.stderr));

    let o = bin().args(["eval", "compare"]).arg(&a).arg(&a).args(["--bootstrap", "20"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_case_that_cannot_be_read_fails_the_run_but_is_reported() {
    let data = split();
    let test = data.path().join("test");
    let case = std::fs::read_dir(&test).unwrap().flatten().map(|e| e.path()).find(|p| p.is_dir()).unwrap();
    std::fs::write(case.join("high.png"), b"not a png").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let o = eval(&test, tmp.path(), &[]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("1 of 3 scans could not be inspected"), "{stderr}");
    let r = read(&tmp.path().join("report.json"));
    let failed = r["pipeline"]["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["scan"].as_str().unwrap().contains(case.file_name().unwrap().to_str().unwrap()));
}

#[test]
fn a_split_without_annotations_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = eval(tmp.path(), &tmp.path().join("r"), &[]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("annotations.json"), "{stderr}");
}

#[test]
fn an_empty_or_mistyped_split_folder_fails_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("r");
    let err = |o: std::process::Output| {
        assert!(!o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = err(eval(tmp.path(), &report, &[]));
    assert!(e.contains(&tmp.path().display().to_string()) && e.contains("no annotations.json"), "{e}");
    // annotations.json listing no case: nothing would run.
    std::fs::write(tmp.path().join("annotations.json"), r#"{"images": [], "annotations": [], "categories": []}"#)
        .unwrap();
    let e = err(eval(tmp.path(), &report, &[]));
    assert!(e.contains("annotations.json") && e.contains("lists no cases"), "{e}");
    // A file where the split folder belongs.
    let e = err(eval(&tmp.path().join("annotations.json"), &report, &[]));
    assert!(e.contains("not a folder"), "{e}");
    assert!(!report.exists(), "a report was written for nothing");
}
