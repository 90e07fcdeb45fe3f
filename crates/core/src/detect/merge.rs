//! Cross-tile merging: NMS, NMM and greedy NMM with SAHI's semantics, stitching of boxes
//! that an interior tile edge cut in two, and joining of one class's side-by-side pieces.
//!
//! Convention: two boxes *match* when `overlap > threshold` (torchvision's NMS rule; SAHI
//! uses `>=`, which differs only at exact equality). Scores sort descending with NaN last
//! and ties broken by input order, so results never depend on the sort's stability.

use super::geometry::{BoxXyxy, Detection, MatchMetric};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// What to do with a group of matching boxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeMethod {
    /// Keep the best box of each group, drop the rest.
    Nms,
    /// Non-maximum merging: matches of a box already merged join its keeper too (SAHI `NMM`).
    Nmm,
    /// Greedy NMM: each keeper takes its own still-unclaimed matches (SAHI `GREEDYNMM`).
    #[default]
    GreedyNmm,
}

/// Which box a merged group reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergedBox {
    /// The smallest box holding every member (SAHI's choice).
    #[default]
    Union,
    /// The highest-scoring member's box.
    HighestScore,
    /// Coordinates averaged with the scores as weights.
    ScoreWeighted,
}

/// Merge parameters (`[merge]` in the pipeline config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MergeConfig {
    /// What to do with a group of matching boxes.
    pub method: MergeMethod,
    /// How overlap is measured.
    pub metric: MatchMetric,
    /// Overlap above which two boxes are the same object.
    pub threshold: f32,
    /// Merge boxes of different classes too (the merged class is the best member's).
    pub class_agnostic: bool,
    /// Which box a merged group reports.
    pub merged_box: MergedBox,
    /// Join boxes cut by an interior tile edge with their continuation in the neighbour tile.
    pub stitch_cut_boxes: bool,
    /// Classes (by name) whose boxes are joined, after merging, where they sit side by side
    /// along the scan ([`join_side_by_side`]): for objects a detector tends to find in pieces,
    /// such as a hidden compartment's length. Empty: no joining.
    pub join_side_by_side: Vec<String>,
}

impl Default for MergeConfig {
    fn default() -> Self {
        // SAHI's defaults for sliced prediction.
        Self {
            method: MergeMethod::GreedyNmm,
            metric: MatchMetric::Ios,
            threshold: 0.5,
            class_agnostic: false,
            merged_box: MergedBox::Union,
            stitch_cut_boxes: true,
            join_side_by_side: Vec::new(),
        }
    }
}

/// Descending by score, NaN last, ties by index.
fn by_score_desc(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        let (sa, sb) = (scores[a], scores[b]);
        match (sa.is_nan(), sb.is_nan()) {
            (true, true) => a.cmp(&b),
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => sb.total_cmp(&sa).then(a.cmp(&b)),
        }
    });
    order
}

/// Uniform-grid index over boxes, so finding the boxes that can overlap a given one costs
/// the few cells it covers instead of a scan of all: merging 10,000 boxes from a scan is
/// then near-linear rather than quadratic. Only boxes that intersect can match under any
/// overlap measure, so the index never changes a result.
struct SpatialGrid {
    x0: f32,
    y0: f32,
    inv_cell: f32,
    cols: usize,
    rows: usize,
    cells: Vec<Vec<u32>>,
    /// Boxes spanning too many cells, or with non-finite corners: checked against everything.
    everywhere: Vec<u32>,
    /// Per-query stamp to report each box once.
    seen: Vec<u32>,
    stamp: u32,
}

impl SpatialGrid {
    const MAX_CELLS_PER_BOX: usize = 64;

    fn new(boxes: &[BoxXyxy]) -> Self {
        let finite: Vec<&BoxXyxy> = boxes.iter().filter(|b| b.is_finite()).collect();
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        let mut side_sum = 0.0f64;
        for b in &finite {
            (x0, y0, x1, y1) = (x0.min(b.x1), y0.min(b.y1), x1.max(b.x2), y1.max(b.y2));
            side_sum += (b.width().max(b.height())) as f64;
        }
        if finite.is_empty() {
            (x0, y0, x1, y1) = (0.0, 0.0, 1.0, 1.0);
        }
        // Cells about twice the mean box side, capped so the grid has at most ~4n cells.
        let mean_side = (side_sum / finite.len().max(1) as f64) as f32;
        let (w, h) = ((x1 - x0).max(1.0), (y1 - y0).max(1.0));
        let min_cell = ((w * h) / (4.0 * boxes.len().max(1) as f32)).sqrt();
        let cell = (2.0 * mean_side).max(min_cell).max(1.0);
        let cols = ((w / cell).ceil() as usize).clamp(1, 4096);
        let rows = ((h / cell).ceil() as usize).clamp(1, 4096);
        Self {
            x0,
            y0,
            inv_cell: 1.0 / cell,
            cols,
            rows,
            cells: vec![Vec::new(); cols * rows],
            everywhere: Vec::new(),
            seen: vec![0; boxes.len()],
            stamp: 0,
        }
    }

    /// Cell range `(c0, c1, r0, r1)` inclusive covered by `b`, or `None` when too wide or not finite.
    fn span(&self, b: &BoxXyxy) -> Option<(usize, usize, usize, usize)> {
        if !b.is_finite() {
            return None;
        }
        let cell_of = |v: f32, o: f32, n: usize| (((v - o) * self.inv_cell).floor().max(0.0) as usize).min(n - 1);
        let (c0, c1) = (cell_of(b.x1, self.x0, self.cols), cell_of(b.x2, self.x0, self.cols));
        let (r0, r1) = (cell_of(b.y1, self.y0, self.rows), cell_of(b.y2, self.y0, self.rows));
        ((c1 + 1 - c0) * (r1 + 1 - r0) <= Self::MAX_CELLS_PER_BOX).then_some((c0, c1, r0, r1))
    }

    fn insert(&mut self, i: usize, b: &BoxXyxy) {
        match self.span(b) {
            Some((c0, c1, r0, r1)) => {
                for r in r0..=r1 {
                    for c in c0..=c1 {
                        self.cells[r * self.cols + c].push(i as u32);
                    }
                }
            }
            None => self.everywhere.push(i as u32),
        }
    }

    /// Every inserted box that may intersect `b`, each once, in no particular order.
    fn candidates(&mut self, b: &BoxXyxy, out: &mut Vec<usize>) {
        out.clear();
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.seen.fill(0);
            self.stamp = 1;
        }
        let stamp = self.stamp;
        let mut take = |i: u32, seen: &mut [u32]| {
            if seen[i as usize] != stamp {
                seen[i as usize] = stamp;
                out.push(i as usize);
            }
        };
        for &i in &self.everywhere {
            take(i, &mut self.seen);
        }
        match self.span(b) {
            Some((c0, c1, r0, r1)) => {
                for r in r0..=r1 {
                    for c in c0..=c1 {
                        for &i in &self.cells[r * self.cols + c] {
                            take(i, &mut self.seen);
                        }
                    }
                }
            }
            None => {
                for cell in &self.cells {
                    for &i in cell {
                        take(i, &mut self.seen);
                    }
                }
            }
        }
    }
}

/// Greedy non-maximum suppression; returns kept indices, best first.
///
/// `same_group(i, j)` says whether two boxes compete (same class, or always when class
/// agnostic); `overlap` is any overlap measure (IoU, IoS).
pub fn nms_indices(
    boxes: &[BoxXyxy],
    scores: &[f32],
    threshold: f32,
    same_group: impl Fn(usize, usize) -> bool,
    overlap: impl Fn(&BoxXyxy, &BoxXyxy) -> f32,
) -> Vec<usize> {
    debug_assert_eq!(boxes.len(), scores.len());
    let mut keep: Vec<usize> = Vec::new();
    let mut kept = SpatialGrid::new(boxes);
    let mut near = Vec::new();
    for i in by_score_desc(scores) {
        if scores[i].is_nan() {
            // Sorted last, so every later one is NaN too: none can be trusted.
            break;
        }
        kept.candidates(&boxes[i], &mut near);
        if near.iter().all(|&k| !same_group(i, k) || overlap(&boxes[k], &boxes[i]) <= threshold) {
            keep.push(i);
            kept.insert(i, &boxes[i]);
        }
    }
    keep
}

/// A grid holding every box of `order`, and each index's rank in it (`usize::MAX` if absent).
fn index_all(boxes: &[BoxXyxy], order: &[usize]) -> (SpatialGrid, Vec<usize>) {
    let mut grid = SpatialGrid::new(boxes);
    let mut rank = vec![usize::MAX; boxes.len()];
    for (r, &i) in order.iter().enumerate() {
        grid.insert(i, &boxes[i]);
        rank[i] = r;
    }
    (grid, rank)
}

/// Groups of indices that merge into one detection; each group's first index is its keeper
/// (the best-scoring member). Detections with a NaN score are left out.
pub fn merge_groups(dets: &[Detection], cfg: &MergeConfig) -> Vec<Vec<usize>> {
    let boxes: Vec<BoxXyxy> = dets.iter().map(|d| d.bbox).collect();
    let scores: Vec<f32> = dets.iter().map(|d| d.score).collect();
    let same = |i: usize, j: usize| cfg.class_agnostic || dets[i].class_id == dets[j].class_id;
    let matches = |i: usize, j: usize| same(i, j) && cfg.metric.overlap(&boxes[i], &boxes[j]) > cfg.threshold;
    let order: Vec<usize> = by_score_desc(&scores).into_iter().filter(|&i| !scores[i].is_nan()).collect();
    match cfg.method {
        MergeMethod::Nms => {
            let overlap = |a: &BoxXyxy, b: &BoxXyxy| cfg.metric.overlap(a, b);
            nms_indices(&boxes, &scores, cfg.threshold, same, overlap).into_iter().map(|i| vec![i]).collect()
        }
        MergeMethod::GreedyNmm => {
            let (mut grid, rank) = index_all(&boxes, &order);
            let mut near = Vec::new();
            let mut claimed = vec![false; dets.len()];
            let mut groups = Vec::new();
            for &i in &order {
                if claimed[i] {
                    continue;
                }
                claimed[i] = true;
                // Unclaimed boxes all rank below `i`: better ones are keepers or claimed.
                let mut group = vec![i];
                grid.candidates(&boxes[i], &mut near);
                near.sort_unstable_by_key(|&j| rank[j]);
                for &j in &near {
                    if !claimed[j] && matches(i, j) {
                        claimed[j] = true;
                        group.push(j);
                    }
                }
                groups.push(group);
            }
            groups
        }
        MergeMethod::Nmm => {
            // SAHI's `nmm`: a box already merged into a keeper hands its own matches to
            // that keeper, so chains of overlapping boxes end up as one object.
            let mut keeper_of: Vec<Option<usize>> = vec![None; dets.len()];
            let mut members: Vec<Option<Vec<usize>>> = vec![None; dets.len()];
            let (mut grid, rank) = index_all(&boxes, &order);
            let mut near = Vec::new();
            for &i in &order {
                grid.candidates(&boxes[i], &mut near);
                near.sort_unstable_by_key(|&j| rank[j]);
                let matched: Vec<usize> = near.iter().copied().filter(|&j| j != i && matches(i, j)).collect();
                let keeper = match keeper_of[i] {
                    None => {
                        members[i] = Some(Vec::new());
                        i
                    }
                    Some(k) => k,
                };
                for j in matched {
                    if keeper_of[j].is_none() && members[j].is_none() {
                        keeper_of[j] = Some(keeper);
                        members[keeper].get_or_insert_with(Vec::new).push(j);
                    }
                }
            }
            order.iter().filter_map(|&i| members[i].take().map(|m| std::iter::once(i).chain(m).collect())).collect()
        }
    }
}

/// One detection for a group: the keeper's class, the best score, the configured box.
pub fn merge_group(dets: &[Detection], group: &[usize], merged_box: MergedBox) -> Detection {
    let keeper = dets[group[0]];
    let bbox = match merged_box {
        MergedBox::HighestScore => keeper.bbox,
        MergedBox::Union => group.iter().fold(keeper.bbox, |acc, &i| acc.union_box(&dets[i].bbox)),
        MergedBox::ScoreWeighted => {
            let total: f32 = group.iter().map(|&i| dets[i].score.max(0.0)).sum();
            if total > 0.0 {
                let mut b = BoxXyxy::new(0.0, 0.0, 0.0, 0.0);
                for &i in group {
                    let (w, d) = (dets[i].score.max(0.0) / total, dets[i].bbox);
                    b = BoxXyxy::new(b.x1 + w * d.x1, b.y1 + w * d.y1, b.x2 + w * d.x2, b.y2 + w * d.y2);
                }
                b
            } else {
                keeper.bbox
            }
        }
    };
    Detection { bbox, score: keeper.score, class_id: keeper.class_id }
}

/// Merges detections gathered from overlapping tiles (already in scan coordinates).
pub fn merge(dets: &[Detection], cfg: &MergeConfig) -> Vec<Detection> {
    merge_groups(dets, cfg).iter().map(|g| merge_group(dets, g, cfg.merged_box)).collect()
}

/// Sides of a detection that lie on an interior tile edge, where the object may go on
/// into the neighbouring tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CutEdges {
    /// The box's left side lies on the tile's interior left edge.
    pub left: bool,
    /// The box's top side lies on the tile's interior top edge.
    pub top: bool,
    /// The box's right side lies on the tile's interior right edge.
    pub right: bool,
    /// The box's bottom side lies on the tile's interior bottom edge.
    pub bottom: bool,
}

impl CutEdges {
    /// `bbox` in tile pixels; `interior` marks which tile sides (left, top, right, bottom)
    /// border another tile rather than the scan's edge; `margin` is how close counts as on it.
    pub fn of(bbox: &BoxXyxy, tile_width: f32, tile_height: f32, interior: [bool; 4], margin: f32) -> Self {
        Self {
            left: interior[0] && bbox.x1 <= margin,
            top: interior[1] && bbox.y1 <= margin,
            right: interior[2] && bbox.x2 >= tile_width - margin,
            bottom: interior[3] && bbox.y2 >= tile_height - margin,
        }
    }

    /// Whether any side is cut.
    pub fn any(&self) -> bool {
        self.left || self.top || self.right || self.bottom
    }
}

/// Overlap of two intervals over the shorter one.
fn span_overlap(a0: f32, a1: f32, b0: f32, b1: f32) -> f32 {
    let inter = (a1.min(b1) - a0.max(b0)).max(0.0);
    let shorter = (a1 - a0).min(b1 - b0);
    if shorter > 0.0 { inter / shorter } else { 0.0 }
}

/// Disjoint sets of detection indices, for pieces that join transitively. A union keeps
/// the lower index as the root, so a set's root is its first member in input order.
struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self { parent: (0..n).collect() }
    }

    /// The set's root, halving the path on the way.
    fn root(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, i: usize, j: usize) {
        let (ri, rj) = (self.root(i), self.root(j));
        self.parent[ri.max(rj)] = ri.min(rj);
    }

    /// One detection per set, in the order of each set's first member: the union of its
    /// boxes, with the best member's score and class (the earlier one on a tie).
    fn join(mut self, dets: &[Detection]) -> Vec<Detection> {
        let mut out: Vec<Option<Detection>> = vec![None; dets.len()];
        for (i, &d) in dets.iter().enumerate() {
            let r = self.root(i);
            out[r] = Some(match out[r] {
                None => d,
                Some(acc) => {
                    let best = if d.score > acc.score { d } else { acc };
                    Detection { bbox: acc.bbox.union_box(&d.bbox), score: best.score, class_id: best.class_id }
                }
            });
        }
        out.into_iter().flatten().collect()
    }
}

/// Joins pieces of one object that tile edges cut apart: a box cut on its right side and
/// one cut on its left side that meet (their x ranges touch or overlap) and share most of
/// their height (`threshold` of the shorter span) become one box; likewise top/bottom.
/// Pieces join transitively, so an object spanning several tiles gives one box. The
/// joined detection keeps the best score and the best piece's class.
pub fn stitch_cut_boxes(dets: &[Detection], cuts: &[CutEdges], threshold: f32, class_agnostic: bool) -> Vec<Detection> {
    debug_assert_eq!(dets.len(), cuts.len());
    let n = dets.len();
    let mut sets = UnionFind::new(n);
    let cut_idx: Vec<usize> = (0..n).filter(|&i| cuts[i].any()).collect();
    for (p, &i) in cut_idx.iter().enumerate() {
        for &j in &cut_idx[p + 1..] {
            let (a, b) = (&dets[i], &dets[j]);
            if !class_agnostic && a.class_id != b.class_id {
                continue;
            }
            let (ba, bb) = (a.bbox, b.bbox);
            let horizontal = |l: &BoxXyxy, r: &BoxXyxy, lc: &CutEdges, rc: &CutEdges| {
                lc.right && rc.left && r.x1 <= l.x2 && r.x1 >= l.x1 && span_overlap(l.y1, l.y2, r.y1, r.y2) > threshold
            };
            let vertical = |t: &BoxXyxy, u: &BoxXyxy, tc: &CutEdges, uc: &CutEdges| {
                tc.bottom && uc.top && u.y1 <= t.y2 && u.y1 >= t.y1 && span_overlap(t.x1, t.x2, u.x1, u.x2) > threshold
            };
            let joined = horizontal(&ba, &bb, &cuts[i], &cuts[j])
                || horizontal(&bb, &ba, &cuts[j], &cuts[i])
                || vertical(&ba, &bb, &cuts[i], &cuts[j])
                || vertical(&bb, &ba, &cuts[j], &cuts[i]);
            if joined {
                sets.union(i, j);
            }
        }
    }
    sets.join(dets)
}

/// Share of the shorter box's height two side-by-side boxes must share to be joined.
pub const JOIN_MIN_SHARED_HEIGHT: f32 = 0.5;

/// Joins boxes of the classes in `classes` that sit side by side along the scan: same class,
/// x ranges touching or overlapping (no gap), and at least [`JOIN_MIN_SHARED_HEIGHT`] of the
/// shorter one's height shared. Pieces join transitively into the union of their boxes with
/// the best piece's score; other classes pass through unchanged. Unlike stitching this needs
/// no tile edge: a detector trained on tiles may box one long object as several adjacent
/// parts inside a single tile (`eval/suites/join_pieces.py` measured the gain on val).
pub fn join_side_by_side(dets: &[Detection], classes: &[u32]) -> Vec<Detection> {
    if classes.is_empty() {
        return dets.to_vec();
    }
    let n = dets.len();
    let mut sets = UnionFind::new(n);
    for &class in classes {
        // Non-finite corners never join (the decoder drops them; this keeps the sweep sound).
        let mut idx: Vec<usize> = (0..n).filter(|&i| dets[i].class_id == class && dets[i].bbox.is_finite()).collect();
        // Sweep along x: once a box starts right of `a`'s end, no later one can touch `a`.
        idx.sort_by(|&i, &j| dets[i].bbox.x1.total_cmp(&dets[j].bbox.x1).then(i.cmp(&j)));
        for (p, &i) in idx.iter().enumerate() {
            let a = dets[i].bbox;
            for &j in &idx[p + 1..] {
                let b = dets[j].bbox;
                if b.x1 > a.x2 {
                    break;
                }
                let gap = a.x1.max(b.x1) - a.x2.min(b.x2);
                let shared = a.y2.min(b.y2) - a.y1.max(b.y1);
                if gap <= 0.0 && shared >= JOIN_MIN_SHARED_HEIGHT * a.height().min(b.height()) {
                    sets.union(i, j);
                }
            }
        }
    }
    sets.join(dets)
}

/// Stitching (when configured) then merging: the whole cross-tile step.
pub fn merge_tiles(dets: &[Detection], cuts: &[CutEdges], cfg: &MergeConfig) -> Vec<Detection> {
    if cfg.stitch_cut_boxes && cuts.len() == dets.len() {
        let stitched = stitch_cut_boxes(dets, cuts, cfg.threshold, cfg.class_agnostic);
        merge(&stitched, cfg)
    } else {
        merge(dets, cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn det(x1: f32, y1: f32, x2: f32, y2: f32, score: f32, class_id: u32) -> Detection {
        Detection { bbox: BoxXyxy::new(x1, y1, x2, y2), score, class_id }
    }

    /// Textbook NMS: repeatedly take the best remaining box, drop all it overlaps.
    fn naive_nms(dets: &[Detection], thr: f32, agnostic: bool) -> Vec<usize> {
        let mut remaining: Vec<usize> = (0..dets.len()).filter(|&i| !dets[i].score.is_nan()).collect();
        let mut keep = Vec::new();
        while !remaining.is_empty() {
            let mut best = remaining[0];
            for &i in &remaining {
                if dets[i].score > dets[best].score || (dets[i].score == dets[best].score && i < best) {
                    best = i;
                }
            }
            keep.push(best);
            remaining.retain(|&i| {
                i != best
                    && !((agnostic || dets[i].class_id == dets[best].class_id)
                        && dets[i].bbox.iou(&dets[best].bbox) > thr)
            });
        }
        keep
    }

    /// SAHI's `nmm` transcribed without any index: the reference for the grid version.
    fn naive_nmm(dets: &[Detection], thr: f32) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..dets.len()).collect();
        order.sort_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score).then(a.cmp(&b)));
        let mut keep_to_merge: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut merge_to_keep: std::collections::HashMap<usize, usize> = Default::default();
        for &i in &order {
            let matched: Vec<usize> = order
                .iter()
                .copied()
                .filter(|&j| j != i && dets[i].class_id == dets[j].class_id && dets[i].bbox.ios(&dets[j].bbox) > thr)
                .collect();
            let is_keeper = |k: usize, l: &Vec<(usize, Vec<usize>)>| l.iter().any(|(x, _)| *x == k);
            let keeper = match merge_to_keep.get(&i) {
                None => {
                    keep_to_merge.push((i, Vec::new()));
                    i
                }
                Some(&k) => k,
            };
            for j in matched {
                if !merge_to_keep.contains_key(&j) && !is_keeper(j, &keep_to_merge) {
                    merge_to_keep.insert(j, keeper);
                    keep_to_merge.iter_mut().find(|(x, _)| *x == keeper).unwrap().1.push(j);
                }
            }
        }
        keep_to_merge.into_iter().map(|(k, m)| std::iter::once(k).chain(m).collect()).collect()
    }

    fn arb_det() -> impl Strategy<Value = Detection> {
        (0.0f32..200.0, 0.0f32..200.0, 1.0f32..80.0, 1.0f32..80.0, 0.0f32..1.0, 0u32..3)
            .prop_map(|(x, y, w, h, s, c)| det(x, y, x + w, y + h, (s * 64.0).round() / 64.0, c))
    }

    proptest! {
        #[test]
        fn nms_matches_the_naive_reference(dets in prop::collection::vec(arb_det(), 0..60), thr in 0.1f32..0.9, agnostic: bool) {
            let cfg = MergeConfig { method: MergeMethod::Nms, metric: MatchMetric::Iou, threshold: thr, class_agnostic: agnostic, ..Default::default() };
            let got: Vec<usize> = merge_groups(&dets, &cfg).into_iter().map(|g| g[0]).collect();
            prop_assert_eq!(got, naive_nms(&dets, thr, agnostic));
        }

        #[test]
        fn greedy_nmm_partitions_and_keepers_match_nms(dets in prop::collection::vec(arb_det(), 0..60), thr in 0.1f32..0.9) {
            let cfg = MergeConfig { method: MergeMethod::GreedyNmm, metric: MatchMetric::Iou, threshold: thr, ..Default::default() };
            let groups = merge_groups(&dets, &cfg);
            let mut seen = vec![0usize; dets.len()];
            for g in &groups {
                for &i in g { seen[i] += 1; }
                // Every member matches its keeper and is not better than it.
                for &i in &g[1..] {
                    prop_assert!(dets[i].bbox.iou(&dets[g[0]].bbox) > thr);
                    prop_assert_eq!(dets[i].class_id, dets[g[0]].class_id);
                    prop_assert!(dets[i].score <= dets[g[0]].score);
                }
            }
            prop_assert!(seen.iter().all(|&s| s == 1), "every box in exactly one group");
            // Greedy NMM's keepers are exactly NMS's survivors.
            let keepers: Vec<usize> = groups.iter().map(|g| g[0]).collect();
            prop_assert_eq!(keepers, naive_nms(&dets, thr, false));
        }

        #[test]
        fn nms_with_spread_and_giant_boxes_matches_reference(
            mut dets in prop::collection::vec(arb_det(), 1..80),
            spread in 1.0f32..40.0,
            giant: bool,
        ) {
            // Spread boxes over a wide scan so the grid has many cells; maybe add one box
            // spanning everything, which the grid keeps on its always-checked list.
            for d in &mut dets {
                d.bbox = d.bbox.scale(spread, 1.0);
            }
            if giant {
                dets.push(det(-10.0, -10.0, 9000.0, 400.0, 0.5, 0));
            }
            let cfg = MergeConfig { method: MergeMethod::Nms, metric: MatchMetric::Ios, threshold: 0.3, ..Default::default() };
            let got: Vec<usize> = merge_groups(&dets, &cfg).into_iter().map(|g| g[0]).collect();
            let mut want = Vec::new();
            let mut order: Vec<usize> = (0..dets.len()).collect();
            order.sort_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score).then(a.cmp(&b)));
            for i in order {
                if want.iter().all(|&k: &usize| dets[k].class_id != dets[i].class_id || dets[k].bbox.ios(&dets[i].bbox) <= 0.3) {
                    want.push(i);
                }
            }
            prop_assert_eq!(got, want);
        }

        #[test]
        fn nmm_matches_sahi_transcription(dets in prop::collection::vec(arb_det(), 0..50), thr in 0.1f32..0.9) {
            let cfg = MergeConfig { method: MergeMethod::Nmm, metric: MatchMetric::Ios, threshold: thr, ..Default::default() };
            prop_assert_eq!(merge_groups(&dets, &cfg), naive_nmm(&dets, thr));
        }

        #[test]
        fn nmm_partitions_and_union_holds_members(dets in prop::collection::vec(arb_det(), 0..40), thr in 0.1f32..0.9) {
            let cfg = MergeConfig { method: MergeMethod::Nmm, metric: MatchMetric::Ios, threshold: thr, ..Default::default() };
            let groups = merge_groups(&dets, &cfg);
            let mut seen = vec![0usize; dets.len()];
            for g in &groups {
                for &i in g { seen[i] += 1; }
                let merged = merge_group(&dets, g, MergedBox::Union);
                for &i in g {
                    let b = dets[i].bbox;
                    prop_assert!(merged.bbox.x1 <= b.x1 && merged.bbox.y1 <= b.y1 && merged.bbox.x2 >= b.x2 && merged.bbox.y2 >= b.y2);
                    prop_assert!(dets[i].score <= merged.score);
                }
            }
            prop_assert!(seen.iter().all(|&s| s == 1));
            // No two keepers of the same class still match each other's boxes directly... unless
            // reached only through chains; but a keeper never matches another keeper.
            for a in 0..groups.len() {
                for b in a + 1..groups.len() {
                    let (ka, kb) = (groups[a][0], groups[b][0]);
                    if dets[ka].class_id == dets[kb].class_id {
                        prop_assert!(dets[ka].bbox.ios(&dets[kb].bbox) <= thr);
                    }
                }
            }
        }
    }

    #[test]
    fn nan_scores_never_survive_and_never_panic() {
        let dets = [det(0.0, 0.0, 10.0, 10.0, f32::NAN, 0), det(0.0, 0.0, 10.0, 10.0, 0.5, 0)];
        for method in [MergeMethod::Nms, MergeMethod::Nmm, MergeMethod::GreedyNmm] {
            let out = merge(&dets, &MergeConfig { method, ..Default::default() });
            assert_eq!(out, vec![dets[1]], "{method:?}");
        }
    }

    #[test]
    fn non_finite_corners_do_not_break_the_index() {
        let dets = [
            det(f32::NAN, 0.0, 10.0, 10.0, 0.9, 0),
            det(0.0, 0.0, 10.0, 10.0, 0.8, 0),
            det(1.0, 0.0, 11.0, 10.0, 0.7, 0),
            det(0.0, 0.0, f32::INFINITY, 10.0, 0.6, 0),
        ];
        for method in [MergeMethod::Nms, MergeMethod::Nmm, MergeMethod::GreedyNmm] {
            let groups = merge_groups(&dets, &MergeConfig { method, metric: MatchMetric::Iou, ..Default::default() });
            let mut all: Vec<usize> = groups.concat();
            all.sort();
            // The NaN box overlaps nothing; 1 and 2 are one object.
            assert!(groups.contains(&vec![0]), "{method:?}: {groups:?}");
            assert!(
                groups.iter().any(|g| g[0] == 1 && (method == MergeMethod::Nms || g.contains(&2))),
                "{method:?}: {groups:?}"
            );
            if method != MergeMethod::Nms {
                assert_eq!(all, vec![0, 1, 2, 3], "{method:?}");
            }
        }
    }

    #[test]
    fn empty_input_gives_empty_output() {
        assert!(merge(&[], &MergeConfig::default()).is_empty());
        assert!(stitch_cut_boxes(&[], &[], 0.5, false).is_empty());
    }

    #[test]
    fn nmm_chains_where_greedy_nmm_does_not() {
        // A (best) overlaps B, B overlaps C, A does not overlap C.
        let dets =
            [det(0.0, 0.0, 10.0, 10.0, 0.9, 0), det(6.0, 0.0, 16.0, 10.0, 0.8, 0), det(12.0, 0.0, 22.0, 10.0, 0.7, 0)];
        let base = MergeConfig { metric: MatchMetric::Iou, threshold: 0.1, ..Default::default() };
        let greedy = merge_groups(&dets, &MergeConfig { method: MergeMethod::GreedyNmm, ..base.clone() });
        assert_eq!(greedy, vec![vec![0, 1], vec![2]]);
        let nmm = merge_groups(&dets, &MergeConfig { method: MergeMethod::Nmm, ..base });
        assert_eq!(nmm, vec![vec![0, 1, 2]]);
    }

    #[test]
    fn merged_box_choices() {
        let dets = [det(0.0, 0.0, 10.0, 10.0, 0.75, 2), det(2.0, 0.0, 12.0, 10.0, 0.25, 2)];
        let g = [0, 1];
        assert_eq!(merge_group(&dets, &g, MergedBox::Union).bbox, BoxXyxy::new(0.0, 0.0, 12.0, 10.0));
        assert_eq!(merge_group(&dets, &g, MergedBox::HighestScore).bbox, dets[0].bbox);
        let w = merge_group(&dets, &g, MergedBox::ScoreWeighted);
        assert!((w.bbox.x1 - 0.5).abs() < 1e-6 && (w.bbox.x2 - 10.5).abs() < 1e-6, "{w:?}");
        assert_eq!(w.score, 0.75);
        assert_eq!(w.class_id, 2);
    }

    #[test]
    fn class_aware_keeps_different_classes_apart() {
        let dets = [det(0.0, 0.0, 10.0, 10.0, 0.9, 0), det(0.0, 0.0, 10.0, 10.0, 0.8, 1)];
        assert_eq!(merge(&dets, &MergeConfig::default()).len(), 2);
        let agnostic = merge(&dets, &MergeConfig { class_agnostic: true, ..Default::default() });
        assert_eq!(agnostic.len(), 1);
        assert_eq!(agnostic[0].class_id, 0);
    }

    #[test]
    fn an_object_cut_by_two_tile_edges_gives_one_box() {
        // Tiles 0..64, 48..112, 96..160 (overlap 16). Object at x 20..140, y 10..30.
        let tiles = [
            (0.0f32, [false, false, true, false]),
            (48.0, [true, false, true, false]),
            (96.0, [true, false, false, false]),
        ];
        let (ox1, ox2) = (20.0f32, 140.0f32);
        let mut dets = Vec::new();
        let mut cuts = Vec::new();
        for (i, (tx, interior)) in tiles.iter().enumerate() {
            let local = BoxXyxy::new((ox1 - tx).max(0.0), 10.0, (ox2 - tx).min(64.0), 30.0);
            cuts.push(CutEdges::of(&local, 64.0, 64.0, *interior, 1.0));
            dets.push(Detection { bbox: local.translate(*tx, 0.0), score: 0.6 + i as f32 * 0.1, class_id: 0 });
        }
        // Plain IoU/IoS merging leaves pieces: the middle and right pieces share only 16 px.
        let plain = MergeConfig { stitch_cut_boxes: false, ..Default::default() };
        assert!(merge_tiles(&dets, &cuts, &plain).len() > 1);
        let out = merge_tiles(&dets, &cuts, &MergeConfig::default());
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].bbox, BoxXyxy::new(20.0, 10.0, 140.0, 30.0));
        assert!((out[0].score - 0.8).abs() < 1e-6);
    }

    /// The pairwise rule of `eval/suites/join_pieces.py`, with no sweep: the reference.
    fn naive_join(dets: &[Detection], classes: &[u32]) -> Vec<Vec<usize>> {
        let n = dets.len();
        let mut group: Vec<usize> = (0..n).collect();
        let touch = |a: &BoxXyxy, b: &BoxXyxy| {
            let shared = a.y2.min(b.y2) - a.y1.max(b.y1);
            let gap = a.x1.max(b.x1) - a.x2.min(b.x2);
            gap <= 0.0 && shared >= 0.5 * a.height().min(b.height())
        };
        // Relabel until stable: transitive closure without union-find.
        loop {
            let mut changed = false;
            for i in 0..n {
                for j in 0..n {
                    let same = dets[i].class_id == dets[j].class_id && classes.contains(&dets[i].class_id);
                    if same && touch(&dets[i].bbox, &dets[j].bbox) && group[j] > group[i] {
                        group[j] = group[i];
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for g in 0..n {
            let members: Vec<usize> = (0..n).filter(|&i| group[i] == g).collect();
            if !members.is_empty() {
                groups.push(members);
            }
        }
        groups
    }

    proptest! {
        #[test]
        fn join_matches_the_pairwise_reference(dets in prop::collection::vec(arb_det(), 0..40), joined in 0u32..3) {
            let classes = [joined];
            let out = join_side_by_side(&dets, &classes);
            let groups = naive_join(&dets, &classes);
            prop_assert_eq!(out.len(), groups.len());
            for g in &groups {
                let union = g.iter().skip(1).fold(dets[g[0]].bbox, |u, &i| u.union_box(&dets[i].bbox));
                let best = g.iter().map(|&i| dets[i].score).fold(f32::NEG_INFINITY, f32::max);
                prop_assert!(out.iter().any(|d| d.bbox == union && d.score == best && d.class_id == dets[g[0]].class_id),
                    "group {:?} missing from {:?}", g, out);
            }
        }
    }

    #[test]
    fn side_by_side_pieces_of_the_listed_class_join() {
        // Three pieces of a compartment along the scan (touching, overlapping, touching) and a
        // box of the same class below them; a second class side by side stays apart.
        let dets = [
            det(0.0, 100.0, 50.0, 140.0, 0.4, 6),
            det(50.0, 105.0, 90.0, 140.0, 0.9, 6),
            det(85.0, 100.0, 130.0, 138.0, 0.3, 6),
            det(0.0, 150.0, 130.0, 190.0, 0.5, 6),
            det(200.0, 0.0, 240.0, 20.0, 0.8, 2),
            det(240.0, 0.0, 280.0, 20.0, 0.7, 2),
        ];
        let out = join_side_by_side(&dets, &[6]);
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(out[0], Detection { bbox: BoxXyxy::new(0.0, 100.0, 130.0, 140.0), score: 0.9, class_id: 6 });
        assert_eq!(&out[1..], &[dets[3], dets[4], dets[5]]);
        // A gap of one pixel, or less than half the shorter height shared: not joined.
        let apart = [det(0.0, 0.0, 50.0, 40.0, 0.5, 6), det(51.0, 0.0, 90.0, 40.0, 0.5, 6)];
        assert_eq!(join_side_by_side(&apart, &[6]).len(), 2);
        let offset = [det(0.0, 0.0, 50.0, 40.0, 0.5, 6), det(50.0, 21.0, 90.0, 61.0, 0.5, 6)];
        assert_eq!(join_side_by_side(&offset, &[6]).len(), 2);
        // No classes listed: nothing changes.
        assert_eq!(join_side_by_side(&dets, &[]), dets.to_vec());
    }

    #[test]
    fn join_survives_non_finite_boxes() {
        let dets = [
            det(f32::NAN, 0.0, 10.0, 10.0, 0.5, 0),
            det(0.0, 0.0, f32::INFINITY, 10.0, 0.5, 0),
            det(5.0, 0.0, 9.0, 10.0, 0.5, 0),
            det(9.0, 0.0, 12.0, 10.0, 0.7, 0),
        ];
        let out = join_side_by_side(&dets, &[0]);
        // The two finite pieces join; the others pass through untouched.
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(out[0].bbox.x1.is_nan() && out[1] == dets[1]);
        assert_eq!(out[2], Detection { bbox: BoxXyxy::new(5.0, 0.0, 12.0, 10.0), score: 0.7, class_id: 0 });
    }

    #[test]
    fn union_find_joins_transitively_in_first_member_order() {
        let dets = [
            det(20.0, 0.0, 30.0, 10.0, 0.2, 1),
            det(0.0, 0.0, 5.0, 5.0, 0.5, 0),
            det(0.0, 0.0, 10.0, 10.0, 0.9, 2),
            det(10.0, 0.0, 20.0, 10.0, 0.9, 3),
        ];
        let mut sets = UnionFind::new(dets.len());
        sets.union(3, 2);
        sets.union(0, 3);
        assert_eq!((sets.root(2), sets.root(3), sets.root(1)), (0, 0, 1));
        // 0, 2 and 3 are one set led by 0; the tie at 0.9 keeps the earlier member's class.
        let joined = sets.join(&dets);
        assert_eq!(joined, vec![det(0.0, 0.0, 30.0, 10.0, 0.9, 2), dets[1]]);
    }

    #[test]
    fn pieces_at_different_heights_are_not_stitched() {
        let cuts = [CutEdges { right: true, ..Default::default() }, CutEdges { left: true, ..Default::default() }];
        let dets = [det(10.0, 0.0, 64.0, 20.0, 0.9, 0), det(48.0, 40.0, 90.0, 60.0, 0.9, 0)];
        assert_eq!(stitch_cut_boxes(&dets, &cuts, 0.5, false).len(), 2);
    }
}
