//! Typed errors of the evaluation harness: every one names the file and the reason (the
//! underlying I/O or JSON error is the `source`, printed by `{:#}` in the binary).

use std::path::PathBuf;

use nii_atr_core::io::FileError;

/// Everything that can go wrong while reading evaluation inputs or writing reports.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file or folder could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An input is larger than its cap ([`crate::dataset::MAX_INPUT_BYTES`], or
    /// [`crate::dataset::MAX_LABEL_BYTES`] for one YOLO label or prediction file).
    #[error("{path}: file is {size} bytes, more than the {limit} bytes an evaluation input of this kind may have")]
    TooLarge {
        /// The file (or the folder, for the total of a YOLO folder's files).
        path: PathBuf,
        /// Its size, bytes.
        size: u64,
        /// The limit, bytes.
        limit: u64,
    },
    /// A FIFO, a device, a socket or a folder where a file was expected: refused before it
    /// is opened, since reading a FIFO or `/dev/stdin` blocks until someone writes to it.
    #[error("{path}: not a regular file ({kind}); give a file")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is instead, in words ("a FIFO", "a device", "a folder", ...).
        kind: &'static str,
    },
    /// A folder given as input holds nothing to evaluate (no label files, no cases).
    #[error("{path}: {reason}")]
    EmptyInput {
        /// The folder or list.
        path: PathBuf,
        /// What was looked for and not found, in words.
        reason: String,
    },
    /// More categories than [`crate::budget::MAX_CATEGORIES`].
    #[error(
        "{path}: {categories} categories, more than the {limit} an evaluation takes (each gets a report row and a \
         precision-recall curve)"
    )]
    TooManyCategories {
        /// The ground truth.
        path: PathBuf,
        /// Categories it lists.
        categories: usize,
        /// The limit.
        limit: usize,
    },
    /// The tables the evaluation would allocate, computed from the counts before allocating,
    /// exceed [`crate::budget::MAX_RESULT_BYTES`].
    #[error(
        "{path}: scoring {categories} categories over {images} scans would allocate {} for its results, more \
         than the {} an evaluation may (largest: {largest})",
        crate::budget::human_bytes(*.bytes),
        crate::budget::human_bytes(*.limit)
    )]
    ResultTooLarge {
        /// The ground truth.
        path: PathBuf,
        /// Categories of the ground truth.
        categories: usize,
        /// Scans (images) of the ground truth.
        images: usize,
        /// Bytes the result tables would take.
        bytes: u64,
        /// The limit, bytes.
        limit: u64,
        /// The largest table and the counts its size comes from, in words.
        largest: String,
    },
    /// A JSON file could not be parsed (or a document not serialised).
    #[error("{path}: malformed JSON")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// Two images, categories or annotations share an id.
    #[error("{path}: duplicate {what} id {id}")]
    DuplicateId {
        /// The file.
        path: PathBuf,
        /// "image", "category" or "annotation".
        what: &'static str,
        /// The repeated id.
        id: i64,
    },
    /// A box is not four finite numbers `[x, y, w, h]` with `w, h >= 0`.
    #[error("{path}: {what} #{index} has an invalid box {bbox:?}: {reason}")]
    InvalidBox {
        /// The file.
        path: PathBuf,
        /// "annotation" or "prediction".
        what: &'static str,
        /// Its position in the file, from 0.
        index: usize,
        /// The box as given.
        bbox: Vec<f64>,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A number (area, score, CNR) is not finite or is negative where it may not be.
    #[error("{path}: {what} #{index} has an invalid {field} ({value}): {reason}")]
    InvalidValue {
        /// The file.
        path: PathBuf,
        /// "annotation" or "prediction".
        what: &'static str,
        /// Its position in the file, from 0.
        index: usize,
        /// The field, e.g. "area", "score", "cnr".
        field: &'static str,
        /// The value given (NaN when it is not a number at all).
        value: f64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A prediction names an image the ground truth does not list (pycocotools asserts).
    #[error("{path}: prediction #{index} refers to image id {image_id}, which the ground truth does not list")]
    UnknownImage {
        /// The predictions file.
        path: PathBuf,
        /// The prediction's position in the file, from 0.
        index: usize,
        /// The unknown image id.
        image_id: i64,
    },
    /// An annotation names an image its file does not list.
    #[error("{path}: annotation #{index} refers to image id {image_id}, which the file does not list")]
    AnnotationWithoutImage {
        /// The ground-truth file.
        path: PathBuf,
        /// The annotation's position in the file, from 0.
        index: usize,
        /// The unknown image id.
        image_id: i64,
    },
    /// A YOLO label, prediction or image-list line is malformed.
    #[error("{path}:{line}: {reason}")]
    Yolo {
        /// The text file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Evaluation parameters out of range (maxDets, bootstrap, CNR bins).
    #[error("invalid evaluation parameters: {0}")]
    Params(String),
    /// A report, split or truth file that cannot be used as it is.
    #[error("{path}: {reason}")]
    Report {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The pipeline config could not be loaded.
    #[error("pipeline {path}")]
    Pipeline {
        /// The pipeline config.
        path: PathBuf,
        /// Why it could not be loaded.
        #[source]
        source: Box<nii_atr_core::inspect::InspectError>,
    },
    /// Some scans of a split run could not be inspected (the report is still written).
    #[error("{failed} of {total} scans could not be inspected (scored as scans without detections; see the report)")]
    ScansFailed {
        /// Scans that failed.
        failed: usize,
        /// Scans run.
        total: usize,
    },
    /// An SVG plot could not be drawn.
    #[error("plotting {what} failed: {reason}")]
    Plot {
        /// The plot's title.
        what: String,
        /// plotters' error.
        reason: String,
    },
}

impl From<FileError> for EvalError {
    /// Keeps the file and the reason: the I/O error stays the `source` (printed once, after
    /// "cannot read `<file>`"), and the other two keep their own one-line messages.
    fn from(e: FileError) -> Self {
        match e {
            FileError::Io { path, error } => Self::Read { path, source: error },
            FileError::NotRegular { path, kind } => Self::NotRegular { path, kind },
            FileError::TooLarge { path, size, cap } => Self::TooLarge { path, size, limit: cap },
        }
    }
}
