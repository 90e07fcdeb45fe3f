//! Case truth: the `truth.jsonl` schema of a labelled split and its one reader.
//!
//! `nii-atr synth` writes one [`CaseTruth`] per line beside a split's COCO annotations; what
//! was really loaded, what the shipper declared, and every concealed threat with its contrast.
//! The evaluation, the declared-cargo scoring and the training-tile export read it back here.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Threat classes, in COCO category order (ids start at 1).
pub const CATEGORIES: [&str; 7] =
    ["narcotics", "cigarettes", "firearm", "vehicle", "ivory", "high_z", "hidden_compartment"];

/// The file name of a split's truth.
pub const TRUTH_FILE: &str = "truth.jsonl";

/// The part of a dataset a case belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Cases models are trained on.
    Train,
    /// Cases thresholds and settings are tuned on.
    Val,
    /// Cases kept for the reported numbers.
    Test,
}

impl Split {
    /// Every split, in this order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// The split's folder and file name (`train`, `val`, `test`).
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Split {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Split::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| format!("unknown split `{s}` (train, val, test)"))
    }
}

/// A line of the declared manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeclaredLine {
    /// Harmonized System code declared.
    pub hs_code: String,
    /// The goods in the shipper's words.
    pub description: String,
    /// Number of packages declared.
    pub packages: u32,
    /// Declared gross mass, kg.
    pub gross_mass_kg: f64,
}

/// What the shipper declared.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Declared {
    /// The container is declared empty.
    pub declared_empty: bool,
    /// The declared goods.
    pub goods: Vec<DeclaredLine>,
}

/// What is really in the container, one line per commodity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadLine {
    /// The generator's commodity name.
    pub commodity: String,
    /// Its Harmonized System code.
    pub hs_code: String,
    /// Number of packages loaded.
    pub packages: u32,
    /// Real mass loaded, kg.
    pub mass_kg: f64,
}

/// How the manifest differs from the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    /// The manifest is correct.
    None,
    /// The declared commodity is not the one loaded.
    Misdeclared,
    /// Gross mass declared below the real mass.
    MassUnderdeclared,
    /// A second commodity is loaded beside the declared one.
    UndeclaredGoods,
    /// Declared empty, but loaded.
    DeclaredEmptyButLoaded,
}

/// How the manifest differs from the load, with detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    /// The kind of misdeclaration.
    pub kind: MismatchKind,
    /// What was changed, in words.
    pub detail: String,
    /// For mass under-declaration: how far below the real mass, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub underdeclared_pct: Option<f64>,
}

/// Truth of one threat, as written to `truth.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreatTruth {
    /// Threat class, one of [`CATEGORIES`].
    pub category: String,
    /// `[x, y, width, height]` in pixels (x = column, y = row), COCO convention.
    pub bbox: [usize; 4],
    /// Pixels its own material crosses, counts.
    pub footprint_pixels: usize,
    /// Contrast-to-noise ratio over its footprint (high-energy attenuation it adds over the
    /// attenuation noise there).
    pub cnr: f64,
    /// Mean high-energy attenuation it adds.
    pub contrast: f64,
    /// `easy`, `medium` or `hard`, from `cnr` (see [`difficulty`]).
    pub difficulty: String,
    /// Built in hard mode: small amounts, deep in the load, turned.
    pub hard_mode: bool,
    /// Distance of its centre from the source-side inner wall across the container, m.
    pub depth_m: f64,
    /// Mean areal density of the container and cargo on the threat's rays, g/cm^2.
    pub occlusion_g_cm2: f64,
    /// Its mass, kg.
    pub mass_kg: f64,
    /// Material of its main body (attenuation table name).
    pub material: String,
    /// Turn about the vertical axis, degrees.
    pub yaw_deg: f64,
    /// How it is concealed, in a few words.
    pub concealment: String,
}

/// One line of `truth.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseTruth {
    /// Dataset format version of the generator that wrote it.
    pub schema_version: u32,
    /// The case's name, also its folder in the split.
    pub case_id: String,
    /// The split it belongs to.
    pub split: Split,
    /// Its position in the split, from 0.
    pub index: usize,
    /// The random seed the case was generated from.
    pub seed: u64,
    /// The scan descriptor, relative to the split folder.
    pub scan: String,
    /// Image columns, counts.
    pub width: usize,
    /// Image rows, counts.
    pub height: usize,
    /// ISO 6346 size-type code of the container.
    pub container: String,
    /// What the manifest declares.
    pub declared: Declared,
    /// What is really loaded.
    pub load: Vec<LoadLine>,
    /// The container is really empty.
    pub empty: bool,
    /// How the manifest differs from the load.
    pub mismatch: Mismatch,
    /// The concealed threats.
    pub threats: Vec<ThreatTruth>,
    /// Scanner artefacts added (`interlace_offset`, `dead_rows:<n>`).
    pub artefacts: Vec<String>,
}

/// Difficulty from CNR (Rose criterion: objects below CNR ~3-5 are hard to see).
pub fn difficulty(cnr: f64) -> &'static str {
    if cnr < 3.0 {
        "hard"
    } else if cnr < 10.0 {
        "medium"
    } else {
        "easy"
    }
}

/// Most bytes a split's `truth.jsonl` may have: 50,000 cases of 1.3 kB, thirty times the largest
/// recipe here and more than a split of real scans holds. The records are held in memory: 2.5
/// times the file's size for real records, up to 8 times for hostile ones (lists of empty
/// strings), see docs/scans.md.
pub const MAX_TRUTH_BYTES: u64 = 64 << 20;

/// Most bytes one truth record (one line) may have: real ones are 1-3 kB, and twenty threats
/// with long descriptions stay far below this.
pub const MAX_TRUTH_LINE_BYTES: usize = 256 << 10;

/// Why a split's truth could not be read. Each message carries its cause once.
#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    /// The file cannot be read: missing, not a regular file, over [`MAX_TRUTH_BYTES`], or an
    /// error while reading it.
    #[error(transparent)]
    File(crate::io::FileError),
    /// A line longer than [`MAX_TRUTH_LINE_BYTES`].
    #[error("{}:{line}: a truth record over {cap} bytes; records are one line each", .path.display())]
    LineTooLong {
        /// The truth file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// The limit, bytes.
        cap: usize,
    },
    /// A line is not a truth record.
    #[error("{}:{line}: not a truth record: {error}", .path.display())]
    Json {
        /// The truth file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// The field and what it should be, or where the JSON breaks (boxed: errors stay small).
        error: Box<crate::io::SchemaError>,
    },
    /// A threat's category is not one of [`CATEGORIES`].
    #[error("{}:{line}: unknown threat category `{category}` (known: {})", .path.display(), CATEGORIES.join(", "))]
    Category {
        /// The truth file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// The unknown category.
        category: String,
    },
}

/// Reads `<split>/truth.jsonl`: every record parsed and every threat category checked. The
/// file must be a regular file of at most [`MAX_TRUTH_BYTES`], each line at most
/// [`MAX_TRUTH_LINE_BYTES`]; both are checked before the bytes are held.
pub fn read_truth(split: &Path) -> Result<Vec<CaseTruth>, TruthError> {
    let path = split.join(TRUTH_FILE);
    let (file, _) = crate::io::open_capped(&path, MAX_TRUTH_BYTES).map_err(TruthError::File)?;
    // The cap again while reading, in case the file grows.
    let mut reader = std::io::BufReader::new(file.take(MAX_TRUTH_BYTES + 1));
    let io = |error| TruthError::File(crate::io::FileError::Io { path: path.clone(), error });
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut total = 0u64;
    for line in 1.. {
        buf.clear();
        let n = (&mut reader).take(MAX_TRUTH_LINE_BYTES as u64 + 1).read_until(b'\n', &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_TRUTH_BYTES {
            let e = crate::io::FileError::TooLarge { path: path.clone(), size: total, cap: MAX_TRUTH_BYTES };
            return Err(TruthError::File(e));
        }
        let record = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if record.len() > MAX_TRUTH_LINE_BYTES {
            return Err(TruthError::LineTooLong { path, line, cap: MAX_TRUTH_LINE_BYTES });
        }
        if record.trim_ascii().is_empty() {
            continue;
        }
        let t: CaseTruth = crate::io::parse_json(record).map_err(|e| TruthError::Json {
            path: path.clone(),
            line,
            error: Box::new(e),
        })?;
        if let Some(bad) = t.threats.iter().find(|th| !CATEGORIES.contains(&th.category.as_str())) {
            return Err(TruthError::Category { path, line, category: bad.category.clone() });
        }
        out.push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_files_are_read_line_by_line_within_caps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TRUTH_FILE);
        // Blank lines are skipped; a wrong type names the line and the field.
        std::fs::write(&path, "\n\n{\"schema_version\": \"one\"}\n").unwrap();
        let e = read_truth(dir.path()).unwrap_err().to_string();
        assert!(e.contains("truth.jsonl:3: not a truth record: field schema_version: expected a whole number"), "{e}");
        // A line over the cap is refused without being held whole.
        let long = format!("{{\"x\": \"{}\"}}\n", "a".repeat(MAX_TRUTH_LINE_BYTES));
        std::fs::write(&path, format!("\n{long}")).unwrap();
        let e = read_truth(dir.path()).unwrap_err();
        assert!(matches!(e, TruthError::LineTooLong { line: 2, .. }), "{e}");
        assert!(e.to_string().contains("truth.jsonl:2"), "{e}");
        std::fs::write(&path, "").unwrap();
        assert!(read_truth(dir.path()).unwrap().is_empty());
        // Missing: one line naming the file, its cause once.
        let e = read_truth(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(e.contains("nope/truth.jsonl") && e.matches("No such file").count() == 1, "{e}");
        #[cfg(unix)]
        {
            std::fs::remove_file(&path).unwrap();
            assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
            let e = read_truth(dir.path()).unwrap_err().to_string();
            assert!(e.contains("not a regular file (a FIFO)"), "{e}");
        }
    }
}
