#![no_main]
//! A commodity reference (TOML, `[verify] reference`) through `CommodityReference::parse`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = nii_atr_core::verify::CommodityReference::parse(text, std::path::Path::new("reference.toml"));
    }
});
