//! The `nii-atr` binary on real files: info, render, and one-line errors; inputs that are not
//! scans (FIFOs, devices, empty folders) fail at once with a message naming them.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nii_atr_core::scan::{PlaneFormat, write_scan};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nii-atr"))
}

#[test]
fn info_prints_sizes_calibration_and_materials() {
    let dir = tempfile::tempdir().unwrap();
    let scan = nii_atr_core::example::container_scan(20.0, 3);
    let path = write_scan(&scan, dir.path(), PlaneFormat::Tiff).unwrap();
    let out = bin().arg("info").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in ["170 rows x 345 columns", "linac 6/4 MV", "22G1", "organic", "metal", "HS 6109"] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    let out = bin().args(["info", "--json"]).arg(&path).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["rows"], 170);
    let fractions: f64 = json["material_fractions"].as_array().unwrap().iter().map(|p| p[1].as_f64().unwrap()).sum();
    assert!((fractions - 1.0).abs() < 1e-9, "{fractions}");
}

#[test]
fn render_writes_each_view() {
    let dir = tempfile::tempdir().unwrap();
    let scan = nii_atr_core::example::container_scan(20.0, 3);
    let path = write_scan(&scan, &dir.path().join("s"), PlaneFormat::Png).unwrap();
    for view in ["material", "high", "low"] {
        let png = dir.path().join(format!("{view}.png"));
        let out = bin().arg("render").arg(&path).arg("-o").arg(&png).args(["--view", view]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let img = image::open(&png).unwrap().into_rgb8();
        assert_eq!((img.width(), img.height()), (345, 170));
        // Air above the container is white; the load is not.
        assert_eq!(img.get_pixel(10, 5).0, [255, 255, 255], "{view}");
        assert_ne!(img.get_pixel(100, 130).0, [255, 255, 255], "{view}");
    }
    let out = bin()
        .arg("render")
        .arg(&path)
        .arg("-o")
        .arg(dir.path().join("w.png"))
        .args(["--view", "high", "--window", "2", "--level", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn errors_are_one_clear_line_and_a_failing_exit() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here.json");
    let out = bin().arg("info").arg(&missing).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: ") && err.contains("nothing-here.json"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let out = bin().args(["render"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_missing_onnx_runtime_library_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let scan = nii_atr_core::example::container_scan(40.0, 3);
    let path = write_scan(&scan, dir.path(), PlaneFormat::Png).unwrap();
    let out = bin()
        .args(["--ort-library", "/nonexistent/libonnxruntime.so", "inspect"])
        .arg(&path)
        .args(["--config", concat!(env!("CARGO_MANIFEST_DIR"), "/models/pipeline.default.toml"), "-o"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("/nonexistent/libonnxruntime.so") && err.contains("make setup"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Runs `cmd`, failing the test if it has not ended within 60 s (a reader blocked on a FIFO
/// would never end).
fn output_within_a_minute(cmd: &mut Command) -> Output {
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("{cmd:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn toy_pipeline(dir: &Path) -> std::path::PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fixtures");
    let cfg = dir.join("pipeline.toml");
    std::fs::write(
        &cfg,
        format!(
            "schema_version = 1\n[[models]]\npath = '{}'\nspec = '{}'\n",
            fixtures.join("yolov8_toy.onnx").display(),
            fixtures.join("yolov8_toy_scan.toml").display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn inspect_refuses_a_folder_without_scans() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = toy_pipeline(dir.path());
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let others = dir.path().join("others");
    std::fs::create_dir(&others).unwrap();
    std::fs::write(others.join("notes.txt"), b"x").unwrap();
    std::fs::write(others.join("annotations.json"), b"{\"images\": []}").unwrap();
    for (folder, needle) in [(&empty, "no scans found: the folder is empty"), (&others, "no scans found: no scan.json")]
    {
        let out = output_within_a_minute(
            bin().arg("inspect").arg(folder).arg("--config").arg(&cfg).arg("-o").arg(dir.path().join("out")),
        );
        assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.starts_with("error: ") && err.contains(&folder.display().to_string()) && err.contains(needle),
            "{err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

#[cfg(unix)]
#[test]
fn fifos_and_devices_given_to_the_commands_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.png");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let scan =
        write_scan(&nii_atr_core::example::container_scan(40.0, 3), &dir.path().join("s"), PlaneFormat::Png).unwrap();
    let profile_fifo = dir.path().join("profile.json");
    assert!(Command::new("mkfifo").arg(&profile_fifo).status().unwrap().success());
    let null_png = dir.path().join("null.png");
    std::os::unix::fs::symlink("/dev/null", &null_png).unwrap();
    let runs: Vec<(Command, &str)> = vec![
        (
            {
                let mut c = bin();
                c.arg("info").arg(&fifo);
                c
            },
            "pipe.png: not a regular file (a FIFO)",
        ),
        (
            {
                let mut c = bin();
                c.arg("info").arg(&null_png);
                c
            },
            "null.png: not a regular file (a device)",
        ),
        (
            {
                let mut c = bin();
                c.arg("info").arg(&scan).arg("--profile").arg(&profile_fifo);
                c
            },
            "profile.json: not a regular file (a FIFO)",
        ),
        (
            {
                let mut c = bin();
                c.arg("render").arg(&fifo).arg("-o").arg(dir.path().join("o.png"));
                c
            },
            "pipe.png: not a regular file",
        ),
    ];
    for (mut cmd, needle) in runs {
        let out = output_within_a_minute(&mut cmd);
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(needle) && err.trim_end().lines().count() == 1, "{cmd:?}: {err}");
    }
}
