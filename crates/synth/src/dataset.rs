//! Writes a dataset: every case as a scan (descriptor + 16-bit planes + preview), and per
//! split a COCO file and a JSON Lines file of case truth; the scanner profile beside them.
//!
//! Layout under the output folder:
//! `profile.json`, `recipe.toml`, `summary.json`, and per split `<split>/annotations.json`,
//! `<split>/truth.jsonl`, `<split>/<case_id>/{scan.json, high.png, low.png, preview.png}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::SynthError;
use super::case::{Case, build_case};
use super::catalogue::Catalogue;
use super::recipe::{Recipe, Split};
use super::render::{Rendered, ScannerPhysics, render};
use super::threats::CATEGORIES;
use nii_atr_core::physics::{AttenuationTable, ReferenceScanner, Source};
use nii_atr_core::preprocess::materials::{MaterialProfile, ProfileBuildOptions, ReferenceMeasurement};
use nii_atr_core::preprocess::render::{Palette, render_material, save_png};
use nii_atr_core::preprocess::{PreprocessOptions, preprocess};
use nii_atr_core::progress::Progress;
use nii_atr_core::scan::{
    AirRegion, CalibrationSpec, ContainerInfo, Counts, Manifest, ManifestLine, PixelPitch, PlaneCounts, PlaneFiles,
    PlaneFormat, SCHEMA_VERSION, Scan, ScanDescriptor, ScannerRef, SourceKind, SourceSpec, write_scan,
};
pub use nii_atr_core::truth::{CaseTruth, Declared, LoadLine, Mismatch, MismatchKind, ThreatTruth, difficulty};

/// Version of the truth and COCO extensions written here.
pub const DATASET_SCHEMA_VERSION: u32 = 1;

/// Where and what to write.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Output folder; created if missing.
    pub out: PathBuf,
    /// Splits to write (all of the recipe's when empty).
    pub splits: Vec<Split>,
    /// Cases per split instead of the recipe's counts.
    pub cases: Option<usize>,
    /// Seed instead of the recipe's.
    pub seed: Option<u64>,
    /// Image format of the 16-bit planes.
    pub plane_format: PlaneFormat,
    /// Write each case's pseudo-colour `preview.png` (it is also the COCO image then).
    pub previews: bool,
}

/// What a run made.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Cases written per split.
    pub cases: BTreeMap<String, usize>,
    /// Threat labels per category.
    pub threats: BTreeMap<String, usize>,
    /// Threat labels per difficulty (`easy`, `medium`, `hard`, by contrast-to-noise ratio).
    pub threats_by_difficulty: BTreeMap<String, usize>,
    /// Manifests that do not match their load, per kind of mismatch.
    pub mismatches: BTreeMap<String, usize>,
    /// Cases without cargo.
    pub empty_cases: usize,
    /// Median contrast-to-noise ratio of the threat labels.
    pub median_cnr: f64,
    /// Pixels rendered, both planes.
    pub pixels: u64,
    /// Wall time of the run, s (0 in `summary.json`, so the files stay byte-identical).
    pub seconds: f64,
    /// Cases per second of wall time (0 in `summary.json`).
    pub cases_per_second: f64,
}

/// The scanner profile the scan core needs for these scans: reference blocks simulated
/// through the recipe's spectra and detector, fed to the core's profile builder.
pub fn build_profile(recipe: &Recipe) -> Result<MaterialProfile, SynthError> {
    let table = AttenuationTable::embedded()?;
    let sources = recipe.scanner.source_pair();
    let scanner = ReferenceScanner::new(&sources, &recipe.scanner.detector)?.with_bins(recipe.scanner.energy_bins);
    let tube = matches!(sources.high, Source::Tube { .. });
    // Lead is left out for tubes: its K edge puts its R-value among the light metals.
    let refs: &[(&str, f32)] = if tube {
        &[("polyethylene", 5.44), ("water", 7.42), ("aluminium", 13.0), ("iron", 26.0), ("copper", 29.0)]
    } else {
        &[("polyethylene", 5.44), ("water", 7.42), ("aluminium", 13.0), ("iron", 26.0), ("lead", 82.0)]
    };
    let (g_min, g_max) = if tube { (0.05f64, 60.0f64) } else { (0.5, 400.0) };
    let mut measurements = Vec::new();
    for &(name, z_eff) in refs {
        let id = table.id(name)?;
        let rho = table.info(id).density_g_cm3;
        for i in 0..24 {
            let g = g_min * (g_max / g_min).powf(i as f64 / 23.0);
            let t_cm = g / rho;
            let (a_high, a_low) = scanner.measure(id, t_cm)?;
            measurements.push(ReferenceMeasurement {
                material: name.to_string(),
                z_eff,
                thickness_mm: (t_cm * 10.0) as f32,
                a_high: a_high as f32,
                a_low: a_low as f32,
            });
        }
    }
    MaterialProfile::from_references(&recipe.scanner.name, &measurements, &ProfileBuildOptions::default())
        .map_err(|e| SynthError::Parameter { name: "scanner profile", reason: e.to_string() })
}

/// ISO 6346 container number with its check digit, e.g. `NIIU1234565`.
pub fn container_number(owner: &str, serial: u32) -> String {
    let body = format!("{owner}U{:06}", serial % 1_000_000);
    let value = |ch: char| -> u32 {
        match ch {
            '0'..='9' => ch as u32 - '0' as u32,
            _ => {
                // A = 10, skipping multiples of 11.
                let mut v = 10;
                let mut c = 'A';
                while c != ch {
                    v += 1;
                    if v % 11 == 0 {
                        v += 1;
                    }
                    c = char::from_u32(c as u32 + 1).unwrap_or('Z');
                }
                v
            }
        }
    };
    let sum: u32 = body.chars().enumerate().map(|(i, ch)| value(ch) << i).sum();
    format!("{body}{}", sum % 11 % 10)
}

fn source_spec(recipe: &Recipe) -> SourceSpec {
    let pair = recipe.scanner.source_pair();
    let (kind, scale) = match pair.high {
        Source::Tube { .. } => (SourceKind::Tube, 1000.0),
        _ => (SourceKind::Linac, 1.0),
    };
    SourceSpec {
        kind,
        high_energy: (pair.high.endpoint_mev() * scale) as f32,
        low_energy: recipe.scanner.dual_energy.then(|| (pair.low.endpoint_mev() * scale) as f32),
        extra: Map::new(),
    }
}

/// The scan of a rendered case, with its descriptor.
pub fn case_scan(recipe: &Recipe, case: &Case, r: &Rendered, profile: &MaterialProfile) -> Result<Scan, SynthError> {
    let mut d = ScanDescriptor::minimal(
        case.id.clone(),
        source_spec(recipe),
        PlaneFiles { high: PathBuf::from("high.png"), low: r.low.as_ref().map(|_| PathBuf::from("low.png")) },
    );
    d.schema_version = SCHEMA_VERSION;
    let pitch = recipe.scanner.pitch_mm as f32;
    d.pixel_pitch_mm = PixelPitch { along: pitch, vertical: pitch };
    d.scanner = Some(ScannerRef::Inline(
        serde_json::to_value(profile)
            .map_err(|e| SynthError::Parameter { name: "scanner profile", reason: e.to_string() })?,
    ));
    d.calibration = CalibrationSpec {
        dark: Some(PlaneCounts {
            high: Counts::PerRow(r.dark_high.clone()),
            low: r.dark_low.clone().map(Counts::PerRow),
        }),
        air: None,
        air_region: Some(AirRegion {
            rows: (r.air_rows[1] > r.air_rows[0]).then_some(r.air_rows),
            columns: (r.air_columns[1] > r.air_columns[0]).then_some(r.air_columns),
        }),
        saturation_counts: None,
        extra: Map::new(),
    };
    let mut container_extra = Map::new();
    container_extra.insert("tare_kg".into(), json!(case.container.dims().tare_kg));
    d.container = Some(ContainerInfo {
        iso_type: Some(case.container.iso_code().to_string()),
        id: Some(container_number("NII", (case.seed % 1_000_000) as u32)),
        extra: container_extra,
    });
    d.manifest = Some(Manifest {
        declared_empty: case.declared.declared_empty,
        goods: case
            .declared
            .goods
            .iter()
            .map(|g| ManifestLine {
                hs_code: g.hs_code.clone(),
                description: g.description.clone(),
                packages: Some(g.packages),
                gross_mass_kg: Some(g.gross_mass_kg),
                extra: Map::new(),
            })
            .collect(),
        extra: Map::new(),
    });
    d.extra.insert(
        "synth".into(),
        json!({
            "generator": "nii-atr synth",
            "recipe": recipe.name,
            "split": case.split.name(),
            "index": case.index,
            "case_seed": case.seed,
            "sources": recipe.scanner.source_pair().label(),
            "artefacts": case.artefacts,
        }),
    );
    Scan::new(d, r.high.clone(), r.low.clone())
        .map_err(|e| SynthError::File { path: PathBuf::from(&case.id), reason: e.to_string() })
}

/// Generates and writes the dataset; returns what it made.
pub fn generate(
    recipe: &Recipe,
    catalogue: &Catalogue,
    opts: &GenerateOptions,
    progress: &dyn Progress,
) -> Result<Summary, SynthError> {
    let start = Instant::now();
    let (recipe, counts) = plan(recipe, opts)?;
    let total: usize = counts.iter().map(|c| c.1).sum();
    std::fs::create_dir_all(&opts.out).map_err(io_error(&opts.out))?;

    let physics = ScannerPhysics::new(
        &recipe.scanner.source_pair(),
        &recipe.scanner.detector,
        recipe.scanner.dual_energy,
        recipe.scanner.energy_bins,
    )?;
    let profile = build_profile(&recipe)?;
    write_json(&opts.out.join("profile.json"), &profile)?;
    let recipe_text =
        toml::to_string(&recipe).map_err(|e| SynthError::Parameter { name: "recipe", reason: e.to_string() })?;
    std::fs::write(opts.out.join("recipe.toml"), recipe_text).map_err(io_error(&opts.out.join("recipe.toml")))?;

    progress.set_length(total as u64);
    let writer = CaseWriter { recipe: &recipe, catalogue, physics: &physics, profile: &profile, opts };
    let mut summary = Summary::default();
    let mut cnrs = Vec::new();
    for (split, n) in counts {
        progress.set_message(split.name());
        let dir = opts.out.join(split.name());
        let profile_dir = dir.join("profiles");
        std::fs::create_dir_all(&profile_dir).map_err(io_error(&profile_dir))?;
        let profile_path = profile_dir.join(format!("{}.json", profile.name));
        write_json(&profile_path, &profile)?;
        let preprocess_opts = PreprocessOptions { profile: Some(profile_path.clone()), ..PreprocessOptions::default() };
        let results: Vec<(CaseTruth, u64)> = (0..n)
            .into_par_iter()
            .map(|index| {
                let done = writer.write_case(split, index, &dir, &preprocess_opts)?;
                progress.inc(1);
                Ok(done)
            })
            .collect::<Result<_, SynthError>>()?;
        let (truths, pixels): (Vec<CaseTruth>, Vec<u64>) = results.into_iter().unzip();
        for (truth, pixels) in truths.iter().zip(pixels) {
            tally(&mut summary, &mut cnrs, truth, pixels);
        }
        write_labels(&recipe, split, &dir, &truths, opts)?;
        summary.cases.insert(split.name().to_string(), n);
    }
    cnrs.sort_by(f64::total_cmp);
    summary.median_cnr = cnrs.get(cnrs.len() / 2).copied().unwrap_or(0.0);
    summary.seconds = start.elapsed().as_secs_f64();
    summary.cases_per_second = total as f64 / summary.seconds.max(1e-9);
    // Timing differs run to run, so it stays out of the files (which must be byte-identical).
    let mut stable = summary.clone();
    stable.seconds = 0.0;
    stable.cases_per_second = 0.0;
    write_json(&opts.out.join("summary.json"), &stable)?;
    Ok(summary)
}

/// The recipe as run (with the options' seed) and the cases to make per split.
fn plan(recipe: &Recipe, opts: &GenerateOptions) -> Result<(Recipe, Vec<(Split, usize)>), SynthError> {
    let mut recipe = recipe.clone();
    if let Some(seed) = opts.seed {
        recipe.seed = seed;
    }
    if let Some(n) = opts.cases
        && n > super::recipe::MAX_CASES_PER_SPLIT
    {
        return Err(SynthError::Parameter {
            name: "cases",
            reason: format!("{n} exceeds {} per split", super::recipe::MAX_CASES_PER_SPLIT),
        });
    }
    let splits: Vec<Split> = if opts.splits.is_empty() { Split::ALL.to_vec() } else { opts.splits.clone() };
    let counts = splits.iter().map(|&s| (s, opts.cases.unwrap_or_else(|| recipe.splits.get(s)))).collect();
    Ok((recipe, counts))
}

/// What every case of a run needs to be built, rendered and written.
struct CaseWriter<'a> {
    recipe: &'a Recipe,
    catalogue: &'a Catalogue,
    physics: &'a ScannerPhysics,
    profile: &'a MaterialProfile,
    opts: &'a GenerateOptions,
}

impl CaseWriter<'_> {
    /// Builds, renders and writes case `index` of `split` under `dir` (with its preview when
    /// asked); returns its truth and the pixels of its planes.
    fn write_case(
        &self,
        split: Split,
        index: usize,
        dir: &Path,
        preprocess_opts: &PreprocessOptions,
    ) -> Result<(CaseTruth, u64), SynthError> {
        let case = build_case(self.recipe, self.catalogue, split, index)?;
        let rendered = render(&case.scene, &self.recipe.scanner.fan(), self.physics, &case.noise, case.seed)?;
        let scan = case_scan(self.recipe, &case, &rendered, self.profile)?;
        let case_dir = dir.join(&case.id);
        write_scan(&scan, &case_dir, self.opts.plane_format)
            .map_err(|e| SynthError::File { path: case_dir.clone(), reason: e.to_string() })?;
        if self.opts.previews {
            let preview = case_dir.join("preview.png");
            let pre = preprocess(&scan, preprocess_opts)
                .map_err(|e| SynthError::File { path: case_dir.clone(), reason: e.to_string() })?;
            save_png(&render_material(&pre.attenuation, &pre.materials, &Palette::default()), &preview)
                .map_err(|e| SynthError::File { path: preview.clone(), reason: e.to_string() })?;
        }
        let truth = case_truth(&case, &rendered, split);
        Ok((truth, (rendered.high.len() * if rendered.low.is_some() { 2 } else { 1 }) as u64))
    }
}

/// Counts one case into the run's summary and adds its threats' CNRs to `cnrs`.
fn tally(summary: &mut Summary, cnrs: &mut Vec<f64>, truth: &CaseTruth, pixels: u64) {
    summary.pixels += pixels;
    if truth.empty {
        summary.empty_cases += 1;
    }
    if truth.mismatch.kind != MismatchKind::None {
        let name = serde_json::to_value(truth.mismatch.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *summary.mismatches.entry(name).or_default() += 1;
    }
    for t in &truth.threats {
        *summary.threats.entry(t.category.clone()).or_default() += 1;
        *summary.threats_by_difficulty.entry(t.difficulty.clone()).or_default() += 1;
        cnrs.push(t.cnr);
    }
}

/// Writes a split's labels into `dir`: the COCO file `annotations.json` and the case truth,
/// one JSON line per case, `truth.jsonl`.
fn write_labels(
    recipe: &Recipe,
    split: Split,
    dir: &Path,
    truths: &[CaseTruth],
    opts: &GenerateOptions,
) -> Result<(), SynthError> {
    let plane_ext = match opts.plane_format {
        PlaneFormat::Tiff => "tiff",
        PlaneFormat::Png => "png",
    };
    let mut coco_images = Vec::new();
    let mut coco_annotations = Vec::new();
    let mut jsonl = String::new();
    for (i, truth) in truths.iter().enumerate() {
        let image_id = i + 1;
        coco_images.push(json!({
            "id": image_id,
            // The preview when written, else the 16-bit high-energy plane.
            "file_name": if opts.previews {
                format!("{}/preview.png", truth.case_id)
            } else {
                format!("{}/high.{}", truth.case_id, plane_ext)
            },
            "scan": truth.scan,
            "width": truth.width,
            "height": truth.height,
        }));
        for t in &truth.threats {
            coco_annotations.push(coco_annotation(t, coco_annotations.len() + 1, image_id));
        }
        jsonl.push_str(
            &serde_json::to_string(truth)
                .map_err(|e| SynthError::Parameter { name: "truth", reason: e.to_string() })?,
        );
        jsonl.push('\n');
    }
    let coco = json!({
        "info": {
            "description": format!("nii-atr synth dataset `{}`, split {}", recipe.name, split.name()),
            "version": DATASET_SCHEMA_VERSION.to_string(),
            "schema_version": DATASET_SCHEMA_VERSION,
            "recipe": recipe.name,
            "seed": recipe.seed,
        },
        "licenses": [],
        "images": coco_images,
        "annotations": coco_annotations,
        "categories": CATEGORIES.iter().enumerate().map(|(i, c)| json!({"id": i + 1, "name": c, "supercategory": "threat"})).collect::<Vec<Value>>(),
    });
    write_json(&dir.join("annotations.json"), &coco)?;
    std::fs::write(dir.join("truth.jsonl"), jsonl).map_err(io_error(&dir.join("truth.jsonl")))
}

/// One threat's COCO annotation, number `id`, on image `image_id`, with the generator's
/// attributes.
fn coco_annotation(t: &ThreatTruth, id: usize, image_id: usize) -> Value {
    let category_id = CATEGORIES.iter().position(|c| *c == t.category).map_or(0, |p| p + 1);
    json!({
        "id": id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": t.bbox,
        "area": t.bbox[2] * t.bbox[3],
        "iscrowd": 0,
        "attributes": {
            "cnr": t.cnr,
            "contrast": t.contrast,
            "difficulty": t.difficulty,
            "hard_mode": t.hard_mode,
            "depth_m": t.depth_m,
            "occlusion_g_cm2": t.occlusion_g_cm2,
            "mass_kg": t.mass_kg,
            "material": t.material,
            "concealment": t.concealment,
            "footprint_pixels": t.footprint_pixels,
        },
    })
}

/// Maps an I/O error on `path` to a [`SynthError::Io`] naming it.
fn io_error(path: &Path) -> impl Fn(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io { path: path.to_path_buf(), error: source }
}

/// The truth record of a rendered case: its threats' boxes `[x, y, w, h]` where the render
/// shows them, with their measures rounded to 3 decimals.
fn case_truth(case: &Case, r: &Rendered, split: Split) -> CaseTruth {
    let threats = case
        .scene
        .threats
        .iter()
        .zip(&r.threats)
        .enumerate()
        .filter_map(|(i, (t, img))| {
            let img = img.as_ref()?;
            let [c0, r0, c1, r1] = img.bbox;
            Some(ThreatTruth {
                category: t.category.clone(),
                bbox: [c0, r0, c1 - c0 + 1, r1 - r0 + 1],
                footprint_pixels: img.pixels,
                cnr: round3(img.cnr),
                contrast: round3(img.contrast),
                difficulty: difficulty(img.cnr).to_string(),
                hard_mode: case.hard.get(i).copied().unwrap_or(false),
                depth_m: round3(t.depth_m),
                occlusion_g_cm2: round3(img.occlusion_g_cm2),
                mass_kg: round3(t.mass_kg),
                material: t.material.clone(),
                yaw_deg: round3(t.yaw_deg),
                concealment: t.concealment.clone(),
            })
        })
        .collect();
    CaseTruth {
        schema_version: DATASET_SCHEMA_VERSION,
        case_id: case.id.clone(),
        split,
        index: case.index,
        seed: case.seed,
        scan: format!("{}/scan.json", case.id),
        width: r.high.ncols(),
        height: r.high.nrows(),
        container: case.container.iso_code().to_string(),
        declared: case.declared.clone(),
        load: case.load.clone(),
        empty: case.empty,
        mismatch: case.mismatch.clone(),
        threats,
        artefacts: case.artefacts.clone(),
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SynthError> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|e| SynthError::File { path: path.to_path_buf(), reason: e.to_string() })?;
    std::fs::write(path, text).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso6346_check_digits_match_published_examples() {
        // ISO 6346 examples: CSQU3054383, BICU1234565.
        assert_eq!(container_number("CSQ", 305438), "CSQU3054383");
        assert_eq!(container_number("BIC", 123456), "BICU1234565");
    }

    #[test]
    fn profiles_build_for_every_source_preset_with_the_right_orientation() {
        for (sources, rises) in [("linac_6_4", false), ("linac_9_6", false), ("tube_140_80", true)] {
            let text = format!(
                "schema_version = 1\nname = \"p\"\nseed = 1\n[splits]\ntrain = 1\n[scanner]\nsources = \"{sources}\"\n"
            );
            let recipe = Recipe::parse(&text, Path::new("p.toml")).unwrap();
            let p = build_profile(&recipe).unwrap();
            // Physics, not configuration: pair production (MV) vs photoabsorption (kV).
            assert_eq!(p.r_increases_with_z, rises, "{sources}");
            assert_eq!(p.boundaries.len(), 3);
        }
    }

    #[test]
    fn difficulty_follows_cnr() {
        assert_eq!(difficulty(1.0), "hard");
        assert_eq!(difficulty(5.0), "medium");
        assert_eq!(difficulty(50.0), "easy");
    }
}
