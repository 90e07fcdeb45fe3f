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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

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
    pub hs_code: String,
    pub description: String,
    pub packages: u32,
    pub gross_mass_kg: f64,
}

/// What the shipper declared.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Declared {
    pub declared_empty: bool,
    pub goods: Vec<DeclaredLine>,
}

/// What is really in the container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadLine {
    pub commodity: String,
    pub hs_code: String,
    pub packages: u32,
    pub mass_kg: f64,
}

/// How the manifest differs from the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    pub kind: MismatchKind,
    pub detail: String,
    /// For mass under-declaration: how far below the real mass, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub underdeclared_pct: Option<f64>,
}

/// Truth of one threat, as written to `truth.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreatTruth {
    pub category: String,
    /// `[x, y, width, height]` in pixels (x = column, y = row), COCO convention.
    pub bbox: [usize; 4],
    pub footprint_pixels: usize,
    pub cnr: f64,
    pub contrast: f64,
    pub difficulty: String,
    pub hard_mode: bool,
    pub depth_m: f64,
    /// Mean areal density of the container and cargo on the threat's rays, g/cm^2.
    pub occlusion_g_cm2: f64,
    pub mass_kg: f64,
    pub material: String,
    pub yaw_deg: f64,
    pub concealment: String,
}

/// One line of `truth.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseTruth {
    pub schema_version: u32,
    pub case_id: String,
    pub split: Split,
    pub index: usize,
    pub seed: u64,
    pub scan: String,
    pub width: usize,
    pub height: usize,
    pub container: String,
    pub declared: Declared,
    pub load: Vec<LoadLine>,
    pub empty: bool,
    pub mismatch: Mismatch,
    pub threats: Vec<ThreatTruth>,
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
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: not a truth record: {source}", .path.display())]
    Json { path: PathBuf, line: usize, source: serde_json::Error },
    #[error("{}:{line}: unknown threat category `{category}` (known: {})", .path.display(), CATEGORIES.join(", "))]
    Category { path: PathBuf, line: usize, category: String },
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
