//! Errors read as one line per cause, whichever printer walks them: a message that names its
//! cause does not also return it as `source()`.

use std::error::Error;

use nii_atr_core::PipelineConfig;
use nii_atr_core::detect::spec::{ModelSpec, SpecError};
use nii_atr_core::inspect::config::ConfigError;

/// `Display` of every error in the chain joined with ": ", as `anyhow`'s `{:#}` prints it.
fn full_chain(e: &dyn Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        parts.push(c.to_string());
        cause = c.source();
    }
    parts.join(": ")
}

fn assert_once(text: &str, part: &str) {
    assert_eq!(text.matches(part).count(), 1, "{part:?} once in {text:?}");
}

#[test]
fn a_missing_config_or_spec_names_the_file_and_the_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let e = PipelineConfig::load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::File(_)), "{e}");
    let text = full_chain(&e);
    assert_once(&text, "nope.toml");
    assert_once(&text, "os error 2");

    let e = ModelSpec::from_path(&missing).unwrap_err();
    assert!(matches!(e, SpecError::File(_)), "{e}");
    assert_once(&full_chain(&e), "os error 2");
}

#[test]
fn config_and_spec_files_are_capped_and_must_be_regular() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    let comment = format!("# {}\n", "x".repeat(1000));
    std::fs::write(&big, comment.repeat(1100)).unwrap();
    let e = PipelineConfig::load(&big).unwrap_err().to_string();
    assert!(e.contains("over the limit of 1048576 bytes"), "{e}");
    let e = ModelSpec::from_path(&big).unwrap_err().to_string();
    assert!(e.contains("over the limit of 1048576 bytes"), "{e}");
    let e = PipelineConfig::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
}

#[test]
fn a_wrong_type_in_a_config_or_spec_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.toml");
    std::fs::write(&cfg, "schema_version = 1\n[merge]\nthreshold = \"high\"\n").unwrap();
    let e = full_chain(&PipelineConfig::load(&cfg).unwrap_err());
    assert!(e.contains("field merge.threshold") && e.contains("\"high\""), "{e}");

    let spec = dir.path().join("m.json");
    std::fs::write(&spec, r#"{"schema_version": 1, "name": "m", "task": "detect", "input": {"width": "wide"}}"#)
        .unwrap();
    let e = full_chain(&ModelSpec::from_path(&spec).unwrap_err());
    assert!(e.contains("m.json") && e.contains("field input"), "{e}");
}

#[test]
fn an_unwritable_report_names_the_path_and_the_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    // A file where a folder is expected: creating the report under it fails.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let e = nii_atr_core::inspect::InspectError::Io {
        path: blocker.join("x.json"),
        error: std::fs::write(blocker.join("x.json"), b"").unwrap_err(),
    };
    assert!(e.source().is_none());
    assert_once(&full_chain(&e), "os error 20");
}
