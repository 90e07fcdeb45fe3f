#![no_main]
//! A model spec sidecar, TOML or JSON by the first input byte, through `ModelSpec::from_path`,
//! its checks and the Ultralytics metadata parsers.

mod common;

use libfuzzer_sys::fuzz_target;
use nii_atr_core::detect::spec::{ModelSpec, parse_imgsz, parse_ultralytics_names};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else { return };
    let path = common::file(if kind % 2 == 0 { "model.toml" } else { "model.json" }, bytes);
    if let Ok(spec) = ModelSpec::from_path(&path) {
        let _ = spec.check();
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = parse_ultralytics_names(text);
        let _ = parse_imgsz(text);
    }
});
