//! Scans: one radiograph of a container or truck, with its metadata.
//!
//! Rows are detector elements (vertical), columns are scan lines along the vehicle. A scan
//! has one plane (single-energy) or two (dual-energy `high` and `low`) of raw 16-bit counts.
//! Readers open only regular files, keep a descriptor's plane files inside its folder, and
//! check every size against [`Limits`] before allocating (docs/scans.md).

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

/// Most bytes a scan descriptor may have. Real ones are about 50 kB (per-row dark and air
/// counts of 6,000 rows are ~200 kB); unknown fields are kept as JSON values, about 50 bytes of
/// memory per 2 bytes of file at worst, so the cap bounds that too (docs/scans.md).
pub const MAX_DESCRIPTOR_BYTES: u64 = 2 << 20;

/// Bytes per allowed pixel one image file may hold while it is decoded (see
/// [`Limits::max_decode_bytes`]).
pub const DECODE_BYTES_PER_PIXEL: u64 = 8;

impl Limits {
    /// The most bytes one image file may hold while it is read: its decoded pixels, the
    /// decoder's own buffers and the planes made from them, `max_pixels` x
    /// [`DECODE_BYTES_PER_PIXEL`] (960 MB at the defaults). A 16-bit plane (2 bytes a pixel),
    /// a two-page TIFF (4) and an 8-bit RGB picture with its plane (5) fit at the pixel limit;
    /// costlier kinds (RGBA, progressive JPEG) are refused above a smaller size.
    pub fn max_decode_bytes(&self) -> u64 {
        self.max_pixels.saturating_mul(DECODE_BYTES_PER_PIXEL)
    }

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

/// Why a scan could not be read, written or used. Every variant names the file, and its
/// message carries the cause once (no separate `source()`), so chain printers print each
/// cause once.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A file could not be read or written.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// A path that is not a regular file (a FIFO, a device, a folder), or a file over the size
    /// its kind of input may have.
    #[error(transparent)]
    File(crate::io::FileError),
    /// The descriptor is not valid JSON or does not fit the schema.
    #[error("{}: invalid scan descriptor: {error}", .path.display())]
    Descriptor {
        /// The descriptor file.
        path: PathBuf,
        /// The field and what it should be, or where the JSON breaks (boxed: errors stay small).
        error: Box<crate::io::SchemaError>,
    },
    /// A file the descriptor names is refused: an absolute path, or one that resolves (after
    /// symbolic links) outside the descriptor's folder.
    #[error("{}: {field} refused: {reason}", .path.display())]
    PlanePath {
        /// The descriptor file.
        path: PathBuf,
        /// The descriptor field, e.g. `planes.low`.
        field: &'static str,
        /// The path as the descriptor gives it, and why it is refused.
        reason: String,
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
    /// A folder given as scans holds none.
    #[error("{}: no scans found: {reason}", .path.display())]
    NoScans {
        /// The folder.
        path: PathBuf,
        /// What was looked for.
        reason: String,
    },
}

impl ScanError {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), error }
    }
}

impl From<crate::io::FileError> for ScanError {
    /// Operating-system errors stay [`ScanError::Io`] (a missing file is `Io` whatever its
    /// kind); a file that is not regular or too large is [`ScanError::File`].
    fn from(e: crate::io::FileError) -> Self {
        match e {
            crate::io::FileError::Io { path, error } => Self::Io { path, error },
            other => Self::File(other),
        }
    }
}
