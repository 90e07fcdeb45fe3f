//! Reading outside files safely: only regular files, and never more bytes than a cap.
//!
//! A FIFO, a device or `/dev/stdin` given as a scan, a plane or a label file would block the
//! reader until someone writes to it, stalling a whole batch; a multi-gigabyte file given as a
//! config would be read whole. Every reader of outside input opens its files through here.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Most bytes a text input of the engine may have (descriptor, config, spec, profile, recipe,
/// reference): the largest real one is well under 1 MiB.
pub const MAX_TEXT_BYTES: u64 = 16 << 20;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be opened or read.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A FIFO, a device, a socket or a folder where a file was expected.
    #[error("{}: not a regular file ({kind}); give a file", .path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is instead, in words.
        kind: &'static str,
    },
    /// Larger than the reader takes.
    #[error("{}: {size} bytes, over the limit of {cap} bytes for this input", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        cap: u64,
    },
}

impl FileError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. } | Self::NotRegular { path, .. } | Self::TooLarge { path, .. } => path,
        }
    }

    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

fn kind_of(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_char_device() || ft.is_block_device() {
            return "a device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() { "a folder" } else { "not a file" }
}

/// Whether `path` is a regular file (after following symbolic links), without opening it.
pub fn is_regular_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// Opens `path` for reading if it is a regular file, and returns it with its size. The type
/// is checked before opening, since opening a FIFO blocks, and again on the open file.
pub fn open_regular(path: &Path) -> Result<(File, u64), FileError> {
    let io = |source| FileError::Io { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(FileError::NotRegular { path: path.to_path_buf(), kind: kind_of(&meta.file_type()) });
    }
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(FileError::NotRegular { path: path.to_path_buf(), kind: kind_of(&meta.file_type()) });
    }
    Ok((file, meta.len()))
}

/// Opens `path` if it is a regular file of at most `cap` bytes.
pub fn open_capped(path: &Path, cap: u64) -> Result<(File, u64), FileError> {
    let (file, size) = open_regular(path)?;
    if size > cap {
        return Err(FileError::TooLarge { path: path.to_path_buf(), size, cap });
    }
    Ok((file, size))
}

/// The bytes of `path`, a regular file of at most `cap` bytes (a file growing while it is
/// read stops at `cap + 1` bytes and is refused).
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    let (file, size) = open_capped(path, cap)?;
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Io { path: path.to_path_buf(), source })?;
    if bytes.len() as u64 > cap {
        return Err(FileError::TooLarge { path: path.to_path_buf(), size: bytes.len() as u64, cap });
    }
    Ok(bytes)
}

/// The text of `path`, a regular UTF-8 file of at most `cap` bytes.
pub fn read_text_capped(path: &Path, cap: u64) -> Result<String, FileError> {
    String::from_utf8(read_capped(path, cap)?).map_err(|e| FileError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 text ({e})")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        std::fs::write(&p, "hello").unwrap();
        assert_eq!(read_text_capped(&p, 5).unwrap(), "hello");
        let e = read_capped(&p, 4).unwrap_err();
        assert!(matches!(e, FileError::TooLarge { size: 5, cap: 4, .. }), "{e}");
        assert!(e.to_string().contains("a.txt"), "{e}");
        let e = read_capped(&dir.path().join("none"), 10).unwrap_err();
        assert!(e.is_not_found() && e.to_string().contains("none"), "{e}");
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(read_text_capped(&p, 10).unwrap_err().to_string().contains("UTF-8"));
    }

    #[test]
    fn folders_devices_and_fifos_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let e = open_regular(dir.path()).unwrap_err();
        assert!(matches!(e, FileError::NotRegular { kind: "a folder", .. }), "{e}");
        #[cfg(unix)]
        {
            let e = open_regular(Path::new("/dev/null")).unwrap_err();
            assert!(matches!(e, FileError::NotRegular { kind: "a device", .. }), "{e}");
            let fifo = dir.path().join("fifo");
            let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
            assert!(status.success());
            // Opening a FIFO for reading blocks until a writer comes: this returns at once.
            let e = read_capped(&fifo, 100).unwrap_err();
            assert!(matches!(e, FileError::NotRegular { kind: "a FIFO", .. }), "{e}");
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
    }
}
