//! Ground truth and predictions: COCO JSON (instances + results) and YOLO txt labels, validated
//! into one in-memory form that the metrics read.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::EvalError;

/// Largest input file read into memory (a COCO file of a few million boxes is well below this):
/// COCO ground truth and results, a YOLO image list, a `report.json`, a split's `truth.jsonl`;
/// also the most bytes all the label files of one YOLO folder may hold together.
pub const MAX_INPUT_BYTES: u64 = 2 << 30;

/// Largest single YOLO label or prediction file, and names file. A label file holds one line
/// of ~40 bytes per object, so a few KB; 16 MiB is ~400,000 boxes in one image, far more than
/// any detector keeps (Ultralytics' `max_det` is 300), yet a mistaken multi-gigabyte file is
/// refused before it is read.
pub const MAX_LABEL_BYTES: u64 = 16 << 20;

/// One scan (COCO "image").
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    /// COCO image id; predictions and annotations refer to it.
    pub id: i64,
    /// The image's file name as the ground truth lists it (YOLO label files are found by its stem).
    pub file_name: Option<String>,
    /// Width in pixels (needed to read normalised YOLO boxes).
    pub width: Option<f64>,
    /// Height in pixels (needed to read normalised YOLO boxes).
    pub height: Option<f64>,
}

/// One threat class (COCO "category").
#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    /// COCO category id (a YOLO class index for YOLO sets).
    pub id: i64,
    /// Class name, e.g. "firearm" (the id in words when the file gives none).
    pub name: String,
}

/// One labelled object. `area` is the annotation's own area (a segmentation area in COCO),
/// which pycocotools uses for the small/medium/large ranges; `bbox` is `[x, y, w, h]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    /// Annotation id, unique in the file (pycocotools indexes annotations by it).
    pub id: i64,
    /// The scan ([`ImageInfo::id`]) the object lies in.
    pub image_id: i64,
    /// Its class ([`Category::id`]).
    pub category_id: i64,
    /// Pixel box `[x, y, w, h]`.
    pub bbox: [f64; 4],
    /// Area in pixels², as the file gives it (the box area when it gives none).
    pub area: f64,
    /// A crowd region (COCO `iscrowd`): it may absorb any number of detections, which then
    /// count neither as true nor as false positives.
    pub iscrowd: bool,
    /// Contrast-to-noise ratio recorded by the generator: the difficulty of the object.
    pub cnr: Option<f64>,
}

/// One entry of a COCO results file as the evaluation holds it: `[x, y, w, h]` in f64, as
/// pycocotools does. Its area is `w * h`, as pycocotools' `loadRes` sets it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CocoDetection {
    /// The scan ([`ImageInfo::id`]) the detection was made on.
    pub image_id: i64,
    /// The predicted class ([`Category::id`]).
    pub category_id: i64,
    /// Pixel box `[x, y, w, h]`.
    pub bbox: [f64; 4],
    /// Detection confidence; higher ranks first.
    pub score: f64,
}

impl CocoDetection {
    /// Box area `w * h` in pixels² (pycocotools' `loadRes` area of a box result).
    pub fn area(&self) -> f64 {
        self.bbox[2] * self.bbox[3]
    }
}

/// A labelled evaluation set: scans, classes and their ground truth.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// The file the set was read from (shown and hashed in the report).
    pub source: PathBuf,
    /// The scans, in file order.
    pub images: Vec<ImageInfo>,
    /// The classes, in file order.
    pub categories: Vec<Category>,
    /// The labelled objects of known categories, in file order.
    pub annotations: Vec<GroundTruth>,
    /// Annotations whose category the file does not list: pycocotools drops them silently,
    /// here they are dropped and counted.
    pub skipped_unknown_category: usize,
}

/// Predictions for a [`Dataset`], with the skips pycocotools would make counted.
#[derive(Debug, Clone, Default)]
pub struct Predictions {
    /// The file the predictions were read from (`<engine>` for in-process detections).
    pub source: PathBuf,
    /// The detections of known categories, in file order (ties in score keep it).
    pub detections: Vec<CocoDetection>,
    /// Predictions of a category the ground truth does not list (pycocotools ignores them).
    pub skipped_unknown_category: usize,
}

/// The detections the engine makes for one scan: the in-process input of [`Predictions::from_engine`].
#[derive(Debug, Clone, Default)]
pub struct ImageDetections {
    /// The scan ([`ImageInfo::id`]).
    pub image_id: i64,
    /// Its detections, in the engine's order.
    pub detections: Vec<ScoredBox>,
}

/// One engine detection in pixel `[x, y, w, h]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredBox {
    /// The class, as a [`Category::id`] of the dataset.
    pub category_id: i64,
    /// Pixel box `[x, y, w, h]`.
    pub bbox: [f64; 4],
    /// Detection confidence.
    pub score: f64,
}

/// Ground truth and detections grouped by scan, once, for the metrics that walk scan by scan.
pub(crate) struct ByImage<'a> {
    truth: HashMap<i64, Vec<&'a GroundTruth>>,
    dets: HashMap<i64, Vec<&'a CocoDetection>>,
}

impl<'a> ByImage<'a> {
    /// Groups `dataset`'s annotations and `predictions`' detections by image id, in file order.
    pub(crate) fn new(dataset: &'a Dataset, predictions: &'a Predictions) -> Self {
        let mut truth: HashMap<i64, Vec<&GroundTruth>> = HashMap::new();
        let mut dets: HashMap<i64, Vec<&CocoDetection>> = HashMap::new();
        for g in &dataset.annotations {
            truth.entry(g.image_id).or_default().push(g);
        }
        for d in &predictions.detections {
            dets.entry(d.image_id).or_default().push(d);
        }
        Self { truth, dets }
    }

    /// The truth of one scan (crowd regions included); empty when it has none.
    pub(crate) fn truth(&self, image_id: i64) -> &[&'a GroundTruth] {
        self.truth.get(&image_id).map_or(&[], Vec::as_slice)
    }

    /// The detections of one scan; empty when it has none.
    pub(crate) fn detections(&self, image_id: i64) -> &[&'a CocoDetection] {
        self.dets.get(&image_id).map_or(&[], Vec::as_slice)
    }

    /// Every scan with truth, and its truth (in no particular order).
    pub(crate) fn truth_by_image(&self) -> impl Iterator<Item = (i64, &[&'a GroundTruth])> {
        self.truth.iter().map(|(&id, v)| (id, v.as_slice()))
    }

    /// Every scan with detections, and its detections (in no particular order).
    pub(crate) fn detections_by_image(&self) -> impl Iterator<Item = (i64, &[&'a CocoDetection])> {
        self.dets.iter().map(|(&id, v)| (id, v.as_slice()))
    }
}

#[derive(Deserialize)]
struct RawGt {
    images: Vec<RawImage>,
    #[serde(default)]
    annotations: Vec<RawAnnotation>,
    categories: Vec<RawCategory>,
}

#[derive(Deserialize)]
struct RawImage {
    id: i64,
    file_name: Option<String>,
    width: Option<f64>,
    height: Option<f64>,
}

#[derive(Deserialize)]
struct RawCategory {
    id: i64,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawAnnotation {
    id: i64,
    image_id: i64,
    category_id: i64,
    bbox: Vec<f64>,
    area: Option<f64>,
    #[serde(default)]
    iscrowd: u8,
    cnr: Option<f64>,
    /// Free-form attributes (CVAT's COCO export, `nii-atr synth`): `attributes.cnr` is read
    /// when the annotation has no top-level `cnr`.
    #[serde(default)]
    attributes: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawResult {
    image_id: i64,
    category_id: i64,
    bbox: Vec<f64>,
    score: f64,
}

/// The bytes of an input file: a regular file (a FIFO or a device is refused without blocking)
/// of at most [`MAX_INPUT_BYTES`], checked before anything is allocated.
pub(crate) fn read_input(path: &Path) -> Result<Vec<u8>, EvalError> {
    Ok(nii_atr_core::io::read_capped(path, MAX_INPUT_BYTES)?)
}

fn check_box(path: &Path, what: &'static str, index: usize, bbox: &[f64]) -> Result<[f64; 4], EvalError> {
    let invalid = |reason| EvalError::InvalidBox { path: path.to_path_buf(), what, index, bbox: bbox.to_vec(), reason };
    let b: [f64; 4] = bbox.try_into().map_err(|_| invalid("expected 4 numbers [x, y, w, h]"))?;
    if b.iter().any(|v| !v.is_finite()) {
        return Err(invalid("not a finite number"));
    }
    if b[2] < 0.0 || b[3] < 0.0 {
        return Err(invalid("negative width or height"));
    }
    // Areas and corners must stay finite or every IoU with the box turns NaN.
    if !(b[2] * b[3]).is_finite() || !(b[0] + b[2]).is_finite() || !(b[1] + b[3]).is_finite() {
        return Err(invalid("box too large: its area or corner overflows"));
    }
    Ok(b)
}

fn check_value(
    path: &Path,
    what: &'static str,
    index: usize,
    field: &'static str,
    value: f64,
) -> Result<f64, EvalError> {
    let reason = if !value.is_finite() {
        "not a finite number"
    } else if value < 0.0 && field != "score" {
        "negative"
    } else {
        return Ok(value);
    };
    Err(EvalError::InvalidValue { path: path.to_path_buf(), what, index, field, value, reason })
}

impl Dataset {
    /// Reads a COCO instances file (`images`, `categories`, `annotations`).
    pub fn from_coco_json(path: &Path) -> Result<Self, EvalError> {
        let bytes = read_input(path)?;
        let raw: RawGt =
            serde_json::from_slice(&bytes).map_err(|source| EvalError::Json { path: path.to_path_buf(), source })?;
        let images = raw
            .images
            .into_iter()
            .map(|i| ImageInfo { id: i.id, file_name: i.file_name, width: i.width, height: i.height })
            .collect();
        let categories = raw
            .categories
            .into_iter()
            .map(|c| Category { id: c.id, name: c.name.unwrap_or_else(|| c.id.to_string()) })
            .collect();
        let mut annotations = Vec::with_capacity(raw.annotations.len());
        for (index, a) in raw.annotations.into_iter().enumerate() {
            let bbox = check_box(path, "annotation", index, &a.bbox)?;
            // pycocotools needs `area`; without it, take the box area.
            let area = check_value(path, "annotation", index, "area", a.area.unwrap_or(bbox[2] * bbox[3]))?;
            // `nii-atr synth` writes the CNR under `attributes`; a non-numeric one is an error
            // rather than a silently missing difficulty.
            let cnr = match (a.cnr, a.attributes.as_ref().and_then(|v| v.get("cnr"))) {
                (Some(c), _) => Some(c),
                (None, None) => None,
                (None, Some(v)) => Some(v.as_f64().ok_or_else(|| EvalError::InvalidValue {
                    path: path.to_path_buf(),
                    what: "annotation",
                    index,
                    field: "attributes.cnr",
                    value: f64::NAN,
                    reason: "not a number",
                })?),
            };
            if let Some(cnr) = cnr {
                check_value(path, "annotation", index, "cnr", cnr)?;
            }
            annotations.push(GroundTruth {
                id: a.id,
                image_id: a.image_id,
                category_id: a.category_id,
                bbox,
                area,
                iscrowd: a.iscrowd != 0,
                cnr,
            });
        }
        Self::new(path.to_path_buf(), images, categories, annotations)
    }

    /// Builds a dataset from parts (the engine's labelled cases, YOLO files), checking ids.
    pub fn new(
        source: PathBuf,
        images: Vec<ImageInfo>,
        categories: Vec<Category>,
        annotations: Vec<GroundTruth>,
    ) -> Result<Self, EvalError> {
        let dup = |what, id| EvalError::DuplicateId { path: source.clone(), what, id };
        let mut seen = HashSet::new();
        for i in &images {
            if !seen.insert(i.id) {
                return Err(dup("image", i.id));
            }
        }
        let image_ids = seen;
        crate::budget::check_category_count(&source, categories.len())?;
        let mut cat_ids = HashSet::new();
        for c in &categories {
            if !cat_ids.insert(c.id) {
                return Err(dup("category", c.id));
            }
        }
        let mut ann_ids = HashSet::new();
        let mut kept = Vec::with_capacity(annotations.len());
        let mut skipped_unknown_category = 0;
        for (index, a) in annotations.into_iter().enumerate() {
            // pycocotools indexes annotations by id: a repeated id silently replaces the first.
            if !ann_ids.insert(a.id) {
                return Err(dup("annotation", a.id));
            }
            if !image_ids.contains(&a.image_id) {
                return Err(EvalError::AnnotationWithoutImage { path: source.clone(), index, image_id: a.image_id });
            }
            if cat_ids.contains(&a.category_id) {
                kept.push(a);
            } else {
                skipped_unknown_category += 1;
            }
        }
        Ok(Self { source, images, categories, annotations: kept, skipped_unknown_category })
    }

    /// Image ids, sorted and unique, as pycocotools' `Params.imgIds`.
    pub fn sorted_image_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.images.iter().map(|i| i.id).collect();
        ids.sort_unstable();
        ids
    }

    /// Category ids, sorted, as pycocotools' `Params.catIds`.
    pub fn sorted_category_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.categories.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids
    }

    /// The name of category `id`, or the id in words when the set does not list it.
    pub fn category_name(&self, id: i64) -> String {
        self.categories.iter().find(|c| c.id == id).map_or_else(|| id.to_string(), |c| c.name.clone())
    }
}

impl Predictions {
    /// Reads a COCO results file (a JSON array of `{image_id, category_id, bbox, score}`).
    pub fn from_coco_json(path: &Path, dataset: &Dataset) -> Result<Self, EvalError> {
        let bytes = read_input(path)?;
        let raw: Vec<RawResult> =
            serde_json::from_slice(&bytes).map_err(|source| EvalError::Json { path: path.to_path_buf(), source })?;
        let mut detections = Vec::with_capacity(raw.len());
        for (index, r) in raw.into_iter().enumerate() {
            let bbox = check_box(path, "prediction", index, &r.bbox)?;
            let score = check_value(path, "prediction", index, "score", r.score)?;
            detections.push(CocoDetection { image_id: r.image_id, category_id: r.category_id, bbox, score });
        }
        Self::new(path.to_path_buf(), detections, dataset)
    }

    /// Wraps detections made in process by the engine, one entry per scan.
    pub fn from_engine(per_image: &[ImageDetections], dataset: &Dataset) -> Result<Self, EvalError> {
        let source = PathBuf::from("<engine>");
        let mut detections = Vec::new();
        for image in per_image {
            for b in &image.detections {
                let index = detections.len();
                let bbox = check_box(&source, "prediction", index, &b.bbox)?;
                let score = check_value(&source, "prediction", index, "score", b.score)?;
                detections.push(CocoDetection { image_id: image.image_id, category_id: b.category_id, bbox, score });
            }
        }
        Self::new(source, detections, dataset)
    }

    /// Writes the detections as a COCO results file (a JSON array of `{bbox, category_id,
    /// image_id, score}`) that [`Predictions::from_coco_json`] reads back.
    pub fn write_coco_json(&self, path: &Path) -> Result<(), EvalError> {
        let results: Vec<serde_json::Value> = self
            .detections
            .iter()
            .map(|d| serde_json::json!({"image_id": d.image_id, "category_id": d.category_id, "bbox": d.bbox, "score": d.score}))
            .collect();
        let text =
            serde_json::to_string(&results).map_err(|source| EvalError::Json { path: path.to_path_buf(), source })?;
        std::fs::write(path, text).map_err(|source| EvalError::Write { path: path.to_path_buf(), source })
    }

    /// Checks predictions against the ground truth: an unknown image is an error (pycocotools
    /// asserts), an unknown category a counted skip (pycocotools ignores it).
    pub fn new(source: PathBuf, detections: Vec<CocoDetection>, dataset: &Dataset) -> Result<Self, EvalError> {
        let images: HashSet<i64> = dataset.images.iter().map(|i| i.id).collect();
        let cats: HashSet<i64> = dataset.categories.iter().map(|c| c.id).collect();
        let mut kept = Vec::with_capacity(detections.len());
        let mut skipped_unknown_category = 0;
        for (index, d) in detections.into_iter().enumerate() {
            if !images.contains(&d.image_id) {
                return Err(EvalError::UnknownImage { path: source, index, image_id: d.image_id });
            }
            if cats.contains(&d.category_id) {
                kept.push(d);
            } else {
                skipped_unknown_category += 1;
            }
        }
        Ok(Self { source, detections: kept, skipped_unknown_category })
    }
}

/// One parsed YOLO label line: class and normalised centre box, plus a score for predictions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YoloBox {
    /// YOLO class index (the category id).
    pub class: i64,
    /// Box centre x, as a fraction of the image width.
    pub cx: f64,
    /// Box centre y, as a fraction of the image height.
    pub cy: f64,
    /// Box width, as a fraction of the image width.
    pub w: f64,
    /// Box height, as a fraction of the image height.
    pub h: f64,
    /// Detection confidence (the 6th field of a prediction line; absent in ground truth).
    pub score: Option<f64>,
}

impl YoloBox {
    /// Pixel `[x, y, w, h]` in an image of `width` x `height`.
    pub fn to_pixels(&self, width: f64, height: f64) -> [f64; 4] {
        [(self.cx - self.w / 2.0) * width, (self.cy - self.h / 2.0) * height, self.w * width, self.h * height]
    }
}

/// Parses one YOLO txt file: `class cx cy w h [score]` per line, coordinates in [0, 1].
pub fn parse_yolo_txt(path: &Path, text: &str) -> Result<Vec<YoloBox>, EvalError> {
    let mut boxes = Vec::new();
    for (line_no, line) in data_lines(text) {
        let err = |reason: String| EvalError::Yolo { path: path.to_path_buf(), line: line_no, reason };
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 5 && fields.len() != 6 {
            return Err(err(format!("expected `class cx cy w h [score]`, found {} fields", fields.len())));
        }
        let class: i64 = fields[0].parse().map_err(|_| err(format!("class `{}` is not an integer", fields[0])))?;
        if class < 0 {
            return Err(err(format!("negative class {class}")));
        }
        let mut v = [0.0f64; 5];
        for (slot, text) in v.iter_mut().zip(&fields[1..]) {
            *slot = text.parse().map_err(|_| err(format!("`{text}` is not a number")))?;
            if !slot.is_finite() {
                return Err(err(format!("`{text}` is not a finite number")));
            }
        }
        if v[2] < 0.0 || v[3] < 0.0 {
            return Err(err("negative width or height".into()));
        }
        // Normalised coordinates a little outside [0, 1] occur after augmentation; far outside
        // means pixel coordinates were written by mistake.
        if v[..4].iter().any(|c| !(-0.5..=1.5).contains(c)) {
            return Err(err("coordinates are not normalised to [0, 1] (pixel values?)".into()));
        }
        boxes.push(YoloBox { class, cx: v[0], cy: v[1], w: v[2], h: v[3], score: (fields.len() == 6).then_some(v[4]) });
    }
    Ok(boxes)
}

/// A YOLO labelled set: `images.txt` lists `file_name width height` per line (image id = line
/// number from 1), labels are `<labels_dir>/<file stem>.txt`, category id = YOLO class index.
/// `names` gives class names (line i = class i); without it the classes seen are used.
///
/// An empty image list, a labels path that is not a folder, or a folder holding a label file
/// for none of the listed images is an error: it is far likelier a mistyped path than a set
/// without a single object.
pub fn yolo_dataset(image_list: &Path, labels_dir: &Path, names: Option<&Path>) -> Result<Dataset, EvalError> {
    let images = read_image_list(image_list)?;
    if images.is_empty() {
        return Err(EvalError::EmptyInput {
            path: image_list.to_path_buf(),
            reason: "lists no images (expected `file_name width height` lines)".into(),
        });
    }
    let mut folder = LabelFolder::open(labels_dir, "labels")?;
    let mut annotations = Vec::new();
    let mut classes = std::collections::BTreeSet::new();
    for image in &images {
        let (w, h) = (image.width.unwrap_or(0.0), image.height.unwrap_or(0.0));
        let label = yolo_label_path(labels_dir, image);
        let Some(text) = folder.read(&label)? else { continue };
        for b in parse_yolo_txt(&label, &text)? {
            let bbox = b.to_pixels(w, h);
            classes.insert(b.class);
            annotations.push(GroundTruth {
                id: annotations.len() as i64 + 1,
                image_id: image.id,
                category_id: b.class,
                bbox,
                area: bbox[2] * bbox[3],
                iscrowd: false,
                cnr: None,
            });
        }
    }
    folder.check_found(images.len(), image_list)?;
    let categories = match names {
        Some(p) => {
            let text = nii_atr_core::io::read_text_capped(p, MAX_LABEL_BYTES)?;
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .enumerate()
                .map(|(i, n)| Category { id: i as i64, name: n.to_string() })
                .collect()
        }
        None => classes.into_iter().map(|id| Category { id, name: id.to_string() }).collect(),
    };
    Dataset::new(image_list.to_path_buf(), images, categories, annotations)
}

/// YOLO prediction files (`class cx cy w h score`) for the images of `dataset`, matched by
/// file stem; images need `file_name`, `width` and `height`.
///
/// A path that is not a folder, or a folder holding a prediction file for none of the images,
/// is an error (to score a model that detected nothing, give an empty COCO results file `[]`).
pub fn yolo_predictions(labels_dir: &Path, dataset: &Dataset) -> Result<Predictions, EvalError> {
    let mut folder = LabelFolder::open(labels_dir, "predictions")?;
    let mut detections = Vec::new();
    for image in &dataset.images {
        let (Some(w), Some(h), Some(_)) = (image.width, image.height, &image.file_name) else {
            return Err(EvalError::Report {
                path: dataset.source.clone(),
                reason: format!("image {} needs file_name, width and height to read YOLO predictions", image.id),
            });
        };
        let label = yolo_label_path(labels_dir, image);
        let Some(text) = folder.read(&label)? else { continue };
        for (n, b) in parse_yolo_txt(&label, &text)?.into_iter().enumerate() {
            let Some(score) = b.score else {
                return Err(EvalError::Yolo {
                    path: label,
                    line: n + 1,
                    reason: "prediction line has no score (6th field)".into(),
                });
            };
            detections.push(CocoDetection { image_id: image.id, category_id: b.class, bbox: b.to_pixels(w, h), score });
        }
    }
    folder.check_found(dataset.images.len(), &dataset.source)?;
    Predictions::new(labels_dir.to_path_buf(), detections, dataset)
}

/// A folder of YOLO label (or prediction) files being read: each file capped at
/// [`MAX_LABEL_BYTES`], all of them together at [`MAX_INPUT_BYTES`] (what a COCO file holding
/// the same boxes may have), and a count of the files found.
struct LabelFolder<'a> {
    dir: &'a Path,
    /// "labels" or "predictions", for messages.
    what: &'static str,
    /// Most bytes of one file ([`MAX_LABEL_BYTES`]).
    file_cap: u64,
    /// Most bytes of all files together ([`MAX_INPUT_BYTES`]).
    total_cap: u64,
    found: usize,
    total_bytes: u64,
}

impl<'a> LabelFolder<'a> {
    /// A [`EvalError::Read`] when `dir` does not exist, an [`EvalError::EmptyInput`] when it
    /// is not a folder.
    fn open(dir: &'a Path, what: &'static str) -> Result<Self, EvalError> {
        let meta = std::fs::metadata(dir).map_err(|source| EvalError::Read { path: dir.to_path_buf(), source })?;
        if !meta.is_dir() {
            return Err(EvalError::EmptyInput {
                path: dir.to_path_buf(),
                reason: format!("not a folder: YOLO {what} are a folder of `<image stem>.txt` files"),
            });
        }
        Ok(Self { dir, what, file_cap: MAX_LABEL_BYTES, total_cap: MAX_INPUT_BYTES, found: 0, total_bytes: 0 })
    }

    /// A label file's text; `None` when there is no such file, which means an image without
    /// objects (as YOLO tools treat it). Anything but a regular file is refused unopened.
    fn read(&mut self, label: &Path) -> Result<Option<String>, EvalError> {
        // The running total is checked before the file is read: the folder never holds more
        // in memory than its cap plus one file.
        let size = match nii_atr_core::io::open_capped(label, self.file_cap) {
            Ok((_, size)) => size,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if self.total_bytes + size > self.total_cap {
            return Err(EvalError::TooLarge {
                path: self.dir.to_path_buf(),
                size: self.total_bytes + size,
                limit: self.total_cap,
            });
        }
        let text = nii_atr_core::io::read_text_capped(label, self.file_cap)?;
        self.found += 1;
        self.total_bytes += text.len() as u64;
        Ok(Some(text))
    }

    /// An [`EvalError::EmptyInput`] when no image of `list` had a file in the folder.
    fn check_found(&self, n_images: usize, list: &Path) -> Result<(), EvalError> {
        if self.found > 0 {
            return Ok(());
        }
        let hint = if self.what == "predictions" {
            "; to score a model that detected nothing, give an empty COCO results file `[]`"
        } else {
            ""
        };
        Err(EvalError::EmptyInput {
            path: self.dir.to_path_buf(),
            reason: format!(
                "no YOLO {} file for any of the {n_images} images of {} (looked for `<image stem>.txt`){hint}",
                self.what,
                list.display()
            ),
        })
    }
}

/// The lines of a YOLO text file that hold data (neither blank nor `#` comments), trimmed,
/// with their line numbers counted from 1.
fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(n, line)| (n + 1, line.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn yolo_label_path(labels_dir: &Path, image: &ImageInfo) -> PathBuf {
    let stem = image
        .file_name
        .as_deref()
        .map(|f| Path::new(f).file_stem().map_or_else(|| f.to_string(), |s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| image.id.to_string());
    labels_dir.join(format!("{stem}.txt"))
}

fn read_image_list(path: &Path) -> Result<Vec<ImageInfo>, EvalError> {
    let text = nii_atr_core::io::read_text_capped(path, MAX_INPUT_BYTES)?;
    let mut images = Vec::new();
    let mut names = HashMap::new();
    for (line_no, line) in data_lines(&text) {
        let err = |reason: String| EvalError::Yolo { path: path.to_path_buf(), line: line_no, reason };
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            return Err(err("expected `file_name width height`".into()));
        }
        let dim = |s: &str| -> Result<f64, EvalError> {
            match s.parse::<u32>() {
                Ok(v) if v > 0 => Ok(f64::from(v)),
                _ => Err(err(format!("`{s}` is not a positive integer size"))),
            }
        };
        let (w, h) = (dim(f[1])?, dim(f[2])?);
        if names.insert(f[0].to_string(), line_no).is_some() {
            return Err(err(format!("image `{}` listed twice", f[0])));
        }
        images.push(ImageInfo {
            id: images.len() as i64 + 1,
            file_name: Some(f[0].to_string()),
            width: Some(w),
            height: Some(h),
        });
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yolo_line_converts_to_pixel_box() {
        let b = parse_yolo_txt(Path::new("a.txt"), "2 0.5 0.5 0.25 0.5 0.9\n").unwrap();
        assert_eq!(b[0].class, 2);
        assert_eq!(b[0].score, Some(0.9));
        assert_eq!(b[0].to_pixels(200.0, 100.0), [75.0, 25.0, 50.0, 50.0]);
    }

    #[test]
    fn yolo_rejects_bad_lines_with_line_number() {
        for bad in ["1 0.5 0.5 0.1", "x 0.5 0.5 0.1 0.1", "1 0.5 0.5 -0.1 0.1", "1 NaN 0.5 0.1 0.1", "1 250 300 40 40"]
        {
            let text = format!("0 0.5 0.5 0.1 0.1\n{bad}\n");
            match parse_yolo_txt(Path::new("lab.txt"), &text) {
                Err(EvalError::Yolo { line, path, .. }) => {
                    assert_eq!(line, 2, "{bad}");
                    assert_eq!(path, Path::new("lab.txt"));
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn cnr_is_read_at_the_top_level_or_under_attributes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gt.json");
        let with = |anns: &str| {
            let text = format!(
                r#"{{"images": [{{"id": 1}}], "categories": [{{"id": 1, "name": "firearm"}}], "annotations": [{anns}]}}"#
            );
            std::fs::write(&path, text).unwrap();
            Dataset::from_coco_json(&path)
        };
        let ann = |id: i64, extra: &str| {
            format!(r#"{{"id": {id}, "image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4]{extra}}}"#)
        };
        let d = with(
            &[
                ann(1, r#", "attributes": {"cnr": 2.5, "difficulty": "hard", "material": "steel"}"#),
                ann(2, r#", "cnr": 7.0, "attributes": {"cnr": 1.0}"#),
                ann(3, r#", "attributes": {"occluded": false}"#),
                ann(4, ""),
            ]
            .join(","),
        )
        .unwrap();
        let cnrs: Vec<Option<f64>> = d.annotations.iter().map(|g| g.cnr).collect();
        assert_eq!(cnrs, vec![Some(2.5), Some(7.0), None, None]);
        // A CNR that is not a number is an error naming the annotation, not a silent "no CNR".
        let err = with(&ann(1, r#", "attributes": {"cnr": "low"}"#)).unwrap_err().to_string();
        assert!(err.contains("annotation #0") && err.contains("attributes.cnr"), "{err}");
        let err = with(&ann(1, r#", "attributes": {"cnr": -1.0}"#)).unwrap_err().to_string();
        assert!(err.contains("negative"), "{err}");
    }

    #[test]
    fn label_folders_cap_each_file_and_the_total_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let line = "0 0.5 0.5 0.1 0.1\n"; // 18 bytes
        std::fs::write(dir.path().join("a.txt"), line.repeat(2)).unwrap();
        std::fs::write(dir.path().join("b.txt"), line.repeat(2)).unwrap();
        let mut folder = LabelFolder::open(dir.path(), "labels").unwrap();
        assert_eq!((folder.file_cap, folder.total_cap), (MAX_LABEL_BYTES, MAX_INPUT_BYTES));
        folder.file_cap = 30;
        match folder.read(&dir.path().join("a.txt")) {
            Err(EvalError::TooLarge { path, size: 36, limit: 30 }) => assert!(path.ends_with("a.txt")),
            other => panic!("{other:?}"),
        }
        (folder.file_cap, folder.total_cap) = (100, 60);
        assert_eq!(folder.read(&dir.path().join("a.txt")).unwrap().unwrap(), line.repeat(2));
        // The second file would bring the folder to 72 bytes: refused before it is read.
        match folder.read(&dir.path().join("b.txt")) {
            Err(EvalError::TooLarge { path, size: 72, limit: 60 }) => assert_eq!(path, dir.path()),
            other => panic!("{other:?}"),
        }
        assert_eq!(folder.read(&dir.path().join("c.txt")).unwrap(), None);
        assert_eq!(folder.found, 1);
    }

    #[test]
    fn duplicate_ids_are_errors() {
        let img = |id| ImageInfo { id, file_name: None, width: None, height: None };
        let err = Dataset::new("gt.json".into(), vec![img(1), img(1)], vec![], vec![]);
        assert!(matches!(err, Err(EvalError::DuplicateId { what: "image", id: 1, .. })));
    }
}
