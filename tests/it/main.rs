//! The `nii-atr` command line's behaviour tests: the real binary on real files.
//!
//! One test executable (`autotests = false`): each file is a module here.

mod cli_scan;
mod eval_cli;
mod eval_dataset;
mod inspect_cli;
mod synth_cli;
mod verify_cli;
