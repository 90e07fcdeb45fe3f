//! Helpers the behaviour tests share: the embedded catalogue, a generated dataset, JSON Lines.

use std::path::Path;

use nii_atr_core::physics::AttenuationTable;
use nii_atr_core::progress::Silent;
use nii_atr_core::scan::PlaneFormat;
use nii_atr_synth::catalogue::Catalogue;
use nii_atr_synth::dataset::{GenerateOptions, generate};
use nii_atr_synth::recipe::Recipe;
use serde::de::DeserializeOwned;

/// The catalogue shipped with nii-atr, checked against the embedded attenuation table.
pub fn catalogue() -> Catalogue {
    Catalogue::embedded(AttenuationTable::embedded().unwrap()).unwrap()
}

/// Generates every split of `recipe` into `out` with PNG planes, and previews when asked.
pub fn generate_dataset(recipe: &Recipe, out: &Path, previews: bool) {
    let opts = GenerateOptions {
        out: out.to_path_buf(),
        splits: vec![],
        cases: None,
        seed: None,
        plane_format: PlaneFormat::Png,
        previews,
    };
    generate(recipe, &catalogue(), &opts, &Silent).unwrap();
}

/// Every line of a JSON Lines file.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}
