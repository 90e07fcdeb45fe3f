//! Axis-aligned boxes in pixel coordinates and the overlap measures merging is built on.

use serde::{Deserialize, Serialize};

/// A box as corners `(x1, y1)`–`(x2, y2)` in pixels, `x` along the scan (columns), `y` down
/// the detector (rows). A box with `x2 < x1` or `y2 < y1` has zero area.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoxXyxy {
    /// Left edge, pixels.
    pub x1: f32,
    /// Top edge, pixels.
    pub y1: f32,
    /// Right edge, pixels.
    pub x2: f32,
    /// Bottom edge, pixels.
    pub y2: f32,
}

impl BoxXyxy {
    /// From its corners, in pixels.
    pub const fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x1, y1, x2, y2 }
    }

    /// From centre, width and height (the YOLO head's convention).
    pub fn from_cxcywh(cx: f32, cy: f32, w: f32, h: f32) -> Self {
        Self::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)
    }

    /// Width in pixels; 0 when inverted.
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    /// Height in pixels; 0 when inverted.
    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    /// Area in square pixels; 0 when inverted.
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// Whether every corner is finite.
    pub fn is_finite(&self) -> bool {
        self.x1.is_finite() && self.y1.is_finite() && self.x2.is_finite() && self.y2.is_finite()
    }

    /// Intersection area, clamped at zero for disjoint boxes. A box with a NaN or infinite
    /// corner intersects nothing (`f32::max` would otherwise silently skip the NaN).
    pub fn intersection(&self, other: &Self) -> f32 {
        if !(self.is_finite() && other.is_finite()) {
            return 0.0;
        }
        let w = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let h = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        w * h
    }

    /// Intersection over union; 0 when the union is empty.
    pub fn iou(&self, other: &Self) -> f32 {
        let inter = self.intersection(other);
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }

    /// Intersection over the smaller box's area (SAHI's IOS): 1 when one box holds the other,
    /// which is what a part of an object cut by a tile edge looks like beside the whole.
    pub fn ios(&self, other: &Self) -> f32 {
        let inter = self.intersection(other);
        let smaller = self.area().min(other.area());
        if smaller > 0.0 { inter / smaller } else { 0.0 }
    }

    /// The smallest box holding both.
    pub fn union_box(&self, other: &Self) -> Self {
        Self::new(self.x1.min(other.x1), self.y1.min(other.y1), self.x2.max(other.x2), self.y2.max(other.y2))
    }

    /// Moved by `dx` along and `dy` down, in pixels.
    pub fn translate(&self, dx: f32, dy: f32) -> Self {
        Self::new(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)
    }

    /// Every coordinate multiplied: `x` by `sx`, `y` by `sy` (from one pixel grid to another).
    pub fn scale(&self, sx: f32, sy: f32) -> Self {
        Self::new(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy)
    }

    /// Clipped to `[0, width] x [0, height]`.
    pub fn clip(&self, width: f32, height: f32) -> Self {
        Self::new(
            self.x1.clamp(0.0, width),
            self.y1.clamp(0.0, height),
            self.x2.clamp(0.0, width),
            self.y2.clamp(0.0, height),
        )
    }
}

/// How two boxes are compared when deciding whether they are the same object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMetric {
    /// Intersection over union.
    #[default]
    Iou,
    /// Intersection over the smaller box (SAHI's `IOS`).
    Ios,
}

impl MatchMetric {
    /// The overlap of `a` and `b` under this metric, 0..=1.
    pub fn overlap(self, a: &BoxXyxy, b: &BoxXyxy) -> f32 {
        match self {
            Self::Iou => a.iou(b),
            Self::Ios => a.ios(b),
        }
    }
}

/// One detection: a box, its confidence and class index into the model's class list.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The box, in the pixels of the image it was found in (tile or scan).
    pub bbox: BoxXyxy,
    /// Confidence, 0..=1.
    pub score: f32,
    /// Index into the model's class list.
    pub class_id: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_known_boxes() {
        let a = BoxXyxy::new(0.0, 0.0, 32.0, 32.0);
        let b = BoxXyxy::new(16.0, 0.0, 48.0, 32.0);
        // 16x32 shared, 2*1024 - 512 union.
        assert!((a.iou(&b) - 512.0 / 1536.0).abs() < 1e-6);
        assert!((a.ios(&b) - 0.5).abs() < 1e-6);
        assert_eq!(a.iou(&a), 1.0);
    }

    #[test]
    fn disjoint_and_degenerate_boxes_do_not_overlap() {
        let a = BoxXyxy::new(0.0, 0.0, 10.0, 10.0);
        let far = BoxXyxy::new(20.0, 20.0, 30.0, 30.0);
        assert_eq!(a.intersection(&far), 0.0, "intersection must be clamped at zero");
        assert_eq!(a.iou(&far), 0.0);
        let empty = BoxXyxy::new(5.0, 5.0, 5.0, 5.0);
        assert_eq!(empty.iou(&empty), 0.0, "empty union guarded");
        assert_eq!(a.ios(&empty), 0.0);
        let inverted = BoxXyxy::new(10.0, 10.0, 0.0, 0.0);
        assert_eq!(inverted.area(), 0.0);
    }

    #[test]
    fn non_finite_boxes_overlap_nothing() {
        let a = BoxXyxy::new(0.0, 0.0, 10.0, 10.0);
        for bad in [BoxXyxy::new(f32::NAN, 0.0, 10.0, 10.0), BoxXyxy::new(1.0, 0.0, f32::INFINITY, 10.0)] {
            assert_eq!(a.iou(&bad), 0.0);
            assert_eq!(bad.iou(&a), 0.0);
            assert_eq!(a.ios(&bad), 0.0);
        }
    }

    #[test]
    fn ios_is_one_for_a_contained_part() {
        let whole = BoxXyxy::new(0.0, 0.0, 100.0, 40.0);
        let part = BoxXyxy::new(60.0, 0.0, 100.0, 40.0);
        assert_eq!(whole.ios(&part), 1.0);
        assert!(whole.iou(&part) < 0.5);
    }

    #[test]
    fn cxcywh_and_transforms() {
        let b = BoxXyxy::from_cxcywh(8.0, 24.0, 32.0, 32.0);
        assert_eq!(b, BoxXyxy::new(-8.0, 8.0, 24.0, 40.0));
        assert_eq!(b.clip(16.0, 16.0), BoxXyxy::new(0.0, 8.0, 16.0, 16.0));
        assert_eq!(b.translate(8.0, -8.0), BoxXyxy::new(0.0, 0.0, 32.0, 32.0));
        assert_eq!(b.scale(2.0, 0.5), BoxXyxy::new(-16.0, 4.0, 48.0, 20.0));
    }
}
