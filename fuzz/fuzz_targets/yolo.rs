#![no_main]
//! YOLO ground truth: an image list and one label file (split at the first NUL byte), through
//! the evaluation's YOLO readers.

mod common;

use libfuzzer_sys::fuzz_target;
use nii_atr_eval::dataset::{parse_yolo_txt, yolo_dataset, yolo_predictions};

fuzz_target!(|data: &[u8]| {
    let (list, labels) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"a.png 100 80\n"[..], data),
    };
    if let Ok(text) = std::str::from_utf8(labels) {
        let _ = parse_yolo_txt(std::path::Path::new("a.txt"), text);
    }
    let list_path = common::file("images.txt", list);
    let labels_dir = common::scratch().join("labels");
    std::fs::create_dir_all(&labels_dir).expect("labels folder");
    std::fs::write(labels_dir.join("a.txt"), labels).expect("label write");
    if let Ok(dataset) = yolo_dataset(&list_path, &labels_dir, None) {
        let _ = yolo_predictions(&labels_dir, &dataset);
    }
});
