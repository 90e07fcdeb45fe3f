//! The commodity reference: per HS chapter, heading or subheading, the material classes a load
//! of those goods shows on the scanner and its apparent density range
//! (`datasets/hs_reference.toml`, built in; a customs service adds or overrides lines with
//! its own file, `[verify] reference`). A declared HS code takes the longest matching line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::preprocess::materials::MaterialClass;

/// The reference shipped with nii-atr.
pub const HS_REFERENCE_TOML: &str = include_str!("../../../../datasets/hs_reference.toml");

/// Most bytes a commodity reference file may have: about 4,500 lines of 230 bytes, more than
/// there are HS headings. TOML is parsed into a tree first, up to 80 bytes of memory per byte
/// of file (docs/scans.md), so the cap bounds that too.
pub const MAX_REFERENCE_BYTES: u64 = 1 << 20;

/// Reference schema this build reads.
pub const REFERENCE_SCHEMA_VERSION: u32 = 1;

/// What goods of one HS code look like on the scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceLine {
    /// HS chapter (2 digits), heading (4) or subheading (6).
    pub hs: String,
    /// What goods the code covers.
    pub description: String,
    /// Classes a load of these goods is made of (organic, mixed, inorganic, metal).
    pub classes: Vec<MaterialClass>,
    /// Least share of the load's mass in those classes.
    pub min_class_share: f64,
    /// Apparent density of the load (mass over occupied projected area x internal width), g/cm^3.
    pub density_g_cm3: [f64; 2],
}

/// The commodity reference: one line per HS code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommodityReference {
    /// Reference format version; this build reads [`REFERENCE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The lines (`[[line]]` tables in TOML).
    #[serde(rename = "line", default)]
    pub lines: Vec<ReferenceLine>,
}

/// Why a commodity reference could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The file cannot be read: missing, not a regular file, or over [`MAX_REFERENCE_BYTES`].
    #[error("cannot read the commodity reference {0}")]
    File(crate::io::FileError),
    /// The file is not valid TOML or breaks a rule of the format.
    #[error("{}: invalid commodity reference: {reason}", .path.display())]
    Invalid {
        /// The reference file.
        path: PathBuf,
        /// Which rule.
        reason: String,
    },
}

impl CommodityReference {
    /// The built-in reference.
    pub fn embedded() -> Result<Self, ReferenceError> {
        Self::parse(HS_REFERENCE_TOML, Path::new("datasets/hs_reference.toml"))
    }

    /// The built-in reference with the lines of `extra` added; a line of `extra` with the same
    /// `hs` replaces the built-in one.
    pub fn with_extra(extra: Option<&Path>) -> Result<Self, ReferenceError> {
        let mut r = Self::embedded()?;
        if let Some(path) = extra {
            let text = crate::io::read_text_capped(path, MAX_REFERENCE_BYTES).map_err(ReferenceError::File)?;
            let more = Self::parse(&text, path)?;
            for line in more.lines {
                r.lines.retain(|l| l.hs != line.hs);
                r.lines.push(line);
            }
        }
        Ok(r)
    }

    /// Parses and checks a reference in TOML; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ReferenceError> {
        let bad = |reason: String| ReferenceError::Invalid { path: path.into(), reason };
        let r: Self = crate::io::parse_toml(text).map_err(|e| bad(e.to_string()))?;
        if r.schema_version != REFERENCE_SCHEMA_VERSION {
            return Err(bad(format!(
                "schema_version {} (this build reads {REFERENCE_SCHEMA_VERSION})",
                r.schema_version
            )));
        }
        for l in &r.lines {
            let why = |w: &str| bad(format!("line hs = \"{}\": {w}", l.hs));
            if !(matches!(l.hs.len(), 2 | 4 | 6) && l.hs.bytes().all(|b| b.is_ascii_digit())) {
                return Err(why("hs must be 2, 4 or 6 digits"));
            }
            if r.lines.iter().filter(|o| o.hs == l.hs).count() > 1 {
                return Err(why("duplicate line"));
            }
            if l.classes.is_empty()
                || l.classes.iter().any(|c| {
                    !matches!(
                        c,
                        MaterialClass::Organic | MaterialClass::Mixed | MaterialClass::Inorganic | MaterialClass::Metal
                    )
                })
            {
                return Err(why("classes must name organic, mixed, inorganic or metal"));
            }
            if !(0.0..=1.0).contains(&l.min_class_share) {
                return Err(why("min_class_share must be in [0, 1]"));
            }
            let [d0, d1] = l.density_g_cm3;
            if !(d0 >= 0.0 && d1 > d0 && d1 <= 22.0) {
                return Err(why("density_g_cm3 must be an increasing range in [0, 22]"));
            }
        }
        Ok(r)
    }

    /// The most specific line for a declared HS code (digits only; dots and spaces ignored).
    pub fn lookup(&self, hs_code: &str) -> Option<&ReferenceLine> {
        let digits: String = hs_code.chars().filter(|c| !matches!(c, '.' | ' ')).collect();
        if digits.len() < 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.lines.iter().filter(|l| digits.starts_with(&l.hs)).max_by_key(|l| l.hs.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_takes_the_longest_prefix_and_rejects_junk() {
        let text = "schema_version = 1\n[[line]]\nhs = \"61\"\ndescription = \"apparel\"\nclasses = [\"organic\"]\n\
                    min_class_share = 0.6\ndensity_g_cm3 = [0.05, 0.4]\n[[line]]\nhs = \"6109\"\ndescription = \"t\"\n\
                    classes = [\"organic\"]\nmin_class_share = 0.7\ndensity_g_cm3 = [0.1, 0.3]\n";
        let r = CommodityReference::parse(text, Path::new("r.toml")).unwrap();
        assert_eq!(r.lookup("6109.10").unwrap().hs, "6109");
        assert_eq!(r.lookup("6110").unwrap().hs, "61");
        assert!(r.lookup("0101").is_none());
        assert!(r.lookup("x").is_none() && r.lookup("").is_none() && r.lookup("61ab").is_none());
        for (from, to) in [
            ("hs = \"61\"", "hs = \"6a\""),
            ("[0.05, 0.4]", "[0.4, 0.05]"),
            ("[\"organic\"]", "[\"air\"]"),
            ("schema_version = 1", "schema_version = 2"),
            ("min_class_share = 0.6", "min_class_share = 1.6"),
        ] {
            assert!(CommodityReference::parse(&text.replacen(from, to, 1), Path::new("r.toml")).is_err(), "{to}");
        }
    }

    #[test]
    fn extra_lines_add_and_override() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mine.toml");
        std::fs::write(
            &p,
            "schema_version = 1\n[[line]]\nhs = \"0101\"\ndescription = \"horses\"\nclasses = [\"organic\"]\n\
             min_class_share = 0.5\ndensity_g_cm3 = [0.01, 0.2]\n",
        )
        .unwrap();
        let r = CommodityReference::with_extra(Some(&p)).unwrap();
        assert_eq!(r.lookup("010121").unwrap().description, "horses");
        let missing = CommodityReference::with_extra(Some(&dir.path().join("none.toml"))).unwrap_err();
        assert!(missing.to_string().contains("none.toml"), "{missing}");
        // A wrong type names the field in words.
        std::fs::write(&p, "schema_version = 1\n[[line]]\nhs = 101\n").unwrap();
        let e = CommodityReference::with_extra(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("mine.toml") && e.contains("field line[0].hs: expected a string, found 101"), "{e}");
        // A folder, a device or a FIFO is refused at once, not read.
        let e = CommodityReference::with_extra(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        #[cfg(unix)]
        {
            let e = CommodityReference::with_extra(Some(Path::new("/dev/null"))).unwrap_err().to_string();
            assert!(e.contains("not a regular file (a device)"), "{e}");
            let fifo = dir.path().join("fifo.toml");
            assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
            let e = CommodityReference::with_extra(Some(&fifo)).unwrap_err().to_string();
            assert!(e.contains("not a regular file (a FIFO)"), "{e}");
        }
    }
}
