//! The `nii-atr` command line's implementation: one module per subcommand in [`cli`], each a
//! thin face over the library crates (argument parsing, progress bars, printing, files).
//!
//! A library so that the behaviour tests and benches can call the subcommands in process; it
//! is not a stable API. Integrators use `nii_atr_core` (and `nii_atr_eval`, `nii_atr_synth`).

pub mod cli;
