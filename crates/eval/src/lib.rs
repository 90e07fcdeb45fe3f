//! Evaluation harness: COCO box metrics identical to pycocotools, customs operating points
//! (Pd/Pfa, ROC, FROC), a TIDE error breakdown, bootstrap confidence intervals and reports.

#![warn(missing_docs)]

pub mod atr;
pub mod bootstrap;
pub mod budget;
pub mod coco;
pub mod compare;
pub mod dataset;
pub mod engine;
mod error;
pub mod plots;
pub mod report;
pub mod tide;
pub mod verification;

pub use dataset::{CocoDetection, Dataset, GroundTruth, ImageDetections, Predictions, ScoredBox};
pub use engine::{Split, evaluate_split};
pub use error::EvalError;
pub use report::{EvalConfig, Evaluation, Report, evaluate};
