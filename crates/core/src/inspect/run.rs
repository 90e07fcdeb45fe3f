//! The tiled inference driver: one scan through every configured model.
//!
//! Per model, in stages: resample the scan to the model's pixel pitch, plan the tile grid
//! (tile = model input size) and drop all-air tiles with a summed-area test, run the
//! batches (a producer thread fills the next input while the model runs the current one),
//! optionally run the whole scan shrunk into one input, then merge the results into
//! findings mapped back to the scan's pixels. A model whose spec asks for Ultralytics'
//! letterbox (`resize = "letterbox"`) instead sees the whole scan scaled into one input, once,
//! and its boxes come back as Ultralytics returns them, with no cross-tile merge.

use super::InspectError;
use super::anomaly::{AnomalyCanvas, regions};
use super::config::{ConfigError, PipelineConfig, UnknownClass};
use super::findings::{
    BoxMm, Finding, FindingKind, Inspection, MaterialEvidence, ModelRun, REPORT_SCHEMA_VERSION, RegionStats,
    StageTimings, decide,
};
use crate::detect::decode::DecodeStats;
use crate::detect::merge::{join_side_by_side, merge_tiles};
use crate::detect::spec::{Feed, ModelSpec, ResizeMode, Task, ThreatCategory};
use crate::detect::{BoxXyxy, CutEdges, Decoded, Detection, Detector, RunTimes};
use crate::preprocess::render::{Palette, render_material};
use crate::preprocess::resample::{Letterbox, resample, target_size};
use crate::preprocess::tiles::{ChannelRecipe, InputSource, TileError, TileGrid, TileRect, TileSource, has_content};
use crate::preprocess::views::{ScanViews, shrink_parts};
use crate::scan::{Limits, Scan};
use image::RgbImage;
use ndarray::{Array4, Axis};
use std::ops::Range;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Memory (bytes) the two in-flight input batches of one model may take.
pub const MAX_BATCH_BYTES: u128 = 4 << 30;

/// A detector with its config entry's settings.
struct LoadedModel {
    detector: Detector,
    batch_size: usize,
    min_score: Option<f32>,
    /// `classes` of the config entry as class ids of the spec; None: every class.
    keep: Option<Vec<u32>>,
}

/// Loaded models plus the config: built once, then used for any number of scans.
pub struct Pipeline {
    cfg: PipelineConfig,
    models: Vec<LoadedModel>,
    /// Commodity reference of the manifest checks (built-in lines plus `[verify] reference`).
    reference: crate::verify::CommodityReference,
}

/// The spec's ids of `names`; a name it lacks is an error listing the names it has.
fn class_ids(spec: &ModelSpec, names: &[String]) -> Result<Vec<u32>, UnknownClass> {
    names
        .iter()
        .map(|name| {
            spec.classes.iter().position(|c| &c.name == name).map(|i| i as u32).ok_or_else(|| UnknownClass {
                name: name.clone(),
                have: spec.classes.iter().map(|c| c.name.clone()).collect(),
            })
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Pipeline {
    /// Loads every enabled model; any bad model or spec fails here, before a scan is read.
    pub fn load(cfg: PipelineConfig) -> Result<Self, InspectError> {
        // A config built in code gets the same checks as one read from a file.
        cfg.check()
            .map_err(|source| ConfigError::Invalid { path: cfg.base_dir.join("<pipeline config>"), error: source })?;
        if crate::runtime::loaded().is_none()
            && let Some(lib) = &cfg.ort_library
        {
            crate::runtime::init(Some(&cfg.resolve(lib))).map_err(crate::detect::DetectError::from)?;
        }
        let mut models = Vec::new();
        for entry in cfg.models.iter().filter(|m| m.enabled) {
            let path = cfg.resolve(&entry.path);
            let spec = entry.spec.as_ref().map(|s| cfg.resolve(s));
            let mut detector = Detector::load(&path, spec.as_deref(), &cfg.session)?;
            detector.set_inferred_thresholds(entry.score_threshold, entry.iou_threshold)?;
            // Two input batches live at once (one filling, one running): bound them before
            // any allocation, whatever the spec's tile size or the model's static batch say.
            let shape = detector.input_shape(detector.run_batch(entry.batch_size));
            let bytes = 2 * shape.iter().map(|&d| d as u128).product::<u128>() * 4;
            if bytes > MAX_BATCH_BYTES {
                return Err(InspectError::Config(ConfigError::BatchMemory {
                    model: path.clone(),
                    shape,
                    // u64 MiB, not u128: a 16-byte-aligned field would grow every InspectError.
                    need_mib: u64::try_from(bytes >> 20).unwrap_or(u64::MAX),
                    limit_mib: (MAX_BATCH_BYTES >> 20) as u64,
                }));
            }
            let keep = match &entry.classes {
                None => None,
                Some(names) => Some(class_ids(detector.spec(), names).map_err(|source| ConfigError::UnknownClass {
                    path: cfg.base_dir.join("<pipeline config>"),
                    model: path.clone(),
                    error: source,
                })?),
            };
            models.push(LoadedModel { detector, batch_size: entry.batch_size, min_score: entry.min_score, keep });
        }
        // A misspelt class would silently join nothing; a warning, not an error, so the default
        // config still runs a user's model with other classes.
        for name in &cfg.merge.join_side_by_side {
            if !models.iter().any(|m| m.detector.spec().classes.iter().any(|c| &c.name == name)) {
                tracing::warn!(class = %name, "merge.join_side_by_side names a class no enabled model has; it joins nothing");
            }
        }
        let extra = cfg.verify.reference.as_ref().map(|p| cfg.resolve(p));
        let reference = crate::verify::CommodityReference::with_extra(extra.as_deref())
            .map_err(|source| ConfigError::Reference { path: cfg.base_dir.clone(), error: source })?;
        Ok(Self { cfg, models, reference })
    }

    /// Reads the config file at `config` and loads its models.
    pub fn from_path(config: &Path) -> Result<Self, InspectError> {
        Self::load(PipelineConfig::load(config)?)
    }

    /// The config the pipeline was loaded with.
    pub fn config(&self) -> &PipelineConfig {
        &self.cfg
    }

    /// The loaded detectors, in config order (enabled models only).
    pub fn detectors(&self) -> impl Iterator<Item = &Detector> {
        self.models.iter().map(|m| &m.detector)
    }

    /// Reads a scan file and inspects it.
    pub fn inspect_path(&self, path: &Path, limits: &Limits) -> Result<(Inspection, ScanViews), InspectError> {
        let scan = crate::scan::read_scan(path, limits)?;
        let (mut inspection, views) = self.inspect(&scan)?;
        inspection.scan_path = Some(path.display().to_string());
        Ok((inspection, views))
    }

    /// Runs every model over one scan.
    pub fn inspect(&self, scan: &Scan) -> Result<(Inspection, ScanViews), InspectError> {
        let start = Instant::now();
        let mut timings = StageTimings::default();
        let t = Instant::now();
        let pre = crate::preprocess::preprocess(scan, &self.cfg.preprocess)?;
        // Calibration and classification run as one step in the scan core.
        timings.calibrate_ms = ms(t.elapsed());
        let (attenuation, materials, energy_registration) = (pre.attenuation, pre.materials, pre.registration);
        let t = Instant::now();
        let pseudo_colour = render_material(&attenuation, &materials, &Palette::default());
        timings.render_ms = ms(t.elapsed());
        let views = ScanViews { attenuation, materials, pseudo_colour };

        let mut findings = Vec::new();
        let mut runs = Vec::new();
        for model in &self.models {
            let (f, r) = self.run_model(scan, &views, model, &mut timings)?;
            findings.extend(f);
            runs.push(r);
        }
        // Declared-cargo verification: physics only, after preprocessing; its flagged checks
        // are findings and so take part in the decision.
        let t = Instant::now();
        let cargo = self.cfg.verify.enabled.then(|| {
            crate::verify::verify(scan, &views.attenuation, &views.materials, &self.reference, &self.cfg.verify)
        });
        if let Some(c) = &cargo {
            findings.extend(super::cargo::cargo_findings(
                c,
                scan,
                &views.attenuation,
                &views.materials,
                &self.cfg.verify,
            ));
        }
        timings.verify_ms = ms(t.elapsed());
        findings.sort_by(|a: &Finding, b: &Finding| b.score.total_cmp(&a.score));
        let (risk_score, decision, mut reasons) = decide(&findings, &runs, &self.cfg.decision);
        if let Some(r) = energy_registration.filter(|r| r.applied) {
            reasons.push(format!(
                "low-energy plane lagged {:+.2} scan lines (interlaced source) and was resampled onto the high plane",
                r.offset_columns
            ));
        }
        timings.total_ms = ms(start.elapsed());
        let pitch = &scan.descriptor.pixel_pitch_mm;
        let inspection = Inspection {
            schema_version: REPORT_SCHEMA_VERSION,
            scan_id: scan.descriptor.scan_id.clone(),
            scan_path: scan.origin.as_ref().map(|p| p.display().to_string()),
            rows: scan.rows(),
            columns: scan.columns(),
            pixel_pitch_mm: [pitch.along, pitch.vertical],
            decision,
            risk_score,
            reasons,
            findings,
            models: runs,
            timings,
            cargo,
            energy_registration,
        };
        Ok((inspection, views))
    }

    /// One model over one scan, stage by stage; findings come back in the scan's pixels.
    fn run_model(
        &self,
        scan: &Scan,
        views: &ScanViews,
        model: &LoadedModel,
        timings: &mut StageTimings,
    ) -> Result<(Vec<Finding>, ModelRun), InspectError> {
        let det = &model.detector;
        let spec = det.spec();
        let feed = spec.input.feed(scan.kind);
        let recipe = feed.recipe();
        let letterbox = feed.resize == ResizeMode::Letterbox;
        let t = Instant::now();
        // The letterbox sets its own scale: a spec cannot give it a pitch (checked at load).
        let resampled = if letterbox { None } else { at_model_pitch(scan, views, spec)? };
        let rgb = match (&resampled, scan.rgb.as_ref()) {
            (Some(v), Some(rgb)) if recipe.needs_rgb() => {
                Some(resize_rgb(rgb, v.attenuation.rows(), v.attenuation.columns()))
            }
            _ => None,
        };
        timings.preprocess_ms += ms(t.elapsed());
        let pass = ModelPass {
            cfg: &self.cfg,
            model,
            scan,
            scan_views: views,
            views: resampled.as_ref().unwrap_or(views),
            rgb: rgb.as_ref().or(scan.rgb.as_ref()),
            resampled: resampled.is_some(),
            recipe,
            feed,
        };
        let mut raw = RawResults {
            canvas: spec.decoder.anomaly_threshold().map(|_| AnomalyCanvas::new(pass.rows(), pass.cols())),
            ..RawResults::default()
        };
        let (tiles_total, tiles_run, full_pass, letterboxed) = if letterbox {
            let (prepared, lb) = pass.letterbox_pass(&mut raw)?;
            timings.preprocess_ms += ms(prepared);
            (1, 1, false, Some(lb))
        } else {
            let (tiles_total, tiles) = pass.plan_tiles()?;
            timings.preprocess_ms += ms(pass.run_batches(&tiles, &mut raw)?);
            let full_pass = pass.wants_full_scan_pass();
            if full_pass {
                timings.preprocess_ms += ms(pass.full_scan_pass(&mut raw)?);
            }
            (tiles_total, tiles.len(), full_pass, None)
        };
        timings.add_run(&raw.times);

        let t = Instant::now();
        let (stats, runs) = (raw.stats, raw.times.runs);
        let findings = pass.findings(raw);
        timings.merge_ms += ms(t.elapsed());
        let run = ModelRun {
            name: spec.name.clone(),
            version: spec.version.clone(),
            path: det.path().display().to_string(),
            provider: det.provider(),
            spec_source: det.spec_source().clone(),
            input_mode: feed.resize,
            channels: pass.recipe.channel_list(),
            score_threshold: spec.score_threshold,
            iou_threshold: spec.decoder.iou_threshold(),
            letterbox: letterboxed,
            tiles_total,
            tiles_skipped_air: tiles_total - tiles_run,
            runs,
            full_scan_pass: full_pass,
            resampled_px: resampled.as_ref().map(|_| [pass.rows(), pass.cols()]),
            dropped: stats,
            findings: findings.len(),
        };
        Ok((findings, run))
    }
}

/// A rendered image's colour planes at `rows` x `columns` (triangle filter, as the
/// pseudo-colour view is resampled).
fn resize_rgb(rgb: &RgbImage, rows: usize, columns: usize) -> RgbImage {
    image::imageops::resize(rgb, columns as u32, rows as u32, image::imageops::FilterType::Triangle)
}

/// The scan's views resampled to the model's pixel pitch; `None` when the spec names no
/// pitch or the scan is already at it.
fn at_model_pitch(scan: &Scan, views: &ScanViews, spec: &ModelSpec) -> Result<Option<ScanViews>, InspectError> {
    let Some(model_pitch) = spec.input.pixel_pitch_mm else { return Ok(None) };
    let pitch = &scan.descriptor.pixel_pitch_mm;
    let size =
        target_size(views.attenuation.rows(), views.attenuation.columns(), pitch.along, pitch.vertical, model_pitch)
            .map_err(|reason| InspectError::Pitch { scan: scan.display_name(), model: spec.name.clone(), reason })?;
    Ok(size.map(|(r, c)| resample(views, r, c)))
}

/// What one model's runs gave, in the model's pixels, before merging.
#[derive(Default)]
struct RawResults {
    boxes: Vec<Detection>,
    /// Per box, the sides an interior tile edge cut (none for the full-scan pass).
    cuts: Vec<CutEdges>,
    /// Tiles a classifier flagged as a threat: tile, class id, score.
    tile_classes: Vec<(TileRect, u32, f32)>,
    /// Stitched anomaly maps, for a model whose output is one.
    canvas: Option<AnomalyCanvas>,
    stats: DecodeStats,
    times: RunTimes,
}

/// Filled input batches the producer hands the model runner: the tiles' range and tensor.
type Filled = Result<(Range<usize>, Array4<f32>), InspectError>;

/// One model's pass over one scan: the state its stages share.
struct ModelPass<'a> {
    cfg: &'a PipelineConfig,
    model: &'a LoadedModel,
    scan: &'a Scan,
    /// The scan's own views: material evidence is read here.
    scan_views: &'a ScanViews,
    /// The views the model sees: the scan at the model's pitch (`scan_views` unless resampled).
    views: &'a ScanViews,
    /// A rendered image's colour planes at the size of `views`.
    rgb: Option<&'a RgbImage>,
    resampled: bool,
    /// The channels this scan is fed.
    recipe: ChannelRecipe,
    /// How this scan is fed: tiles or letterbox, and the letterbox grey.
    feed: Feed<'a>,
}

impl ModelPass<'_> {
    fn spec(&self) -> &ModelSpec {
        self.model.detector.spec()
    }

    /// Rows of the scan the model sees.
    fn rows(&self) -> usize {
        self.views.attenuation.rows()
    }

    /// Columns of the scan the model sees.
    fn cols(&self) -> usize {
        self.views.attenuation.columns()
    }

    fn tile_error(&self, source: TileError) -> InspectError {
        InspectError::Tiles { scan: self.scan.display_name(), model: self.spec().name.clone(), error: source }
    }

    /// Where tiles are cut from: the views the model sees, and a rendered image's colours.
    fn tile_source(&self) -> InputSource<'_> {
        InputSource {
            planes: TileSource {
                attenuation: &self.views.attenuation,
                materials: Some(&self.views.materials),
                pseudo_colour: Some(&self.views.pseudo_colour),
                r_min_attenuation: 0.05,
            },
            rgb: self.rgb,
        }
    }

    /// The whole scan letterboxed into one input, run once; its boxes mapped back to the
    /// scan's pixels as Ultralytics' `scale_boxes` and `clip_boxes` do (kept even when
    /// clipping leaves them empty, as Ultralytics keeps them). Returns the time spent building
    /// the input and the letterbox.
    fn letterbox_pass(&self, raw: &mut RawResults) -> Result<(Duration, Letterbox), InspectError> {
        let t = Instant::now();
        let det = &self.model.detector;
        let mut tensor = Array4::<f32>::zeros(det.tiles_shape(1));
        let lb = self
            .tile_source()
            .fill_letterbox(&self.recipe, self.feed.pad_value, tensor.index_axis_mut(Axis(0), 0))
            .map_err(|e| self.tile_error(e))?;
        let prepared = t.elapsed();
        if let Decoded::Boxes(per_input) = det.run_decode(tensor.view(), &mut raw.stats, &mut raw.times)? {
            for d in per_input.into_iter().next().unwrap_or_default() {
                let [x1, y1, x2, y2] = lb.to_image([d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2]);
                raw.cuts.push(CutEdges::default());
                raw.boxes.push(Detection { bbox: BoxXyxy::new(x1, y1, x2, y2), ..d });
            }
        }
        Ok((prepared, lb))
    }

    /// The tile grid over the scan (tile = model input) and, of it, the tiles to run: all
    /// but the all-air ones when configured. Returns the grid's size and those tiles.
    fn plan_tiles(&self) -> Result<(usize, Vec<TileRect>), InspectError> {
        let tiling = &self.cfg.tiling;
        self.tile_source().check(&self.recipe).map_err(|e| self.tile_error(e))?;
        let grid = TileGrid {
            tile_width: self.spec().input.width,
            tile_height: self.spec().input.height,
            overlap_width_ratio: tiling.overlap_width_ratio,
            overlap_height_ratio: tiling.overlap_height_ratio,
        };
        let all_tiles = grid.tiles(self.rows(), self.cols()).map_err(|e| self.tile_error(e))?;
        if !tiling.skip_air_tiles {
            return Ok((all_tiles.len(), all_tiles));
        }
        use rayon::prelude::*;
        let att = &self.views.attenuation.high;
        let keep: Vec<bool> = all_tiles
            .par_iter()
            .map(|r| {
                let need = (tiling.min_content_fraction * (r.width * r.height) as f32).ceil().max(0.0) as usize;
                has_content(att, r, tiling.air_attenuation, need)
            })
            .collect();
        let tiles = all_tiles.iter().zip(keep).filter(|(_, k)| *k).map(|(r, _)| *r).collect();
        Ok((all_tiles.len(), tiles))
    }

    /// Runs `tiles` through the model batch by batch, the next batch filled on a producer
    /// thread while the current one runs; returns the time spent waiting for filled batches.
    fn run_batches(&self, tiles: &[TileRect], raw: &mut RawResults) -> Result<Duration, InspectError> {
        let det = &self.model.detector;
        let plan = det.batch_plan(tiles.len(), self.model.batch_size);
        let mut waited = Duration::ZERO;
        std::thread::scope(|s| -> Result<(), InspectError> {
            let (tx, rx) = mpsc::sync_channel::<Filled>(1);
            let (back_tx, back_rx) = mpsc::channel::<Array4<f32>>();
            s.spawn(move || self.fill_batches(tiles, &plan, tx, back_rx));
            loop {
                let t = Instant::now();
                let Ok(msg) = rx.recv() else { break };
                waited += t.elapsed();
                let (range, tensor) = msg?;
                let decoded = det.run_decode(tensor.view(), &mut raw.stats, &mut raw.times)?;
                // The producer may be gone (last batch): then the tensor is simply dropped.
                let _ = back_tx.send(tensor);
                self.add_decoded(&tiles[range], decoded, raw);
            }
            Ok(())
        })?;
        Ok(waited)
    }

    /// The producer: fills each planned batch and sends it on, until the plan or the
    /// receiver ends. Two tensors circulate (filled, running) instead of a fresh zeroed
    /// allocation per batch: the runner sends each back through `back_rx` once it ran.
    fn fill_batches(
        &self,
        tiles: &[TileRect],
        plan: &[Range<usize>],
        tx: mpsc::SyncSender<Filled>,
        back_rx: mpsc::Receiver<Array4<f32>>,
    ) {
        let source = self.tile_source();
        let mut spare: Vec<Array4<f32>> = Vec::with_capacity(2);
        for range in plan {
            let chunk = &tiles[range.clone()];
            let shape = self.model.detector.tiles_shape(chunk.len());
            spare.extend(back_rx.try_iter());
            let mut tensor = match spare.iter().position(|t| t.shape() == shape) {
                Some(i) => spare.swap_remove(i),
                None => Array4::<f32>::zeros(shape),
            };
            let filled = source
                .fill_batch(chunk, &self.recipe, tensor.view_mut())
                .map(|_| (range.clone(), tensor))
                .map_err(|e| self.tile_error(e));
            if tx.send(filled).is_err() {
                return;
            }
        }
    }

    /// Adds one batch's decoded results, tile by tile: boxes moved from tile to scan
    /// pixels (with the tile edges that cut them), maps onto the canvas, flagged tiles.
    fn add_decoded(&self, chunk: &[TileRect], decoded: Decoded, raw: &mut RawResults) {
        let (rows, cols) = (self.rows(), self.cols());
        let spec = self.spec();
        match decoded {
            Decoded::Boxes(per_tile) => {
                for (rect, dets) in chunk.iter().zip(per_tile) {
                    let interior = [rect.x > 0, rect.y > 0, rect.x + rect.width < cols, rect.y + rect.height < rows];
                    for d in dets {
                        let local = d.bbox.clip(rect.width as f32, rect.height as f32);
                        if local.area() <= 0.0 {
                            continue;
                        }
                        raw.cuts.push(CutEdges::of(
                            &local,
                            rect.width as f32,
                            rect.height as f32,
                            interior,
                            self.cfg.tiling.edge_margin_px,
                        ));
                        raw.boxes.push(Detection { bbox: local.translate(rect.x as f32, rect.y as f32), ..d });
                    }
                }
            }
            Decoded::Anomaly(maps) => {
                let c = raw.canvas.as_mut().expect("anomaly decoder has a canvas");
                for (rect, tile) in chunk.iter().zip(maps) {
                    c.add(*rect, spec.input.width, spec.input.height, &tile.map);
                }
            }
            Decoded::Classes(classes) => {
                for (rect, top) in chunk.iter().zip(classes) {
                    if let Some(top) = top
                        && spec.threat_of(top.class_id) != ThreatCategory::Benign
                    {
                        raw.tile_classes.push((*rect, top.class_id, top.score));
                    }
                }
            }
        }
    }

    /// Whether to run the whole scan as one input too: configured, a detector, and a scan
    /// larger than one input.
    fn wants_full_scan_pass(&self) -> bool {
        let input = &self.spec().input;
        self.cfg.tiling.full_scan_pass
            && self.spec().task == Task::Detect
            && (self.rows() > input.height || self.cols() > input.width)
    }

    /// The whole scan shrunk into one input, for objects larger than a tile; its boxes join
    /// the tiles' as uncut boxes. Returns the time spent building the input.
    fn full_scan_pass(&self, raw: &mut RawResults) -> Result<Duration, InspectError> {
        let t = Instant::now();
        let (rows, cols) = (self.rows(), self.cols());
        let input = &self.spec().input;
        let scale = (input.width as f32 / cols as f32).min(input.height as f32 / rows as f32);
        let (small, small_materials, small_colour) =
            shrink_parts(self.views, self.recipe.needs_material_views(), scale);
        let rect = TileRect { x: 0, y: 0, width: small.columns(), height: small.rows() };
        let small_rgb =
            self.rgb.filter(|_| self.recipe.needs_rgb()).map(|rgb| resize_rgb(rgb, rect.height, rect.width));
        let small_source = InputSource {
            planes: TileSource {
                attenuation: &small,
                materials: small_materials.as_ref(),
                pseudo_colour: small_colour.as_ref(),
                r_min_attenuation: 0.05,
            },
            rgb: small_rgb.as_ref(),
        };
        let det = &self.model.detector;
        let mut tensor = Array4::<f32>::zeros(det.tiles_shape(1));
        small_source.fill_batch(&[rect], &self.recipe, tensor.view_mut()).map_err(|e| self.tile_error(e))?;
        let prepared = t.elapsed();
        if let Decoded::Boxes(per_tile) = det.run_decode(tensor.view(), &mut raw.stats, &mut raw.times)? {
            let (sx, sy) = (cols as f32 / rect.width as f32, rows as f32 / rect.height as f32);
            for d in per_tile.into_iter().next().unwrap_or_default() {
                let local = d.bbox.clip(rect.width as f32, rect.height as f32);
                if local.area() > 0.0 {
                    raw.cuts.push(CutEdges::default());
                    raw.boxes.push(Detection { bbox: local.scale(sx, sy), ..d });
                }
            }
        }
        Ok(prepared)
    }

    /// The model's findings on the scan: the config's `classes` kept, boxes stitched,
    /// merged and joined, weak ones (`min_score`) dropped, then flagged tiles and anomaly
    /// regions; each mapped back to the scan's pixels with its material evidence.
    fn findings(&self, mut raw: RawResults) -> Vec<Finding> {
        let spec = self.spec();
        // `min_score` drops a finding before its material evidence is gathered: the evidence
        // reads every pixel of the box, the costly part for a model emitting hundreds of weak
        // boxes per scan.
        let shown = |score: f32| self.model.min_score.is_none_or(|m| score >= m);
        // `classes`: the model's other outputs go here, before the merge (class-aware unless
        // `class_agnostic`, when a dropped class could otherwise absorb a kept one's box).
        if let Some(keep) = &self.model.keep {
            (raw.boxes, raw.cuts) =
                raw.boxes.into_iter().zip(raw.cuts).filter(|(d, _)| keep.contains(&d.class_id)).unzip();
            raw.tile_classes.retain(|t| keep.contains(&t.1));
        }
        let mut findings = Vec::new();
        let join: Vec<u32> = (spec.classes.iter().enumerate())
            .filter(|(_, c)| self.cfg.merge.join_side_by_side.contains(&c.name))
            .map(|(i, _)| i as u32)
            .collect();
        // One letterboxed input has no tiles to merge: its boxes are the model's, as Ultralytics
        // returns them.
        let merged = if self.feed.resize == ResizeMode::Letterbox {
            raw.boxes
        } else {
            merge_tiles(&raw.boxes, &raw.cuts, &self.cfg.merge)
        };
        let merged = join_side_by_side(&merged, &join);
        for d in merged.into_iter().filter(|d| shown(d.score)) {
            findings.push(self.finding(FindingKind::Object, d.class_id, d.score, d.bbox, None));
        }
        for (rect, class_id, score) in raw.tile_classes.into_iter().filter(|t| shown(t.2)) {
            let b =
                BoxXyxy::new(rect.x as f32, rect.y as f32, (rect.x + rect.width) as f32, (rect.y + rect.height) as f32);
            findings.push(self.finding(FindingKind::TileClass, class_id, score, b, None));
        }
        if let (Some(c), Some(threshold)) = (&raw.canvas, spec.decoder.anomaly_threshold()) {
            let map = c.average();
            let a = &self.cfg.anomaly;
            for (b, stats) in regions(&map, threshold, a.min_region_px, a.eight_connected) {
                let score = stats.peak.clamp(0.0, 1.0);
                if shown(score) {
                    findings.push(self.finding(FindingKind::AnomalyRegion, 0, score, b, Some(stats)));
                }
            }
        }
        findings
    }

    /// One finding from a box (and region) in the model's pixels: mapped back to the
    /// scan's pixels, named, and with the material evidence inside it.
    fn finding(
        &self,
        kind: FindingKind,
        class_id: u32,
        score: f32,
        bbox: BoxXyxy,
        region: Option<RegionStats>,
    ) -> Finding {
        let spec = self.spec();
        let scan_att = &self.scan_views.attenuation;
        let back = (scan_att.columns() as f32 / self.cols() as f32, scan_att.rows() as f32 / self.rows() as f32);
        let bbox = if self.resampled { bbox.scale(back.0, back.1) } else { bbox };
        let region = region
            .map(|r| RegionStats { area_px: ((r.area_px as f32) * back.0 * back.1).round().max(1.0) as usize, ..r });
        let (class_name, threat) = match kind {
            FindingKind::AnomalyRegion => ("anomaly".to_string(), ThreatCategory::Anomaly),
            _ => (spec.class_name(class_id).to_string(), spec.threat_of(class_id)),
        };
        let pitch = &self.scan.descriptor.pixel_pitch_mm;
        Finding {
            kind,
            class_id,
            class_name,
            threat,
            score,
            bbox_px: bbox,
            bbox_mm: BoxMm::from_px(&bbox, pitch.along, pitch.vertical),
            model: spec.name.clone(),
            evidence: MaterialEvidence::in_box(&bbox, &scan_att.high, Some(&self.scan_views.materials)),
            region,
            cargo_check: None,
        }
    }
}
