#![no_main]
//! A dataset recipe (TOML) through `Recipe::parse` and its checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = nii_atr_synth::recipe::Recipe::parse(text, std::path::Path::new("recipe.toml"));
    }
});
