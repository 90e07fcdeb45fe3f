//! The real binary: `nii-atr verify` over a generated split writes its report and summary,
//! and fails with one clear line on a missing split.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nii-atr"))
}

#[test]
fn verify_scores_a_generated_split_and_writes_the_report() {
    let out = tempfile::tempdir().unwrap();
    let recipe = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/recipes/tiny.toml");
    let o = bin()
        .args(["synth", "--recipe", recipe, "--cases", "3", "--split", "test", "--no-preview", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = out.path().join("report");
    let o = bin()
        .args(["verify", "--threads", "1", "--dataset"])
        .arg(out.path().join("test"))
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("verified 3 scans") && stdout.contains("weight_mismatch"), "{stdout}");
    let scores: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("verification.json")).unwrap()).unwrap();
    assert_eq!(scores["cases"], 3);
    assert_eq!(scores["unmeasured"], 0, "{stdout}");
    let cases = std::fs::read_to_string(report.join("cases.jsonl")).unwrap();
    assert_eq!(cases.lines().count(), 3);
    for line in cases.lines() {
        let c: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(c["result"]["checks"].as_array().unwrap().len(), 4);
    }
    assert!(
        std::fs::read_to_string(report.join("verification.md")).unwrap().contains("## Declared-cargo verification")
    );
}

#[test]
fn a_missing_split_fails_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = bin().args(["verify", "--dataset"]).arg(dir.path().join("nope")).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("truth.jsonl"), "{err}");
}
