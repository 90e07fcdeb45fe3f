//! The real binary: `nii-atr synth` writes a readable dataset and fails with one clear line.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nii-atr"))
}

#[test]
fn synth_writes_scans_the_scan_core_reads() {
    let out = tempfile::tempdir().unwrap();
    let recipe = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/recipes/tiny.toml");
    let o = bin()
        .args(["synth", "--recipe", recipe, "--cases", "1", "--split", "val", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("cases: 1 (val 1)"), "{stdout}");
    let scan = out.path().join("val/tiny-val-000000/scan.json");
    for f in ["val/annotations.json", "val/truth.jsonl", "val/profiles/synth-linac-6-4.json", "profile.json"] {
        assert!(out.path().join(f).exists(), "{f}");
    }
    // The scan core reads it back and resolves the profile by name.
    let info = bin().arg("info").arg(&scan).output().unwrap();
    assert!(info.status.success(), "{}", String::from_utf8_lossy(&info.stderr));
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("synth-linac-6-4") && text.contains("6/4 MV"), "{text}");
}

#[test]
fn bad_recipe_fails_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("broken.toml");
    std::fs::write(
        &recipe,
        "schema_version = 1\nname = \"x\"\nseed = 1\n[splits]\ntrain = 1\n[mix]\nempty_share = 7.0\n",
    )
    .unwrap();
    let o = bin().args(["synth", "--recipe"]).arg(&recipe).arg("--out").arg(dir.path().join("o")).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("broken.toml") && err.contains("empty_share"), "{err}");
    let missing = bin().args(["synth", "--recipe", "/nonexistent/r.toml", "--out"]).arg(dir.path()).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/r.toml"));
}
