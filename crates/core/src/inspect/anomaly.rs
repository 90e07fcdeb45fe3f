//! Anomaly maps across tiles: stitched onto the scan (overlaps averaged), thresholded and
//! cut into connected regions.

use super::findings::RegionStats;
use crate::detect::BoxXyxy;
use crate::preprocess::tiles::TileRect;
use ndarray::Array2;

/// Running sum and count of per-tile maps over the scan.
#[derive(Debug, Clone)]
pub struct AnomalyCanvas {
    sum: Array2<f32>,
    count: Array2<u16>,
}

impl AnomalyCanvas {
    /// An empty canvas over a scan of `rows` x `columns` pixels.
    pub fn new(rows: usize, columns: usize) -> Self {
        Self { sum: Array2::zeros((rows, columns)), count: Array2::zeros((rows, columns)) }
    }

    /// Adds one tile's map. The map covers the model input (`tile_w` x `tile_h`), of which
    /// `rect` is the part inside the scan; a map at another resolution is sampled nearest.
    pub fn add(&mut self, rect: TileRect, tile_w: usize, tile_h: usize, map: &Array2<f32>) {
        let (mh, mw) = map.dim();
        if mh == 0 || mw == 0 || tile_w == 0 || tile_h == 0 {
            return;
        }
        let (rows, cols) = self.sum.dim();
        for ty in 0..rect.height.min(rows.saturating_sub(rect.y)) {
            let my = (ty * mh / tile_h).min(mh - 1);
            for tx in 0..rect.width.min(cols.saturating_sub(rect.x)) {
                let mx = (tx * mw / tile_w).min(mw - 1);
                let (y, x) = (rect.y + ty, rect.x + tx);
                self.sum[[y, x]] += map[[my, mx]];
                self.count[[y, x]] = self.count[[y, x]].saturating_add(1);
            }
        }
    }

    /// Mean score per pixel; 0 where no tile ran (skipped air).
    pub fn average(&self) -> Array2<f32> {
        let mut out = self.sum.clone();
        out.zip_mut_with(&self.count, |s, &n| *s = if n > 0 { *s / n as f32 } else { 0.0 });
        out
    }
}

/// Connected regions of `map > threshold` with at least `min_px` pixels: box (pixel edges,
/// so a one-pixel region is 1 x 1), area, peak and mean score.
pub fn regions(map: &Array2<f32>, threshold: f32, min_px: usize, eight_connected: bool) -> Vec<(BoxXyxy, RegionStats)> {
    let (rows, cols) = map.dim();
    let mut seen = Array2::<bool>::from_elem((rows, cols), false);
    let mut out = Vec::new();
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for y in 0..rows {
        for x in 0..cols {
            let above = map[[y, x]] > threshold; // false for NaN
            if seen[[y, x]] || !above {
                continue;
            }
            seen[[y, x]] = true;
            stack.push((y, x));
            let (mut x0, mut y0, mut x1, mut y1) = (x, y, x, y);
            let (mut area, mut peak, mut sum) = (0usize, f32::MIN, 0.0f64);
            while let Some((cy, cx)) = stack.pop() {
                let v = map[[cy, cx]];
                area += 1;
                peak = peak.max(v);
                sum += v as f64;
                (x0, y0, x1, y1) = (x0.min(cx), y0.min(cy), x1.max(cx), y1.max(cy));
                for (dy, dx) in [(-1i64, 0i64), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)]
                    .into_iter()
                    .take(if eight_connected { 8 } else { 4 })
                {
                    let (ny, nx) = (cy as i64 + dy, cx as i64 + dx);
                    if ny < 0 || nx < 0 || ny >= rows as i64 || nx >= cols as i64 {
                        continue;
                    }
                    let (ny, nx) = (ny as usize, nx as usize);
                    if !seen[[ny, nx]] && map[[ny, nx]] > threshold {
                        seen[[ny, nx]] = true;
                        stack.push((ny, nx));
                    }
                }
            }
            if area >= min_px {
                let bbox = BoxXyxy::new(x0 as f32, y0 as f32, (x1 + 1) as f32, (y1 + 1) as f32);
                out.push((bbox, RegionStats { area_px: area, peak, mean: (sum / area as f64) as f32 }));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_are_averaged_and_gaps_are_zero() {
        let mut c = AnomalyCanvas::new(4, 6);
        let ones = Array2::from_elem((4, 4), 1.0f32);
        let threes = Array2::from_elem((4, 4), 3.0f32);
        c.add(TileRect { x: 0, y: 0, width: 4, height: 4 }, 4, 4, &ones);
        c.add(TileRect { x: 2, y: 0, width: 4, height: 4 }, 4, 4, &threes);
        let avg = c.average();
        assert_eq!(avg[[0, 0]], 1.0);
        assert_eq!(avg[[0, 2]], 2.0, "overlap column averages 1 and 3");
        assert_eq!(avg[[3, 5]], 3.0);
        let mut gap = AnomalyCanvas::new(2, 8);
        gap.add(TileRect { x: 0, y: 0, width: 2, height: 2 }, 2, 2, &Array2::from_elem((2, 2), 5.0));
        assert_eq!(gap.average()[[0, 7]], 0.0);
    }

    #[test]
    fn low_resolution_maps_are_sampled_nearest() {
        let mut c = AnomalyCanvas::new(4, 4);
        let map = Array2::from_shape_vec((2, 2), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        c.add(TileRect { x: 0, y: 0, width: 4, height: 4 }, 4, 4, &map);
        let a = c.average();
        assert_eq!((a[[0, 0]], a[[1, 1]], a[[0, 3]], a[[3, 0]], a[[3, 3]]), (1.0, 1.0, 2.0, 3.0, 4.0));
    }

    #[test]
    fn regions_with_area_peak_and_mean() {
        let mut m = Array2::<f32>::zeros((6, 8));
        // An L of 4 pixels and a diagonal pair.
        for (y, x, v) in [(1, 1, 0.6), (2, 1, 0.8), (3, 1, 0.7), (3, 2, 0.9), (5, 5, 0.9), (4, 6, 0.9)] {
            m[[y, x]] = v;
        }
        let r = regions(&m, 0.5, 1, false);
        assert_eq!(r.len(), 3, "4-connectivity splits the diagonal pair");
        let (b, s) = r[0];
        assert_eq!(b, BoxXyxy::new(1.0, 1.0, 3.0, 4.0));
        assert_eq!(s.area_px, 4);
        assert_eq!(s.peak, 0.9);
        assert!((s.mean - 0.75).abs() < 1e-6);
        assert_eq!(regions(&m, 0.5, 1, true).len(), 2);
        assert_eq!(regions(&m, 0.5, 3, true).len(), 1, "min area drops the pair");
        assert!(regions(&m, 0.95, 1, true).is_empty());
        let mut nan = Array2::<f32>::zeros((2, 2));
        nan[[0, 0]] = f32::NAN;
        assert!(regions(&nan, 0.5, 1, true).is_empty(), "NaN is never above threshold");
    }
}
