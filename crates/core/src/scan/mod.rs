//! Scans: one radiograph of a container or truck, with its metadata.
//!
//! Rows are detector elements (vertical), columns are scan lines along the vehicle. A scan
//! has one plane (single-energy) or two (dual-energy `high` and `low`) of raw 16-bit counts.
//! Readers check every size against [`Limits`] before allocating.

mod descriptor;
mod read;
mod write;

use std::path::{Path, PathBuf};

use ndarray::Array2;
use serde::{Deserialize, Serialize};

pub use descriptor::*;
pub(crate) use read::validate_calibration;
pub use read::{read_plane, read_scan};
pub use write::{PlaneFormat, write_multipage_tiff, write_plane, write_scan};

/// Size limits checked before any pixel buffer is allocated.
///
/// The defaults admit a 40 ft container (12.2 m) scanned at 1 mm pitch along the vehicle with
/// room for the tractor, and a 5 m high truck at 1 mm vertical pitch: far beyond real scanners
/// (2-5 mm), far below what would exhaust memory (two 16-bit planes of 120 Mpx = 480 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Most columns (scan lines) a plane may have.
    pub max_width: u32,
    /// Most rows (detector elements) a plane may have.
    pub max_height: u32,
    /// Most pixels a plane may have.
    pub max_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_width: 24_000, max_height: 6_000, max_pixels: 120_000_000 }
    }
}

impl Limits {
    /// Fails unless a `width` x `height` plane fits.
    pub fn check(&self, path: &Path, width: u64, height: u64) -> Result<(), ScanError> {
        let reason = if width == 0 || height == 0 {
            Some("empty image".to_string())
        } else if width > self.max_width as u64 {
            Some(format!("width {width} exceeds the limit of {}", self.max_width))
        } else if height > self.max_height as u64 {
            Some(format!("height {height} exceeds the limit of {}", self.max_height))
        } else if width.saturating_mul(height) > self.max_pixels {
            Some(format!("{} pixels exceed the limit of {}", width.saturating_mul(height), self.max_pixels))
        } else {
            None
        };
        match reason {
            Some(reason) => Err(ScanError::Limits { path: path.to_path_buf(), width, height, reason }),
            None => Ok(()),
        }
    }
}

/// How the pixels were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanKind {
    /// Raw detector counts (16-bit), calibrated by dark/air counts.
    Raw,
    /// An already-rendered 8-bit picture (grey or RGB), as public baggage datasets ship them.
    /// Grey level is taken as transmission; no material discrimination is possible.
    Rendered,
}

/// A scan in memory.
#[derive(Debug, Clone)]
pub struct Scan {
    /// What the scan is: source, pitch, calibration, container, manifest.
    pub descriptor: ScanDescriptor,
    /// Raw detector counts or a rendered picture.
    pub kind: ScanKind,
    /// High-energy (or only) plane, shape `(rows, columns)`.
    pub high: Array2<u16>,
    /// Low-energy plane of a dual-energy scan, same shape as `high`.
    pub low: Option<Array2<u16>>,
    /// The red, green and blue planes of a rendered 8-bit image as decoded, same size as
    /// `high` (a grey image gives R = G = B, as OpenCV reads it in colour; alpha is dropped);
    /// `None` for raw scans. Models fed the `red`/`green`/`blue` channels read them.
    pub rgb: Option<image::RgbImage>,
    /// The file this scan was read from, for error messages.
    pub origin: Option<PathBuf>,
}

impl Scan {
    /// Builds a scan from planes, checking that their shapes agree.
    pub fn new(descriptor: ScanDescriptor, high: Array2<u16>, low: Option<Array2<u16>>) -> Result<Self, ScanError> {
        let origin = PathBuf::from(&descriptor.scan_id);
        if let Some(low) = &low
            && low.dim() != high.dim()
        {
            return Err(ScanError::PlaneMismatch { path: origin, high: high.dim(), low: low.dim() });
        }
        if high.is_empty() {
            return Err(ScanError::Limits {
                path: origin,
                width: high.ncols() as u64,
                height: high.nrows() as u64,
                reason: "empty image".into(),
            });
        }
        Ok(Self { descriptor, kind: ScanKind::Raw, high, low, rgb: None, origin: None })
    }

    /// Detector rows (the image height), counts.
    pub fn rows(&self) -> usize {
        self.high.nrows()
    }

    /// Scan lines (the image width), counts.
    pub fn columns(&self) -> usize {
        self.high.ncols()
    }

    /// Whether the scan has a low-energy plane.
    pub fn is_dual_energy(&self) -> bool {
        self.low.is_some()
    }

    /// The name used in error messages: the file it came from, else its id.
    pub fn display_name(&self) -> PathBuf {
        self.origin.clone().unwrap_or_else(|| PathBuf::from(&self.descriptor.scan_id))
    }
}

/// Why a scan could not be read, written or used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A file could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The descriptor is not valid JSON or does not fit the schema.
    #[error("{}: invalid scan descriptor: {source}", .path.display())]
    Descriptor {
        /// The descriptor file.
        path: PathBuf,
        /// Where and why parsing failed.
        #[source]
        source: serde_json::Error,
    },
    /// The descriptor parses but says something this build cannot use (schema version, pitch,
    /// a missing plane).
    #[error("{}: unsupported scan descriptor: {reason}", .path.display())]
    DescriptorContent {
        /// The descriptor file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An image file is corrupt or truncated.
    #[error("{}: cannot decode image: {reason}", .path.display())]
    Decode {
        /// The image file.
        path: PathBuf,
        /// The decoder's complaint.
        reason: String,
    },
    /// An image is empty or larger than the [`Limits`] allow.
    #[error("{}: image of {width} x {height} refused: {reason}", .path.display())]
    Limits {
        /// The image file.
        path: PathBuf,
        /// Columns, counts.
        width: u64,
        /// Rows, counts.
        height: u64,
        /// Which limit it breaks.
        reason: String,
    },
    /// A file type, image format, bit depth or layout the readers do not take.
    #[error("{}: unsupported image: {reason}", .path.display())]
    Unsupported {
        /// The image file.
        path: PathBuf,
        /// What is not supported.
        reason: String,
    },
    /// The two planes of a dual-energy scan differ in size.
    #[error("{}: high and low planes differ in size: high {high:?}, low {low:?} (rows, columns)", .path.display())]
    PlaneMismatch {
        /// The scan.
        path: PathBuf,
        /// Shape of the high plane, (rows, columns).
        high: (usize, usize),
        /// Shape of the low plane, (rows, columns).
        low: (usize, usize),
    },
    /// Dark or air counts unusable: not finite, negative, the wrong number of rows, air not
    /// above dark, an air region outside the image.
    #[error("{}: bad calibration: {reason}", .path.display())]
    Calibration {
        /// The scan.
        path: PathBuf,
        /// What is wrong with the counts.
        reason: String,
    },
    /// A plane could not be written in the asked-for format.
    #[error("{}: cannot encode image: {reason}", .path.display())]
    Encode {
        /// The image file.
        path: PathBuf,
        /// The encoder's complaint.
        reason: String,
    },
}

impl ScanError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}
