//! Case truth: the `truth.jsonl` schema of a labelled split and its one reader.
//!
//! `nii-atr synth` writes one [`CaseTruth`] per line beside a split's COCO annotations; what
//! was really loaded, what the shipper declared, and every concealed threat with its contrast.
//! The evaluation, the declared-cargo scoring and the training-tile export read it back here.

use std::io::BufRead;
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

/// Why a split's truth could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    /// The file cannot be read.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The truth file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A line is not a truth record.
    #[error("{}:{line}: not a truth record: {source}", .path.display())]
    Json {
        /// The truth file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// Where and why parsing failed.
        source: serde_json::Error,
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

/// Reads `<split>/truth.jsonl`: every record parsed and every threat category checked.
pub fn read_truth(split: &Path) -> Result<Vec<CaseTruth>, TruthError> {
    let path = split.join(TRUTH_FILE);
    let file = std::fs::File::open(&path).map_err(|source| TruthError::Io { path: path.clone(), source })?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| TruthError::Io { path: path.clone(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        let t: CaseTruth = serde_json::from_str(&line).map_err(|source| TruthError::Json {
            path: path.clone(),
            line: i + 1,
            source,
        })?;
        if let Some(bad) = t.threats.iter().find(|th| !CATEGORIES.contains(&th.category.as_str())) {
            return Err(TruthError::Category { path, line: i + 1, category: bad.category.clone() });
        }
        out.push(t);
    }
    Ok(out)
}
