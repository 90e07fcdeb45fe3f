//! Reading outside files safely: only regular files, never more bytes than a cap, and schema
//! errors that name the field in words.
//!
//! A FIFO, a device or `/dev/stdin` given as a scan, a plane or a label file would block the
//! reader until someone writes to it, stalling a whole batch; a multi-gigabyte file given as a
//! config would be read whole. Every reader of outside input opens its files through here, and
//! parses JSON and TOML through [`parse_json`] and [`parse_toml`], so that a wrong type reads
//! `field pixel_pitch_mm.along: expected a number, found the string "x"`, not a Rust type and a
//! line of a long file.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a file could not be read. Each message names the file and its cause once (the
/// operating system's error is part of the message, not a separate `source()`), so a chain
/// printer does not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be opened or read.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
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
        matches!(self, Self::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound)
    }

    /// The message without the file's name, for errors that name the file themselves.
    pub fn reason(&self) -> String {
        match self {
            Self::Io { error, .. } => error.to_string(),
            Self::NotRegular { kind, .. } => format!("not a regular file ({kind}); give a file"),
            Self::TooLarge { size, cap, .. } => format!("{size} bytes, over the limit of {cap} bytes for this input"),
        }
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
    let io = |error| FileError::Io { path: path.to_path_buf(), error };
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
        .map_err(|error| FileError::Io { path: path.to_path_buf(), error })?;
    if bytes.len() as u64 > cap {
        return Err(FileError::TooLarge { path: path.to_path_buf(), size: bytes.len() as u64, cap });
    }
    Ok(bytes)
}

/// The text of `path`, a regular UTF-8 file of at most `cap` bytes.
pub fn read_text_capped(path: &Path, cap: u64) -> Result<String, FileError> {
    String::from_utf8(read_capped(path, cap)?).map_err(|e| FileError::Io {
        path: path.to_path_buf(),
        error: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 text ({e})")),
    })
}

/// Where and why a JSON or TOML input does not fit its schema, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// The field, as a path from the top: `pixel_pitch_mm.along`, `manifest.goods[0].hs_code`.
    /// Empty when the text itself is broken, or the whole document is of the wrong kind.
    pub field: String,
    /// What is wrong, in words: `expected a number, found the string "x"`.
    pub reason: String,
    /// Line and column, from 1, where the text stops being valid JSON or TOML.
    pub position: Option<(usize, usize)>,
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.position, self.field.is_empty()) {
            (_, false) => write!(f, "field {}: {}", self.field, self.reason),
            (Some((line, column)), true) => write!(f, "line {line}, column {column}: {}", self.reason),
            (None, true) => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for SchemaError {}

/// Parses JSON text into `T`; trailing text after the value is an error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SchemaError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(|e| json_error_at("", e))?;
    Ok(value)
}

/// Converts a JSON value already parsed (an inline object of a larger file) into `T`.
pub fn parse_json_value<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, SchemaError> {
    serde_path_to_error::deserialize(value).map_err(json_error)
}

/// Parses a TOML document into `T`.
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T, SchemaError> {
    let de = toml::Deserializer::parse(text).map_err(|e| {
        let position = e.span().map(|s| line_column(text, s.start));
        SchemaError { field: String::new(), reason: format!("not valid TOML: {}", one_line(e.message())), position }
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        field_error(&field, &one_line(e.inner().message()), Format::Toml)
    })
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> SchemaError {
    let field = e.path().to_string();
    json_error_at(&field, e.into_inner())
}

fn json_error_at(field: &str, inner: serde_json::Error) -> SchemaError {
    // serde_json appends the position to every message; a field path says more for data errors.
    let text = inner.to_string();
    let suffix = format!(" at line {} column {}", inner.line(), inner.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text);
    match inner.classify() {
        serde_json::error::Category::Data => field_error(field, message, Format::Json),
        _ => SchemaError {
            field: String::new(),
            reason: format!("not valid JSON: {message}"),
            position: (inner.line() > 0).then(|| (inner.line(), inner.column())),
        },
    }
}

fn one_line(s: &str) -> String {
    s.trim().lines().map(str::trim).collect::<Vec<_>>().join("; ")
}

/// Line and column (from 1, in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[derive(Clone, Copy)]
enum Format {
    Json,
    Toml,
}

impl Format {
    /// What a JSON object / TOML table is called in that format.
    fn table(self) -> &'static str {
        match self {
            Format::Json => "an object",
            Format::Toml => "a table",
        }
    }
}

/// A serde data error at `path` (serde_path_to_error's rendering, `.` for the top) in words.
fn field_error(path: &str, message: &str, format: Format) -> SchemaError {
    let parent = if path == "." || path == "?" { "" } else { path };
    // serde_path_to_error's path ends at the field itself for unknown fields, at its parent
    // for missing ones.
    let child = |name: &str| match parent {
        "" => name.to_string(),
        p if p == name || p.ends_with(&format!(".{name}")) => p.to_string(),
        p => format!("{p}.{name}"),
    };
    let quoted = |s: &str| s.split('`').nth(1).map(str::to_string);
    let (field, reason) = if let Some(rest) = message.strip_prefix("missing field ") {
        (child(&quoted(rest).unwrap_or_default()), "required, but missing".to_string())
    } else if let Some(rest) = message.strip_prefix("duplicate field ") {
        (child(&quoted(rest).unwrap_or_default()), "given twice".to_string())
    } else if let Some(rest) = message.strip_prefix("unknown field ") {
        let known = rest.split_once(", ").map_or(String::new(), |(_, k)| format!(" ({k})"));
        (child(&quoted(rest).unwrap_or_default()), format!("not a known field{known}"))
    } else if let Some(rest) = message.strip_prefix("unknown variant ") {
        let found = quoted(rest).unwrap_or_default();
        let expected = rest.split_once(", expected ").map_or("another value", |(_, e)| e);
        (parent.to_string(), format!("expected {expected}, found \"{found}\""))
    } else if let Some((found, expected)) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.rsplit_once(", expected "))
    {
        (
            parent.to_string(),
            format!("expected {}, found {}", expected_in_words(expected, format), found_in_words(found, format)),
        )
    } else if let Some((length, expected)) =
        message.strip_prefix("invalid length ").and_then(|rest| rest.split_once(", expected "))
    {
        (parent.to_string(), format!("expected {}, found {length} items", expected_in_words(expected, format)))
    } else if let Some(name) = message.strip_prefix("data did not match any variant of untagged enum ") {
        let expected = match name.trim() {
            "Counts" => "a number, or a list of numbers with one per detector row",
            "ScannerRef" => "a profile name (a string) or a profile object",
            _ => "one of the forms this field takes",
        };
        (parent.to_string(), format!("expected {expected}"))
    } else {
        (parent.to_string(), message.to_string())
    };
    SchemaError { field, reason, position: None }
}

/// serde's `expected ...` (Rust types and serde's own terms) in words.
fn expected_in_words(expected: &str, format: Format) -> String {
    let words = match expected {
        "f32" | "f64" => "a number",
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "u128" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "a string" | "a borrowed string" | "string" | "a path string" => "a string",
        "a boolean" => "true or false",
        "a character" | "a char" => "a single character",
        "a sequence" => "a list",
        "a map" => format.table(),
        "unit" => "null",
        "option" => "a value or null",
        e if e.starts_with("struct ") => format.table(),
        e if e.starts_with("enum ") => "one of the names this field takes (a string)",
        e => {
            if let Some(n) = e.strip_prefix("an array of length ").or_else(|| e.strip_prefix("a tuple of size ")) {
                return format!("a list of {n} items");
            }
            return e.to_string();
        }
    };
    words.to_string()
}

/// serde's description of what was found (`string "x"`, `integer `5``) in words.
fn found_in_words(found: &str, format: Format) -> String {
    let inner = || found.split('`').nth(1).unwrap_or(found).to_string();
    match found {
        f if f.starts_with("string ") => format!("the string {}", &f["string ".len()..]),
        f if f.starts_with("integer ") || f.starts_with("floating point ") || f.starts_with("boolean ") => inner(),
        f if f.starts_with("character ") => format!("the character {}", inner()),
        "null" | "unit value" => "null".into(),
        "sequence" => "a list".into(),
        "map" => format.table().into(),
        "Option value" => "a value".into(),
        f => f.to_string(),
    }
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

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Pitch {
        along: f32,
        vertical: f32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        pixel_pitch_mm: Pitch,
        #[serde(default)]
        saturation: Option<u16>,
        #[serde(default)]
        goods: Vec<String>,
        #[serde(default)]
        range: Option<[usize; 2]>,
    }

    #[test]
    fn schema_errors_name_the_field_in_words() {
        let json = |t: &str| parse_json::<Doc>(t.as_bytes()).unwrap_err().to_string();
        let e = json(r#"{"pixel_pitch_mm": {"along": "x", "vertical": 5}}"#);
        assert_eq!(e, r#"field pixel_pitch_mm.along: expected a number, found the string "x""#);
        let e = json(r#"{"pixel_pitch_mm": {"along": 5}}"#);
        assert_eq!(e, "field pixel_pitch_mm.vertical: required, but missing");
        let e = json(r#"{"pixel_pitch_mm": {"along": 5, "vertical": 5}, "saturation": 70000}"#);
        assert_eq!(e, "field saturation: expected a whole number from 0 to 65535, found 70000");
        let e = json(r#"{"pixel_pitch_mm": {"along": 5, "vertical": 5}, "goods": ["a", 7]}"#);
        assert_eq!(e, "field goods[1]: expected a string, found 7");
        let e = json(r#"{"pixel_pitch_mm": {"along": 5, "vertical": 5}, "range": [1]}"#);
        assert!(e.starts_with("field range: expected a list of 2 items"), "{e}");
        let e = json(r#"{"pixel_pitch_mm": 3}"#);
        assert_eq!(e, "field pixel_pitch_mm: expected an object, found 3");
        let e = json(r#"{"pixel_pitch_mm": {"along": 5, "vertical": 5}, "colour": 1}"#);
        assert!(e.starts_with("field colour: not a known field"), "{e}");
        let e = json("{\"pixel_pitch_mm\": {\n\"along\": 5,");
        assert!(e.starts_with("line 2, column 11: not valid JSON: EOF"), "{e}");
        let e = json(r#"{"pixel_pitch_mm": {"along": 5, "vertical": 5}} x"#);
        assert!(e.contains("not valid JSON: trailing characters"), "{e}");
        // No Rust type names and no `invalid type` jargon reach the reader.
        for bad in [r#"{"pixel_pitch_mm": {"along": true, "vertical": 5}}"#, r#"{"pixel_pitch_mm": []}"#] {
            let e = json(bad);
            assert!(!e.contains("f32") && !e.contains("invalid type") && !e.contains("struct"), "{e}");
        }

        let toml = |t: &str| parse_toml::<Doc>(t).unwrap_err().to_string();
        let e = toml("[pixel_pitch_mm]\nalong = \"x\"\nvertical = 5\n");
        assert_eq!(e, r#"field pixel_pitch_mm.along: expected a number, found the string "x""#);
        let e = toml("colour = 2\n[pixel_pitch_mm]\nalong = 1.0\nvertical = 5.0\n");
        assert!(e.starts_with("field colour: not a known field"), "{e}");
        let e = toml("pixel_pitch_mm = 3\n");
        assert_eq!(e, "field pixel_pitch_mm: expected a table, found 3");
        let e = toml("[pixel_pitch_mm\nalong = 1\n");
        assert!(e.starts_with("line 1, column ") && e.contains("not valid TOML"), "{e}");

        let value = serde_json::json!({"along": 1, "vertical": null});
        let e = parse_json_value::<Pitch>(&value).unwrap_err().to_string();
        assert_eq!(e, "field vertical: expected a number, found null");
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
