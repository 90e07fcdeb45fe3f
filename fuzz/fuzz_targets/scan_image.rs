#![no_main]
//! A bare image given as a scan: TIFF (single or multi-page, 8/16-bit, strips or tiles), PNG
//! or JPEG bytes, picked by the first input byte, through `read_scan` under tight limits.

mod common;

use libfuzzer_sys::fuzz_target;
use nii_atr_core::scan::{Limits, read_scan};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else { return };
    let name = match kind % 3 {
        0 => "plane.tiff",
        1 => "plane.png",
        _ => "plane.jpg",
    };
    let path = common::file(name, bytes);
    let limits = Limits { max_width: 4096, max_height: 4096, max_pixels: 1 << 22 };
    let _ = read_scan(&path, &limits);
});
