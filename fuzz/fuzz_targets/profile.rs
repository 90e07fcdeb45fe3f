#![no_main]
//! A scanner material profile (JSON) through `MaterialProfile::load` and its checks.

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::file("profile.json", data);
    let _ = nii_atr_core::preprocess::materials::MaterialProfile::load(&path);
});
