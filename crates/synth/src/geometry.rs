//! Scene geometry of a side-view radiograph: 3-D shapes, their cross-sections in the plane of
//! one scan line, and the fan-beam rays of the detector column.
//!
//! Coordinates in metres: `x` along the vehicle (one image column per scan line), `y` across
//! it (along the beam, source at negative `y`), `z` up from the ground. Each scan line is a
//! vertical fan from a point source to a straight detector column, so within one column every
//! object reduces to a 2-D section in `(y, z)` and a ray's path through it is a chord.

use serde::{Deserialize, Serialize};

/// Fan-beam geometry of the scanner, plus the pixel grid of the image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanBeam {
    /// Source distance from the vehicle's centre plane (`y = 0`), m.
    pub source_distance_m: f64,
    /// Height of the source focal spot above the ground, m.
    pub source_height_m: f64,
    /// Pixel pitch referred to the centre plane, m (both axes).
    pub pitch_m: f64,
}

impl Default for FanBeam {
    fn default() -> Self {
        // A portal scanner: source 5.5 m from the lane centre, 1.9 m up (about the middle of a
        // container on a trailer), so rays to the top of a high cube slant by about 20 degrees.
        Self { source_distance_m: 5.5, source_height_m: 1.9, pitch_m: 0.005 }
    }
}

/// One ray of the fan: `z(y) = z_centre + slope * y`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ray {
    /// Height where the ray crosses the centre plane (`y = 0`), m.
    pub z_centre: f64,
    /// Rise per metre across the vehicle.
    pub slope: f64,
    /// Path length per unit of `y`: `sqrt(1 + slope^2)`.
    pub stretch: f64,
}

impl FanBeam {
    /// The ray that crosses the centre plane at height `z_centre`.
    pub fn ray(&self, z_centre: f64) -> Ray {
        let slope = (z_centre - self.source_height_m) / self.source_distance_m;
        Ray { z_centre, slope, stretch: (1.0 + slope * slope).sqrt() }
    }

    /// Height at the centre plane of the ray through point `(y, z)`.
    pub fn project(&self, y: f64, z: f64) -> f64 {
        self.source_height_m + (z - self.source_height_m) * self.source_distance_m / (y + self.source_distance_m)
    }
}

/// The cross-section of a shape in one scan line's `(y, z)` plane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Section {
    /// Axis-aligned rectangle.
    Rect {
        /// Near edge across the vehicle, m.
        y0: f64,
        /// Far edge across the vehicle, m.
        y1: f64,
        /// Bottom, m.
        z0: f64,
        /// Top, m.
        z1: f64,
    },
    /// Axis-aligned ellipse clipped to `y0..y1` (a slanted horizontal cylinder cut by the plane).
    Ellipse {
        /// Centre across the vehicle, m.
        yc: f64,
        /// Centre height, m.
        zc: f64,
        /// Semi-axis across the vehicle, m.
        ay: f64,
        /// Vertical semi-axis, m.
        az: f64,
        /// Near clip across the vehicle (the cylinder's end), m.
        y0: f64,
        /// Far clip across the vehicle, m.
        y1: f64,
    },
}

impl Section {
    /// Length (m) of the ray inside the section.
    pub fn chord(&self, ray: &Ray) -> f64 {
        let (ya, yb) = match *self {
            Section::Rect { y0, y1, z0, z1 } => {
                let (a, b) = if ray.slope.abs() < 1e-12 {
                    if ray.z_centre < z0 || ray.z_centre > z1 {
                        return 0.0;
                    }
                    (y0, y1)
                } else {
                    let p = (z0 - ray.z_centre) / ray.slope;
                    let q = (z1 - ray.z_centre) / ray.slope;
                    (p.min(q).max(y0), p.max(q).min(y1))
                };
                (a, b)
            }
            Section::Ellipse { yc, zc, ay, az, y0, y1 } => {
                // ((y-yc)/ay)^2 + ((z_centre + s y - zc)/az)^2 = 1, quadratic in u = y - yc.
                let d = ray.z_centre + ray.slope * yc - zc;
                let a = 1.0 / (ay * ay) + ray.slope * ray.slope / (az * az);
                let b = 2.0 * ray.slope * d / (az * az);
                let c = d * d / (az * az) - 1.0;
                let disc = b * b - 4.0 * a * c;
                if disc <= 0.0 {
                    return 0.0;
                }
                let r = disc.sqrt();
                let (u0, u1) = ((-b - r) / (2.0 * a), (-b + r) / (2.0 * a));
                ((yc + u0).max(y0), (yc + u1).min(y1))
            }
        };
        if yb > ya { (yb - ya) * ray.stretch } else { 0.0 }
    }

    /// Bounding box `(y0, y1, z0, z1)`.
    pub fn bounds(&self) -> (f64, f64, f64, f64) {
        match *self {
            Section::Rect { y0, y1, z0, z1 } => (y0, y1, z0, z1),
            Section::Ellipse { yc, zc, ay, az, y0, y1 } => (y0.max(yc - ay), y1.min(yc + ay), zc - az, zc + az),
        }
    }
}

/// A solid 3-D shape. Yaw turns about the vertical axis (radians, 0 = along `x`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum Shape {
    /// A box standing on its base, turned by `yaw`.
    Cuboid {
        /// Centre `[x, y, z]`, m.
        centre: [f64; 3],
        /// Size `[length, width, height]` before the turn, m.
        size: [f64; 3],
        /// Turn about the vertical axis, radians.
        yaw: f64,
    },
    /// A cylinder with a vertical axis (rolls standing, drums, bottles).
    Upright {
        /// Centre `[x, y, z]`, m.
        centre: [f64; 3],
        /// Radius, m.
        radius: f64,
        /// Height, m.
        height: f64,
    },
    /// A cylinder lying horizontally, axis turned by `yaw` (pipes, coils, barrels, wheels).
    Lying {
        /// Centre `[x, y, z]`, m.
        centre: [f64; 3],
        /// Radius, m.
        radius: f64,
        /// Length along the axis, m.
        length: f64,
        /// Turn of the axis about the vertical, radians (0: along the vehicle).
        yaw: f64,
    },
}

impl Shape {
    /// Range of `x` the shape occupies.
    pub fn x_range(&self) -> (f64, f64) {
        let (cx, half) = match *self {
            Shape::Cuboid { centre, size, yaw } => {
                let (s, c) = yaw.sin_cos();
                (centre[0], 0.5 * (size[0] * c.abs() + size[1] * s.abs()))
            }
            Shape::Upright { centre, radius, .. } => (centre[0], radius),
            Shape::Lying { centre, radius, length, yaw } => {
                let (s, c) = yaw.sin_cos();
                (centre[0], 0.5 * length * c.abs() + radius * s.abs())
            }
        };
        (cx - half, cx + half)
    }

    /// Axis-aligned 3-D bounding box `[min, max]`.
    pub fn bounds(&self) -> ([f64; 3], [f64; 3]) {
        let (x0, x1) = self.x_range();
        let (cy, hy, cz, hz) = match *self {
            Shape::Cuboid { centre, size, yaw } => {
                let (s, c) = yaw.sin_cos();
                (centre[1], 0.5 * (size[0] * s.abs() + size[1] * c.abs()), centre[2], 0.5 * size[2])
            }
            Shape::Upright { centre, radius, height } => (centre[1], radius, centre[2], 0.5 * height),
            Shape::Lying { centre, radius, length, yaw } => {
                let (s, c) = yaw.sin_cos();
                (centre[1], 0.5 * length * s.abs() + radius * c.abs(), centre[2], radius)
            }
        };
        ([x0, cy - hy, cz - hz], [x1, cy + hy, cz + hz])
    }

    /// The same shape moved by `d` (m).
    pub fn translated(&self, d: [f64; 3]) -> Shape {
        let mv = |c: [f64; 3]| [c[0] + d[0], c[1] + d[1], c[2] + d[2]];
        match *self {
            Shape::Cuboid { centre, size, yaw } => Shape::Cuboid { centre: mv(centre), size, yaw },
            Shape::Upright { centre, radius, height } => Shape::Upright { centre: mv(centre), radius, height },
            Shape::Lying { centre, radius, length, yaw } => Shape::Lying { centre: mv(centre), radius, length, yaw },
        }
    }

    /// Volume, m^3.
    pub fn volume(&self) -> f64 {
        match *self {
            Shape::Cuboid { size, .. } => size[0] * size[1] * size[2],
            Shape::Upright { radius, height, .. } => std::f64::consts::PI * radius * radius * height,
            Shape::Lying { radius, length, .. } => std::f64::consts::PI * radius * radius * length,
        }
    }

    /// The shape's section in the scan-line plane at `x`, if it reaches it.
    pub fn section(&self, x: f64) -> Option<Section> {
        let (x0, x1) = self.x_range();
        if x < x0 || x > x1 {
            return None;
        }
        match *self {
            Shape::Cuboid { centre, size, yaw } => {
                let (y0, y1) = rotated_rect_span(x - centre[0], 0.5 * size[0], 0.5 * size[1], yaw)?;
                Some(Section::Rect {
                    y0: centre[1] + y0,
                    y1: centre[1] + y1,
                    z0: centre[2] - 0.5 * size[2],
                    z1: centre[2] + 0.5 * size[2],
                })
            }
            Shape::Upright { centre, radius, height } => {
                let dx = x - centre[0];
                let h = (radius * radius - dx * dx).max(0.0).sqrt();
                Some(Section::Rect {
                    y0: centre[1] - h,
                    y1: centre[1] + h,
                    z0: centre[2] - 0.5 * height,
                    z1: centre[2] + 0.5 * height,
                })
            }
            Shape::Lying { centre, radius, length, yaw } => {
                let (s, c) = yaw.sin_cos();
                let dx = x - centre[0];
                // Points (dx, v) of the footprint: along-axis coordinate within length/2 and
                // across-axis distance d within radius, both linear in v = y - yc.
                let (along_lo, along_hi) = linear_band(dx * c, s, 0.5 * length)?;
                if c.abs() < 1e-9 {
                    // Axis across the beam: the section is a band of constant half-height.
                    let d = dx.abs();
                    if d >= radius {
                        return None;
                    }
                    let hz = (radius * radius - d * d).sqrt();
                    return Some(Section::Rect {
                        y0: centre[1] + along_lo,
                        y1: centre[1] + along_hi,
                        z0: centre[2] - hz,
                        z1: centre[2] + hz,
                    });
                }
                // Across-axis distance d = -dx s + v c = 0 at v = dx s / c: ellipse centre.
                let vc = dx * s / c;
                Some(Section::Ellipse {
                    yc: centre[1] + vc,
                    zc: centre[2],
                    ay: radius / c.abs(),
                    az: radius,
                    y0: centre[1] + along_lo,
                    y1: centre[1] + along_hi,
                })
            }
        }
    }
}

/// Range of v where |a + b v| <= h (all of it if b = 0 and |a| <= h).
fn linear_band(a: f64, b: f64, h: f64) -> Option<(f64, f64)> {
    if b.abs() < 1e-12 {
        return if a.abs() <= h { Some((-1e9, 1e9)) } else { None };
    }
    let p = (-h - a) / b;
    let q = (h - a) / b;
    Some((p.min(q), p.max(q)))
}

/// `y` span of a rectangle with half sizes `(hx, hy)`, turned by `yaw`, cut at `dx` from its
/// centre. Local coordinates: u = dx c + v s, w = -dx s + v c.
fn rotated_rect_span(dx: f64, hx: f64, hy: f64, yaw: f64) -> Option<(f64, f64)> {
    let (s, c) = yaw.sin_cos();
    let (u0, u1) = linear_band(dx * c, s, hx)?;
    let (w0, w1) = linear_band(-dx * s, c, hy)?;
    let (lo, hi) = (u0.max(w0), u1.min(w1));
    (hi > lo).then_some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FLAT: Ray = Ray { z_centre: 1.0, slope: 0.0, stretch: 1.0 };

    #[test]
    fn horizontal_ray_through_a_box_crosses_its_width() {
        let b = Shape::Cuboid { centre: [0.0, 0.2, 1.0], size: [1.0, 0.5, 0.4], yaw: 0.0 };
        let s = b.section(0.3).unwrap();
        assert!((s.chord(&FLAT) - 0.5).abs() < 1e-12);
        assert!(b.section(0.6).is_none());
    }

    #[test]
    fn box_turned_45_degrees_has_a_diamond_footprint() {
        let b = Shape::Cuboid { centre: [0.0, 0.0, 1.0], size: [1.0, 1.0, 1.0], yaw: std::f64::consts::FRAC_PI_4 };
        let half_diag = 0.5 * 2f64.sqrt();
        // At the centre the span is the diagonal, halfway out it is half of it.
        assert!((b.section(0.0).unwrap().chord(&FLAT) - 2.0 * half_diag).abs() < 1e-9);
        assert!((b.section(0.5 * half_diag).unwrap().chord(&FLAT) - half_diag).abs() < 1e-9);
    }

    #[test]
    fn lying_cylinder_along_the_vehicle_is_a_disc() {
        let c = Shape::Lying { centre: [0.0, 0.0, 1.0], radius: 0.3, length: 2.0, yaw: 0.0 };
        let s = c.section(0.9).unwrap();
        assert!((s.chord(&FLAT) - 0.6).abs() < 1e-9);
        // A ray 0.18 m above the axis: chord 2 sqrt(0.09 - 0.0324) = 0.48.
        let ray = Ray { z_centre: 1.18, slope: 0.0, stretch: 1.0 };
        assert!((s.chord(&ray) - 0.48).abs() < 1e-9);
        assert!(c.section(1.01).is_none());
    }

    #[test]
    fn lying_cylinder_across_the_beam_gives_its_length() {
        let c = Shape::Lying { centre: [0.0, 0.0, 1.0], radius: 0.3, length: 2.0, yaw: std::f64::consts::FRAC_PI_2 };
        let s = c.section(0.0).unwrap();
        assert!((s.chord(&FLAT) - 2.0).abs() < 1e-6, "{}", s.chord(&FLAT));
    }

    #[test]
    fn slanted_ray_is_longer() {
        let fan = FanBeam::default();
        let b = Shape::Cuboid { centre: [0.0, 0.0, 3.0], size: [1.0, 0.2, 2.0], yaw: 0.0 };
        let ray = fan.ray(3.0);
        let got = b.section(0.0).unwrap().chord(&ray);
        assert!((got - 0.2 * ray.stretch).abs() < 1e-9 && got > 0.2);
        // project() inverts the ray: a point on the ray projects back to its centre height.
        let z_at = ray.z_centre + ray.slope * 0.7;
        assert!((fan.project(0.7, z_at) - 3.0).abs() < 1e-9);
    }

    /// Naive chord by marching along the ray, for property tests.
    fn marched(shape: &Shape, x: f64, ray: &Ray) -> f64 {
        let (lo, hi) = shape.bounds();
        let n = 20_000;
        let dy = (hi[1] - lo[1] + 0.2) / n as f64;
        let mut inside = 0usize;
        for i in 0..n {
            let y = lo[1] - 0.1 + (i as f64 + 0.5) * dy;
            let z = ray.z_centre + ray.slope * y;
            if contains(shape, [x, y, z]) {
                inside += 1;
            }
        }
        inside as f64 * dy * ray.stretch
    }

    fn contains(shape: &Shape, p: [f64; 3]) -> bool {
        match *shape {
            Shape::Cuboid { centre, size, yaw } => {
                let (s, c) = yaw.sin_cos();
                let (dx, dy) = (p[0] - centre[0], p[1] - centre[1]);
                let u = dx * c + dy * s;
                let w = -dx * s + dy * c;
                u.abs() <= 0.5 * size[0] && w.abs() <= 0.5 * size[1] && (p[2] - centre[2]).abs() <= 0.5 * size[2]
            }
            Shape::Upright { centre, radius, height } => {
                let (dx, dy) = (p[0] - centre[0], p[1] - centre[1]);
                dx * dx + dy * dy <= radius * radius && (p[2] - centre[2]).abs() <= 0.5 * height
            }
            Shape::Lying { centre, radius, length, yaw } => {
                let (s, c) = yaw.sin_cos();
                let (dx, dy, dz) = (p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]);
                let u = dx * c + dy * s;
                let w = -dx * s + dy * c;
                u.abs() <= 0.5 * length && w * w + dz * dz <= radius * radius
            }
        }
    }

    proptest! {
        #[test]
        fn chords_match_a_marching_reference(
            kind in 0u8..3, yaw in 0.0f64..3.1, sx in 0.1f64..1.0, sy in 0.1f64..1.0, sz in 0.1f64..1.0,
            fx in -1.0f64..1.0, zc in 0.0f64..2.0, slope in -0.5f64..0.5,
        ) {
            let shape = match kind {
                0 => Shape::Cuboid { centre: [0.0, 0.1, 1.0], size: [sx, sy, sz], yaw },
                1 => Shape::Upright { centre: [0.0, 0.1, 1.0], radius: 0.5 * sx, height: sz },
                _ => Shape::Lying { centre: [0.0, 0.1, 1.0], radius: 0.5 * sy, length: sx + 0.2, yaw },
            };
            let (x0, x1) = shape.x_range();
            let x = 0.5 * (x0 + x1) + 0.49 * fx * (x1 - x0);
            let ray = Ray { z_centre: zc, slope, stretch: (1.0 + slope * slope).sqrt() };
            let want = marched(&shape, x, &ray);
            let got = shape.section(x).map_or(0.0, |s| s.chord(&ray));
            // The marching reference resolves about 1e-4 m (grid) per boundary.
            prop_assert!((got - want).abs() < 2e-3, "got {got}, marched {want}");
            // Bounds of the section contain every point of the chord.
            if let Some(s) = shape.section(x) {
                let (lo, hi) = shape.bounds();
                let (y0, y1, z0, z1) = s.bounds();
                prop_assert!(y0 >= lo[1] - 1e-9 && y1 <= hi[1] + 1e-9 && z0 >= lo[2] - 1e-9 && z1 <= hi[2] + 1e-9);
            }
        }
    }
}
