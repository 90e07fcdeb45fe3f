//! Dataset recipes (`datasets/recipes/*.toml`): scanner, noise, case mix and split sizes.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SynthError;
use super::container::ContainerType;
use super::geometry::FanBeam;
use super::render::NoiseModel;
use super::threats::ThreatKind;
use nii_atr_core::physics::{Scintillator, SourcePair};

/// Recipe schema this build reads.
pub const RECIPE_SCHEMA_VERSION: u32 = 1;

/// Most bytes a recipe file may have: real ones are under 1 kB. TOML is parsed into a tree
/// first, up to 80 bytes of memory per byte of file, so the cap bounds that too.
pub const MAX_RECIPE_BYTES: u64 = 256 << 10;

/// Most cases one split may ask for (a guard against typos, not a resource limit).
pub const MAX_CASES_PER_SPLIT: usize = 1_000_000;

pub use nii_atr_core::truth::Split;

/// Named source pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourcePreset {
    /// Interlaced 6/4 MV linac.
    #[serde(rename = "linac_6_4")]
    Linac64,
    /// 9/6 MV linac.
    #[serde(rename = "linac_9_6")]
    Linac96,
    /// 140/80 kVp X-ray tube pair.
    #[serde(rename = "tube_140_80")]
    Tube14080,
}

impl SourcePreset {
    /// The spectra and filtration of the preset.
    pub fn sources(self) -> SourcePair {
        match self {
            SourcePreset::Linac64 => SourcePair::linac_6_4(),
            SourcePreset::Linac96 => SourcePair::linac_9_6(),
            SourcePreset::Tube14080 => SourcePair::tube_140_80(),
        }
    }
}

/// The simulated scanner: sources, detector, geometry and pixel pitch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScannerConfig {
    /// Profile name written into every scan descriptor.
    pub name: String,
    /// Source pair preset.
    pub sources: SourcePreset,
    /// Replaces `sources` with explicit spectra and filtration.
    pub custom_sources: Option<SourcePair>,
    /// Render the low-energy plane too.
    pub dual_energy: bool,
    /// Scintillator the spectra are seen through.
    pub detector: Scintillator,
    /// Pixel pitch at the vehicle's centre plane, mm (both axes).
    pub pitch_mm: f64,
    /// Source distance from the vehicle's centre plane, m.
    pub source_distance_m: f64,
    /// Height of the source focal spot above the ground, m.
    pub source_height_m: f64,
    /// Energy bins of the fast spectral path (8..64).
    pub energy_bins: usize,
}

impl Default for ScannerConfig {
    fn default() -> Self {
        let fan = FanBeam::default();
        Self {
            name: "synth-linac-6-4".into(),
            sources: SourcePreset::Linac64,
            custom_sources: None,
            dual_energy: true,
            detector: Scintillator::default(),
            pitch_mm: fan.pitch_m * 1000.0,
            source_distance_m: fan.source_distance_m,
            source_height_m: fan.source_height_m,
            energy_bins: 32,
        }
    }
}

impl ScannerConfig {
    /// The source pair in use: the custom one, else the preset's.
    pub fn source_pair(&self) -> SourcePair {
        self.custom_sources.clone().unwrap_or_else(|| self.sources.sources())
    }

    /// The fan-beam geometry and pixel grid of this scanner.
    pub fn fan(&self) -> FanBeam {
        FanBeam {
            source_distance_m: self.source_distance_m,
            source_height_m: self.source_height_m,
            pitch_m: self.pitch_mm / 1000.0,
        }
    }
}

/// What the cases hold: container types, cargo, threats, manifest mismatches and artefacts,
/// as shares of the cases and relative weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mix {
    /// Relative weights of container types.
    pub container_types: BTreeMap<String, f64>,
    /// Share of cases that are really empty.
    pub empty_share: f64,
    /// Share of (all) cases that carry at least one concealed threat.
    pub threat_share: f64,
    /// Most threats in one case.
    pub max_threats: usize,
    /// Share of threats built in hard mode (small amounts, deep in the load, turned).
    pub hard_share: f64,
    /// Relative weights of threat classes.
    pub threat_weights: BTreeMap<ThreatKind, f64>,
    /// Share of cases whose manifest does not match the load.
    pub mismatch_share: f64,
    /// Share of cases with scanner artefacts (interlace offset, dead rows, stronger wobble).
    pub artefact_share: f64,
    /// Commodities to draw from (catalogue names); empty = all.
    pub commodities: Vec<String>,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            container_types: [("iso20".to_string(), 0.4), ("iso40".to_string(), 0.4), ("iso40_hc".to_string(), 0.2)]
                .into_iter()
                .collect(),
            empty_share: 0.1,
            threat_share: 0.5,
            max_threats: 3,
            hard_share: 0.3,
            threat_weights: ThreatKind::ALL.iter().map(|&k| (k, 1.0)).collect(),
            mismatch_share: 0.3,
            artefact_share: 0.2,
            commodities: Vec::new(),
        }
    }
}

/// Cases per split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Splits {
    /// Training cases.
    pub train: usize,
    /// Validation cases.
    pub val: usize,
    /// Test cases.
    pub test: usize,
}

impl Splits {
    /// Cases of `split`.
    pub fn get(&self, split: Split) -> usize {
        match split {
            Split::Train => self.train,
            Split::Val => self.val,
            Split::Test => self.test,
        }
    }
}

/// A dataset recipe: everything that, with its seed, fixes a dataset to the byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Must be [`RECIPE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Dataset name: the prefix of every case id.
    pub name: String,
    /// What the dataset is for, in a line.
    #[serde(default)]
    pub description: String,
    /// Seed of every random draw.
    pub seed: u64,
    /// Cases per split.
    pub splits: Splits,
    /// The simulated scanner.
    #[serde(default)]
    pub scanner: ScannerConfig,
    /// Detector read-out and noise.
    #[serde(default)]
    pub noise: NoiseModel,
    /// What the cases hold.
    #[serde(default)]
    pub mix: Mix,
}

impl Recipe {
    /// Reads and checks a recipe file (see [`Recipe::parse`]): a regular file of at most
    /// [`MAX_RECIPE_BYTES`].
    pub fn load(path: &Path) -> Result<Self, SynthError> {
        let text = nii_atr_core::io::read_text_capped(path, MAX_RECIPE_BYTES)
            .map_err(|e| SynthError::File { path: path.to_path_buf(), reason: e.reason() })?;
        Self::parse(&text, path)
    }

    /// Parses and checks a recipe: schema version, shares in [0, 1], known container types,
    /// usable weights, split sizes, plain names, scanner geometry and noise ranges. `path`
    /// names the recipe in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, SynthError> {
        let err = |reason: String| SynthError::File { path: path.to_path_buf(), reason };
        let r: Recipe = nii_atr_core::io::parse_toml(text).map_err(|e| err(e.to_string()))?;
        if r.schema_version != RECIPE_SCHEMA_VERSION {
            return Err(err(format!("schema_version {} (this build reads {RECIPE_SCHEMA_VERSION})", r.schema_version)));
        }
        let share = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) { Ok(()) } else { Err(err(format!("mix.{name} = {v} must be in [0, 1]"))) }
        };
        share("empty_share", r.mix.empty_share)?;
        share("threat_share", r.mix.threat_share)?;
        share("hard_share", r.mix.hard_share)?;
        share("mismatch_share", r.mix.mismatch_share)?;
        share("artefact_share", r.mix.artefact_share)?;
        if r.mix.max_threats == 0 || r.mix.max_threats > 20 {
            return Err(err("mix.max_threats must be in 1..=20".into()));
        }
        for name in r.mix.container_types.keys() {
            container_type(name)
                .ok_or_else(|| err(format!("unknown container type `{name}` (iso20, iso40, iso40_hc)")))?;
        }
        let weights_ok = |w: &mut dyn Iterator<Item = f64>| {
            let v: Vec<f64> = w.collect();
            v.iter().all(|x| x.is_finite() && *x >= 0.0) && v.iter().sum::<f64>() > 0.0
        };
        if !weights_ok(&mut r.mix.container_types.values().copied()) {
            return Err(err("mix.container_types needs non-negative weights, not all zero".into()));
        }
        if r.mix.threat_share > 0.0 && !weights_ok(&mut r.mix.threat_weights.values().copied()) {
            return Err(err("mix.threat_weights needs non-negative weights, not all zero".into()));
        }
        for s in Split::ALL {
            if r.splits.get(s) > MAX_CASES_PER_SPLIT {
                return Err(err(format!("splits.{} exceeds {MAX_CASES_PER_SPLIT}", s.name())));
            }
        }
        let sc = &r.scanner;
        // The profile is written to `profiles/<name>.json` and the case ids start with the
        // recipe name: keep both plain file names.
        for (what, name) in [("scanner.name", &sc.name), ("name", &r.name)] {
            if name.is_empty()
                || name.len() > 64
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                || name.starts_with('.')
            {
                return Err(err(format!("{what} `{name}` must be 1-64 of A-Z a-z 0-9 - _ . (not starting with .)")));
            }
        }
        if !(sc.pitch_mm >= 0.5 && sc.pitch_mm <= 50.0) {
            return Err(err(format!("scanner.pitch_mm = {} must be in 0.5..50", sc.pitch_mm)));
        }
        if !((2.0..=30.0).contains(&sc.source_distance_m) && (0.0..=6.0).contains(&sc.source_height_m)) {
            return Err(err("scanner source distance must be 2..30 m and height 0..6 m".into()));
        }
        if !(8..=64).contains(&sc.energy_bins) {
            return Err(err("scanner.energy_bins must be in 8..=64".into()));
        }
        // Here rather than at the first render, so that the error names the recipe.
        r.noise.validate().map_err(|e| err(e.to_string()))?;
        Ok(r)
    }
}

/// Container type by recipe name.
pub fn container_type(name: &str) -> Option<ContainerType> {
    match name {
        "iso20" => Some(ContainerType::Iso20),
        "iso40" => Some(ContainerType::Iso40),
        "iso40_hc" => Some(ContainerType::Iso40Hc),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "schema_version = 1\nname = \"t\"\nseed = 1\n[splits]\ntrain = 2\n";

    #[test]
    fn minimal_recipe_takes_defaults() {
        let r = Recipe::parse(MINIMAL, Path::new("t.toml")).unwrap();
        assert_eq!(r.splits.get(Split::Train), 2);
        assert_eq!(r.scanner.energy_bins, 32);
        assert!(r.mix.threat_weights.len() == 7);
        assert_eq!(r.noise.aperture_samples, 1);
        let four = Recipe::parse(&format!("{MINIMAL}[noise]\naperture_samples = 4\n"), Path::new("t.toml")).unwrap();
        assert_eq!(four.noise.aperture_samples, 4);
    }

    #[test]
    fn bad_recipes_name_the_problem() {
        for (extra, needle) in [
            ("[mix]\nempty_share = 1.5\n", "empty_share"),
            ("[mix]\ncontainer_types = { iso99 = 1.0 }\n", "iso99"),
            ("[scanner]\npitch_mm = 0.0\n", "pitch_mm"),
            ("[scanner]\nenergy_bins = 1000\n", "energy_bins"),
            ("[noise]\nphotons_hihg = 3.0\n", "photons_hihg"),
            ("[noise]\naperture_samples = 0\n", "noise.aperture_samples"),
            ("[noise]\naperture_samples = 64\n", "noise.aperture_samples"),
            ("[noise]\npsf_sigma_px = -1.0\n", "noise.psf_sigma_px"),
            ("[scanner]\nname = \"../../etc\"\n", "scanner.name"),
        ] {
            let text = format!("{MINIMAL}{extra}");
            let e = Recipe::parse(&text, Path::new("bad.toml")).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("bad.toml"), "{e}");
        }
        let e = Recipe::parse(&MINIMAL.replace("schema_version = 1", "schema_version = 2"), Path::new("v.toml"))
            .unwrap_err();
        assert!(e.to_string().contains("schema_version"));
        // A wrong type names the field in words, not a Rust type.
        let e = Recipe::parse(&format!("{MINIMAL}[scanner]\npitch_mm = \"fine\"\n"), Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains(r#"field scanner.pitch_mm: expected a number, found the string "fine""#), "{e}");
    }

    #[test]
    fn recipes_are_read_only_from_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let e = Recipe::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file (a folder)"), "{e}");
        let e = Recipe::load(&dir.path().join("none.toml")).unwrap_err().to_string();
        assert!(e.contains("none.toml") && e.matches("No such file").count() == 1, "{e}");
        #[cfg(unix)]
        {
            let e = Recipe::load(Path::new("/dev/null")).unwrap_err().to_string();
            assert!(e.contains("not a regular file (a device)"), "{e}");
            let fifo = dir.path().join("fifo.toml");
            assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
            let e = Recipe::load(&fifo).unwrap_err().to_string();
            assert!(e.contains("not a regular file (a FIFO)"), "{e}");
        }
    }
}
