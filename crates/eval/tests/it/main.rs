//! nii-atr-eval's behaviour tests: metrics against committed pycocotools and tidecv numbers, bad input.
//!
//! One test executable per crate (`autotests = false`): each file is a module here.

mod atr_reference;
mod bad_input;
mod coco_parity;
mod difficulty_reference;
mod result_size;
mod tide_parity;
