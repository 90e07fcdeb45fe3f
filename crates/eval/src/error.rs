//! Typed errors of the evaluation harness: every one names the file and the reason (the
//! underlying I/O or JSON error is the `source`, printed by `{:#}` in the binary).

use std::path::PathBuf;

/// Everything that can go wrong while reading evaluation inputs or writing reports.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: file is {size} bytes, more than the {limit} bytes an evaluation input may have")]
    TooLarge { path: PathBuf, size: u64, limit: u64 },
    #[error("{path}: malformed JSON")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: duplicate {what} id {id}")]
    DuplicateId { path: PathBuf, what: &'static str, id: i64 },
    #[error("{path}: {what} #{index} has an invalid box {bbox:?}: {reason}")]
    InvalidBox { path: PathBuf, what: &'static str, index: usize, bbox: Vec<f64>, reason: &'static str },
    #[error("{path}: {what} #{index} has an invalid {field} ({value}): {reason}")]
    InvalidValue {
        path: PathBuf,
        what: &'static str,
        index: usize,
        field: &'static str,
        value: f64,
        reason: &'static str,
    },
    #[error("{path}: prediction #{index} refers to image id {image_id}, which the ground truth does not list")]
    UnknownImage { path: PathBuf, index: usize, image_id: i64 },
    #[error("{path}: annotation #{index} refers to image id {image_id}, which the file does not list")]
    AnnotationWithoutImage { path: PathBuf, index: usize, image_id: i64 },
    #[error("{path}:{line}: {reason}")]
    Yolo { path: PathBuf, line: usize, reason: String },
    #[error("invalid evaluation parameters: {0}")]
    Params(String),
    #[error("{path}: {reason}")]
    Report { path: PathBuf, reason: String },
    #[error("pipeline {path}")]
    Pipeline {
        path: PathBuf,
        #[source]
        source: Box<nii_atr_core::inspect::InspectError>,
    },
    #[error("{failed} of {total} scans could not be inspected (scored as scans without detections; see the report)")]
    ScansFailed { failed: usize, total: usize },
    #[error("plotting {what} failed: {reason}")]
    Plot { what: String, reason: String },
}
