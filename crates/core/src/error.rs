//! The library's error type: one variant per stage, each keeping its source error.

use crate::preprocess::materials::ProfileError;
use crate::preprocess::tiles::TileError;
use crate::runtime::RuntimeError;
use crate::scan::ScanError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Tile(#[from] TileError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its chain of sources on one line, `outer: cause: root cause`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
