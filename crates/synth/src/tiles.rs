//! Training-tile export: the engine's own model inputs, with box labels, from a labelled split.
//!
//! Each case goes through [`preprocess`](nii_atr_core::preprocess::preprocess), resampling to
//! the spec's `input.pixel_pitch_mm` when the scan's pitch differs
//! ([`resample`](nii_atr_core::preprocess::resample)), the SAHI grid at the model's input size,
//! the air-tile test and [`TileSource::fill_batch`], exactly as inspection does, so a model
//! trained on these tensors sees at inference what it saw in training. With `full_scan_pass`,
//! the whole scan shrunk into one input ([`shrink`]) is exported too.
//!
//! Output folder: `<case_id>.npy` (float32 `[n, C, H, W]`, NumPy format 1.0) per case,
//! `index.jsonl` (one line per tile: where it lies, its boxes), `export.json` (summary).
//!
//! Box labels are truth boxes clipped to the tile, in input pixels. A clipped box is kept when
//! both sides are at least `min_side` pixels and it shows at least [`MIN_VISIBLE_FRACTION`]
//! of the object or at least [`MIN_VISIBLE_AREA`] pixels (a 256-pixel piece of a 5 m false floor
//! is a label; a 3-pixel sliver of a pistol is not). A tile is `clean` when no truth box
//! touches it at all: only those feed the anomaly model.

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{Array4, ArrayViewMut4};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use nii_atr_core::detect::spec::{ModelSpec, SpecError, Task};
use nii_atr_core::inspect::config::{ConfigError, PipelineConfig};
use nii_atr_core::preprocess::resample::{resample, target_size};
use nii_atr_core::preprocess::tiles::{ChannelRecipe, TileGrid, TileRect, TileSource, has_content};
use nii_atr_core::preprocess::views::{ScanViews, shrink};
use nii_atr_core::progress::Progress;
use nii_atr_core::scan::Limits;
use nii_atr_core::truth::{CATEGORIES, CaseTruth, TruthError, read_truth};

/// A clipped box showing at least this share of its object is a label.
pub const MIN_VISIBLE_FRACTION: f32 = 0.2;
/// A clipped box of at least this many pixels is a label whatever share of the object it shows.
pub const MIN_VISIBLE_AREA: f32 = 1024.0;
/// Most tiles one case may export (a 40 ft scan at 5 mm and 256-pixel tiles has ~40).
pub const MAX_TILES_PER_CASE: usize = 4096;

/// Why a tile export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading or writing a file failed.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The split's `truth.jsonl` could not be read.
    #[error(transparent)]
    Truth(#[from] TruthError),
    /// The model spec could not be read.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The pipeline config could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The spec or options ask for what the export does not do.
    #[error("{}: {reason}", .spec.display())]
    Unsupported {
        /// The model spec.
        spec: PathBuf,
        /// What is not supported.
        reason: String,
    },
    /// A case's scan could not be read, preprocessed or cut into tiles.
    #[error("case {case}: {error}")]
    Case {
        /// The case id.
        case: String,
        /// The scan core's error.
        error: nii_atr_core::preprocess::PreprocessError,
    },
    /// A case would exceed a size limit (resampled size, tiles per case).
    #[error("case {case}: {reason}")]
    TooLarge {
        /// The case id.
        case: String,
        /// Which limit, by how much.
        reason: String,
    },
    /// More cases were asked for than the split holds.
    #[error("{}: cases {requested} requested, the split holds {available}", .path.display())]
    Cases {
        /// The split's `truth.jsonl`.
        path: PathBuf,
        /// Cases asked for.
        requested: usize,
        /// Cases in the split.
        available: usize,
    },
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// A split folder of `nii-atr synth` (holds `truth.jsonl`).
    pub split: PathBuf,
    /// The model spec whose input (size, channel recipe) the tiles are cut for.
    pub spec: PathBuf,
    /// Pipeline config: preprocessing, overlap, air-tile test, full-scan pass.
    pub config: PathBuf,
    /// Output folder; created if missing.
    pub out: PathBuf,
    /// Share of label-free tiles kept (deterministic in case id, tile index and seed).
    pub keep_background: f64,
    /// Seed of the background sampling.
    pub seed: u64,
    /// Only the first N cases of the split.
    pub cases: Option<usize>,
    /// Smallest side of a kept box in a grid tile, input pixels.
    pub min_side_tile: f32,
    /// Smallest side of a kept box in the shrunk full-scan input, input pixels.
    pub min_side_full: f32,
    /// Size limits for reading the scans.
    pub limits: Limits,
}

/// One box label in input pixels, `[x1, y1, x2, y2]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TileBox {
    /// 0-based index into [`CATEGORIES`] (the COCO category id minus one).
    pub class_id: usize,
    /// Category name.
    pub category: String,
    /// `[x1, y1, x2, y2]`, input pixels.
    pub bbox: [f32; 4],
    /// Share of the object's box inside the tile.
    pub visible: f32,
    /// The threat's difficulty by contrast-to-noise ratio (`easy`, `medium`, `hard`).
    pub difficulty: String,
}

/// Where a tile came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TileKind {
    /// A grid tile at native resolution.
    Tile,
    /// The whole scan shrunk into one input.
    FullScan,
}

/// One line of `index.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TileRecord {
    /// The case the tile was cut from.
    pub case_id: String,
    /// The `.npy` file, relative to the export folder.
    pub file: String,
    /// The tile's row in that file.
    pub index: usize,
    /// Grid tile or full-scan input.
    pub kind: TileKind,
    /// The tile's rectangle in scan pixels (for a full-scan input, the whole scan); in the
    /// resampled scan's pixels when `resampled` is set.
    pub rect: TileRect,
    /// Input pixels per scan pixel (1 for grid tiles).
    pub scale: [f32; 2],
    /// `[x, y]` resampled pixels per scan pixel, when the scan was resampled to the spec's
    /// `input.pixel_pitch_mm` before tiling (as `inspect` does); absent: the scan's own pitch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resampled: Option<[f32; 2]>,
    /// Its box labels.
    pub boxes: Vec<TileBox>,
    /// No truth box touches the tile (not even a dropped sliver).
    pub clean: bool,
    /// The case holds no threat at all.
    pub clean_case: bool,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExportSummary {
    /// The model spec's name.
    pub spec: String,
    /// Input shape `[channels, height, width]`.
    pub input: [usize; 3],
    /// Cases exported.
    pub cases: usize,
    /// Grid tiles exported.
    pub tiles: usize,
    /// Full-scan inputs exported.
    pub full_scan_inputs: usize,
    /// Inputs with at least one box label.
    pub tiles_with_boxes: usize,
    /// Grid tiles no truth box touches.
    pub clean_tiles: usize,
    /// Box labels in all.
    pub boxes: usize,
    /// Box labels per category, in category order.
    pub boxes_per_class: Vec<(String, usize)>,
    /// `[along, vertical]` mm per pixel of the exported inputs (the spec's pitch where scans
    /// were resampled, else the scans' own), when every case has the same: training scripts
    /// write it into the trained model's spec as `input.pixel_pitch_mm`.
    #[serde(default)]
    pub pixel_pitch_mm: Option<[f32; 2]>,
    /// Grid tiles left out by the air-tile test.
    pub skipped_air: usize,
    /// Label-free grid tiles left out by the background sampling.
    pub skipped_background: usize,
    /// Clipped boxes too small to be labels.
    pub dropped_slivers: usize,
    /// Bytes of `.npy` written.
    pub bytes: u64,
    /// Wall time, s.
    pub seconds: f64,
}

/// Clips a truth box `[x, y, w, h]` (scan pixels) to `rect`, maps it into input pixels with
/// `scale` and applies the label rule. `None`: no overlap at all. `Some(None)`: a sliver.
pub fn clip_box(bbox: [f32; 4], rect: &TileRect, scale: [f32; 2], min_side: f32) -> Option<Option<([f32; 4], f32)>> {
    let [x, y, w, h] = bbox;
    let (rx0, ry0) = (rect.x as f32, rect.y as f32);
    let (rx1, ry1) = (rx0 + rect.width as f32, ry0 + rect.height as f32);
    let (x0, y0, x1, y1) = (x.max(rx0), y.max(ry0), (x + w).min(rx1), (y + h).min(ry1));
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    let visible = ((x1 - x0) * (y1 - y0)) / (w * h).max(f32::MIN_POSITIVE);
    let b = [(x0 - rx0) * scale[0], (y0 - ry0) * scale[1], (x1 - rx0) * scale[0], (y1 - ry0) * scale[1]];
    let (bw, bh) = (b[2] - b[0], b[3] - b[1]);
    let keep = bw >= min_side && bh >= min_side && (visible >= MIN_VISIBLE_FRACTION || bw * bh >= MIN_VISIBLE_AREA);
    Some(keep.then_some((b, visible.min(1.0))))
}

/// Deterministic uniform number in [0, 1) from a case id, a tile index and a seed (splitmix64).
fn unit_hash(case: &str, index: usize, seed: u64) -> f64 {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for b in case.bytes().chain(index.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Writes a float32 array in NumPy's `.npy` format 1.0 (little-endian, C order).
pub fn write_npy(path: &Path, data: &Array4<f32>) -> Result<u64, ExportError> {
    let io = |source| ExportError::Io { path: path.into(), error: source };
    let s = data.shape();
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}, {}, {}), }}", s[0], s[1], s[2], s[3]);
    // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = std::io::BufWriter::new(file);
    w.write_all(b"\x93NUMPY\x01\x00").map_err(io)?;
    w.write_all(&(header.len() as u16).to_le_bytes()).map_err(io)?;
    w.write_all(header.as_bytes()).map_err(io)?;
    let standard = data.as_standard_layout();
    for v in standard.iter() {
        w.write_all(&v.to_le_bytes()).map_err(io)?;
    }
    w.flush().map_err(io)?;
    Ok((10 + header.len() + 4 * data.len()) as u64)
}

/// Labels of one input cut from `rect` of the scan at `scale`; `frame` maps truth boxes (scan
/// pixels) into the pixels `rect` is in (`[1, 1]` unless the scan was resampled to the model's
/// pitch).
fn labels(
    truth: &CaseTruth,
    frame: [f32; 2],
    rect: &TileRect,
    scale: [f32; 2],
    min_side: f32,
) -> (Vec<TileBox>, bool, usize) {
    let mut boxes = Vec::new();
    let (mut touched, mut slivers) = (false, 0);
    for t in &truth.threats {
        let [x, y, w, h] = t.bbox.map(|v| v as f32);
        let b = [x * frame[0], y * frame[1], w * frame[0], h * frame[1]];
        match clip_box(b, rect, scale, min_side) {
            None => {}
            Some(None) => {
                touched = true;
                slivers += 1;
            }
            Some(Some((bbox, visible))) => {
                touched = true;
                let class_id = CATEGORIES.iter().position(|c| *c == t.category).expect("read_truth checks categories");
                boxes.push(TileBox {
                    class_id,
                    category: t.category.clone(),
                    bbox,
                    visible,
                    difficulty: t.difficulty.clone(),
                });
            }
        }
    }
    (boxes, !touched, slivers)
}

/// What one case's export wrote.
struct CaseExport {
    records: Vec<TileRecord>,
    /// mm per exported pixel, `[along, vertical]`.
    pitch_mm: [f32; 2],
    skipped_air: usize,
    skipped_background: usize,
    slivers: usize,
    bytes: u64,
}

/// Exports one case: its grid tiles with content, their labels, and the full-scan input when
/// the config asks for it, all in one `.npy` tensor.
fn export_case(
    opts: &ExportOptions,
    cfg: &PipelineConfig,
    spec: &ModelSpec,
    truth: &CaseTruth,
) -> Result<CaseExport, ExportError> {
    let case =
        CaseTiles { opts, truth, scan: model_scan(opts, cfg, spec, truth)?, file: format!("{}.npy", truth.case_id) };
    let (mut out, rects) = case.grid_tiles(cfg, spec)?;
    let views = &case.scan.views;
    let (rows, cols) = (views.attenuation.rows(), views.attenuation.columns());
    let (tw, th) = (spec.input.width, spec.input.height);
    let full = cfg.tiling.full_scan_pass && spec.task == Task::Detect && (rows > th || cols > tw);
    let n = out.records.len() + usize::from(full);
    if n > MAX_TILES_PER_CASE {
        return Err(ExportError::TooLarge {
            case: truth.case_id.clone(),
            reason: format!("{n} tiles exceed the limit of {MAX_TILES_PER_CASE}"),
        });
    }
    let recipe = spec.input.recipe();
    let mut tensor = Array4::<f32>::zeros((n, recipe.len(), th, tw));
    tile_source(views)
        .fill_batch(&rects, &recipe, tensor.slice_mut(ndarray::s![..rects.len(), .., .., ..]))
        .map_err(|e| case_error(truth)(e.into()))?;
    if full {
        let k = rects.len();
        let (record, slivers) =
            case.full_scan_input(&recipe, tensor.slice_mut(ndarray::s![k..k + 1, .., .., ..]), k)?;
        out.slivers += slivers;
        out.records.push(record);
    }
    out.bytes = if n > 0 { write_npy(&opts.out.join(&case.file), &tensor)? } else { 0 };
    Ok(out)
}

/// The error of a case's preprocessing, tiling or tile filling, naming the case.
fn case_error(truth: &CaseTruth) -> impl Fn(nii_atr_core::preprocess::PreprocessError) -> ExportError + '_ {
    |source| ExportError::Case { case: truth.case_id.clone(), error: source }
}

/// The tile source of every view of a scan, as inspection builds it.
fn tile_source(views: &ScanViews) -> TileSource<'_> {
    TileSource {
        attenuation: &views.attenuation,
        materials: Some(&views.materials),
        pseudo_colour: Some(&views.pseudo_colour),
        r_min_attenuation: 0.05,
    }
}

/// A case's scan in the model's pixels: preprocessed, and resampled to the spec's
/// `input.pixel_pitch_mm` where it gives one (as inspection does).
struct ModelScan {
    views: ScanViews,
    /// `[x, y]` model pixels per scan pixel: maps truth boxes into `views`.
    frame: [f32; 2],
    /// mm per model pixel, `[along, vertical]`.
    pitch_mm: [f32; 2],
    /// The scan was resampled (`frame` is not `[1, 1]` exactly).
    resampled: bool,
}

/// Reads and preprocesses the case's scan, then resamples it as `inspect` would for `spec`.
fn model_scan(
    opts: &ExportOptions,
    cfg: &PipelineConfig,
    spec: &ModelSpec,
    truth: &CaseTruth,
) -> Result<ModelScan, ExportError> {
    let case_err = case_error(truth);
    let scan =
        nii_atr_core::scan::read_scan(&opts.split.join(&truth.scan), &opts.limits).map_err(|e| case_err(e.into()))?;
    let pre = nii_atr_core::preprocess::preprocess(&scan, &cfg.preprocess).map_err(&case_err)?;
    let views = ScanViews::new(pre);
    // Inspection's resampling to the model's pitch, with the truth boxes mapped alike.
    let (scan_rows, scan_cols) = (views.attenuation.rows(), views.attenuation.columns());
    let pitch = &scan.descriptor.pixel_pitch_mm;
    let views = match spec.input.pixel_pitch_mm {
        Some(p) => match target_size(scan_rows, scan_cols, pitch.along, pitch.vertical, p)
            .map_err(|reason| ExportError::TooLarge { case: truth.case_id.clone(), reason })?
        {
            Some((r, c)) => resample(&views, r, c),
            None => views,
        },
        None => views,
    };
    let (rows, cols) = (views.attenuation.rows(), views.attenuation.columns());
    let frame = [cols as f32 / scan_cols as f32, rows as f32 / scan_rows as f32];
    let pitch_mm = [pitch.along / frame[0], pitch.vertical / frame[1]];
    let resampled = (rows, cols) != (scan_rows, scan_cols);
    Ok(ModelScan { views, frame, pitch_mm, resampled })
}

/// One case's export in progress: its truth, its scan in model pixels, and the `.npy` file
/// (relative to the export folder) its tensor goes to.
struct CaseTiles<'a> {
    opts: &'a ExportOptions,
    truth: &'a CaseTruth,
    scan: ModelScan,
    file: String,
}

impl CaseTiles<'_> {
    /// The record of input `index` of this case's tensor.
    fn record(
        &self,
        index: usize,
        kind: TileKind,
        rect: TileRect,
        scale: [f32; 2],
        (boxes, clean): (Vec<TileBox>, bool),
    ) -> TileRecord {
        TileRecord {
            case_id: self.truth.case_id.clone(),
            file: self.file.clone(),
            index,
            kind,
            rect,
            scale,
            resampled: self.scan.resampled.then_some(self.scan.frame),
            boxes,
            clean,
            clean_case: self.truth.threats.is_empty(),
        }
    }

    /// The SAHI grid at the model's input size, less air tiles (inspection's test) and the
    /// label-free tiles not sampled; returns their records and rectangles.
    fn grid_tiles(&self, cfg: &PipelineConfig, spec: &ModelSpec) -> Result<(CaseExport, Vec<TileRect>), ExportError> {
        let (opts, truth, views) = (self.opts, self.truth, &self.scan.views);
        let (rows, cols) = (views.attenuation.rows(), views.attenuation.columns());
        let tiling = &cfg.tiling;
        let grid = TileGrid {
            tile_width: spec.input.width,
            tile_height: spec.input.height,
            overlap_width_ratio: tiling.overlap_width_ratio,
            overlap_height_ratio: tiling.overlap_height_ratio,
        };
        let all = grid.tiles(rows, cols).map_err(|e| case_error(truth)(e.into()))?;
        // The air test of `inspect::run`, expression for expression.
        let runs = |r: &TileRect| {
            let need = (tiling.min_content_fraction * (r.width * r.height) as f32).ceil().max(0.0) as usize;
            !tiling.skip_air_tiles || has_content(&views.attenuation.high, r, tiling.air_attenuation, need)
        };
        let mut out = CaseExport {
            records: Vec::new(),
            pitch_mm: self.scan.pitch_mm,
            skipped_air: 0,
            skipped_background: 0,
            slivers: 0,
            bytes: 0,
        };
        let mut rects = Vec::new();
        for (i, rect) in all.iter().enumerate() {
            if !runs(rect) {
                out.skipped_air += 1;
                continue;
            }
            let (boxes, clean, s) = labels(truth, self.scan.frame, rect, [1.0, 1.0], opts.min_side_tile);
            out.slivers += s;
            if boxes.is_empty() && unit_hash(&truth.case_id, i, opts.seed) >= opts.keep_background {
                out.skipped_background += 1;
                continue;
            }
            out.records.push(self.record(out.records.len(), TileKind::Tile, *rect, [1.0, 1.0], (boxes, clean)));
            rects.push(*rect);
        }
        Ok((out, rects))
    }

    /// `inspect::run`'s full-scan pass: the whole scan shrunk by the same scale into one
    /// input, placed at (0, 0), written into `slot` (input `index`). Returns its record and
    /// the slivers dropped from its labels.
    fn full_scan_input(
        &self,
        recipe: &ChannelRecipe,
        slot: ArrayViewMut4<f32>,
        index: usize,
    ) -> Result<(TileRecord, usize), ExportError> {
        let views = &self.scan.views;
        let (rows, cols) = (views.attenuation.rows(), views.attenuation.columns());
        let (tw, th) = (slot.shape()[3], slot.shape()[2]);
        let scale = (tw as f32 / cols as f32).min(th as f32 / rows as f32);
        let small = shrink(views, scale);
        let (sw, sh) = (small.attenuation.columns(), small.attenuation.rows());
        let small_rect = TileRect { x: 0, y: 0, width: sw, height: sh };
        tile_source(&small).fill_batch(&[small_rect], recipe, slot).map_err(|e| case_error(self.truth)(e.into()))?;
        let whole = TileRect { x: 0, y: 0, width: cols, height: rows };
        let s = [sw as f32 / cols as f32, sh as f32 / rows as f32];
        let (boxes, clean, slivers) = labels(self.truth, self.scan.frame, &whole, s, self.opts.min_side_full);
        Ok((self.record(index, TileKind::FullScan, whole, s, (boxes, clean)), slivers))
    }
}

/// Exports every case of the split (in parallel), then writes `index.jsonl` and `export.json`.
pub fn export(opts: &ExportOptions, progress: &dyn Progress) -> Result<ExportSummary, ExportError> {
    let start = std::time::Instant::now();
    let spec = ModelSpec::from_path(&opts.spec)?;
    if spec.input.layout != nii_atr_core::detect::spec::Layout::Nchw {
        return Err(ExportError::Unsupported {
            spec: opts.spec.clone(),
            reason: "only NCHW inputs are exported".into(),
        });
    }
    if !(0.0..=1.0).contains(&opts.keep_background) {
        return Err(ExportError::Unsupported {
            spec: opts.spec.clone(),
            reason: format!("keep_background {} is not a share in [0, 1]", opts.keep_background),
        });
    }
    let cfg = PipelineConfig::load(&opts.config)?;
    let mut truth = read_truth(&opts.split)?;
    if let Some(n) = opts.cases {
        if n > truth.len() {
            return Err(ExportError::Cases {
                path: opts.split.join("truth.jsonl"),
                requested: n,
                available: truth.len(),
            });
        }
        truth.truncate(n);
    }
    std::fs::create_dir_all(&opts.out).map_err(|source| ExportError::Io { path: opts.out.clone(), error: source })?;
    progress.set_length(truth.len() as u64);
    let cases: Vec<CaseExport> = truth
        .par_iter()
        .map(|t| {
            let r = export_case(opts, &cfg, &spec, t);
            progress.inc(1);
            r
        })
        .collect::<Result<_, _>>()?;

    let index_path = opts.out.join("index.jsonl");
    let mut index = String::new();
    let mut s = ExportSummary {
        spec: spec.name.clone(),
        input: [spec.input.channels.len(), spec.input.height, spec.input.width],
        cases: cases.len(),
        ..Default::default()
    };
    let mut per_class = vec![0usize; CATEGORIES.len()];
    for c in &cases {
        s.skipped_air += c.skipped_air;
        s.skipped_background += c.skipped_background;
        s.dropped_slivers += c.slivers;
        s.bytes += c.bytes;
        for r in &c.records {
            match r.kind {
                TileKind::Tile => s.tiles += 1,
                TileKind::FullScan => s.full_scan_inputs += 1,
            }
            s.tiles_with_boxes += usize::from(!r.boxes.is_empty());
            s.clean_tiles += usize::from(r.clean && r.kind == TileKind::Tile);
            s.boxes += r.boxes.len();
            for b in &r.boxes {
                per_class[b.class_id] += 1;
            }
            index.push_str(&serde_json::to_string(r).expect("plain data serialises"));
            index.push('\n');
        }
    }
    s.boxes_per_class = CATEGORIES.iter().map(|c| c.to_string()).zip(per_class).collect();
    // One pitch for the export, to 0.1 %; mixed pitches leave it unset.
    let same = |a: [f32; 2], b: [f32; 2]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-3 * y.abs());
    s.pixel_pitch_mm = cases.first().map(|c| c.pitch_mm).filter(|p| cases.iter().all(|c| same(c.pitch_mm, *p)));
    std::fs::write(&index_path, index).map_err(|source| ExportError::Io { path: index_path, error: source })?;
    s.seconds = start.elapsed().as_secs_f64();
    let summary_path = opts.out.join("export.json");
    let text = serde_json::to_string_pretty(&s).expect("plain data serialises");
    std::fs::write(&summary_path, text).map_err(|source| ExportError::Io { path: summary_path, error: source })?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_rule_keeps_objects_and_drops_slivers() {
        let rect = TileRect { x: 100, y: 50, width: 256, height: 256 };
        // Fully inside: translated into the tile, visible 1.
        let (b, v) = clip_box([120.0, 60.0, 30.0, 20.0], &rect, [1.0, 1.0], 4.0).unwrap().unwrap();
        assert_eq!(b, [20.0, 10.0, 50.0, 30.0]);
        assert_eq!(v, 1.0);
        // Outside: no overlap at all.
        assert!(clip_box([0.0, 0.0, 50.0, 40.0], &rect, [1.0, 1.0], 4.0).is_none());
        // A 3-pixel sliver of a pistol (36 x 20): touched but no label.
        assert_eq!(clip_box([67.0, 60.0, 36.0, 20.0], &rect, [1.0, 1.0], 4.0), Some(None));
        // 10 % of a 1000 x 30 false floor is 256 x 30 = 7680 px: kept by area.
        let (b, v) = clip_box([0.0, 200.0, 1000.0, 30.0], &rect, [1.0, 1.0], 4.0).unwrap().unwrap();
        assert_eq!(b, [0.0, 150.0, 256.0, 180.0]);
        assert!((v - 0.256).abs() < 1e-6);
        // Shrunk by 0.1: a 900 x 300 vehicle becomes 90 x 30.
        let whole = TileRect { x: 0, y: 0, width: 2500, height: 600 };
        let (b, _) = clip_box([1000.0, 200.0, 900.0, 300.0], &whole, [0.1, 0.1], 3.0).unwrap().unwrap();
        assert!((b[2] - b[0] - 90.0).abs() < 1e-4 && (b[3] - b[1] - 30.0).abs() < 1e-4);
        // ... while a 20 x 20 block becomes 2 x 2, below the 3-pixel minimum.
        assert_eq!(clip_box([10.0, 10.0, 20.0, 20.0], &whole, [0.1, 0.1], 3.0), Some(None));
    }

    #[test]
    fn npy_files_have_numpys_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let a = Array4::from_shape_fn((2, 3, 4, 5), |(n, c, y, x)| (n * 1000 + c * 100 + y * 10 + x) as f32);
        let bytes = write_npy(&p, &a).unwrap();
        let raw = std::fs::read(&p).unwrap();
        assert_eq!(raw.len() as u64, bytes);
        assert_eq!(&raw[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([raw[8], raw[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0, "data must start 64-byte aligned");
        let header = std::str::from_utf8(&raw[10..10 + hlen]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4, 5), }"));
        assert!(header.ends_with('\n'));
        let data = &raw[10 + hlen..];
        assert_eq!(data.len(), 2 * 3 * 4 * 5 * 4);
        // Element [1, 2, 3, 4] sits at C-order offset ((1*3 + 2)*4 + 3)*5 + 4 = 119.
        let v = f32::from_le_bytes(data[119 * 4..120 * 4].try_into().unwrap());
        assert_eq!(v, 1234.0);
    }

    #[test]
    fn background_sampling_is_deterministic_and_near_the_share() {
        let kept = (0..10_000).filter(|&i| unit_hash("case-000001", i, 7) < 0.25).count();
        assert!((2300..2700).contains(&kept), "{kept}");
        assert_eq!(unit_hash("a", 3, 1), unit_hash("a", 3, 1));
        assert_ne!(unit_hash("a", 3, 1), unit_hash("a", 3, 2));
    }
}
