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
