//! ISO 668 freight containers and the trailer under them, built from their own steel:
//! corrugated side and front walls, roof, floor on cross members, rails, corner posts and
//! castings, doors with locking bars, chassis beams and wheels.

use std::f64::consts::FRAC_PI_2;

use serde::{Deserialize, Serialize};

use super::SynthError;
use super::geometry::{FanBeam, Shape};
use super::scene::{Object, Scene};
use nii_atr_core::physics::{AttenuationTable, MaterialId};

/// Container size-types (ISO 6346 codes) with ISO 668 dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerType {
    /// 20 ft general purpose, 22G1.
    Iso20,
    /// 40 ft general purpose, 42G1.
    Iso40,
    /// 40 ft high cube, 45G1.
    Iso40Hc,
}

/// Dimensions of a container, m. External sizes are ISO 668's; internal sizes are those of
/// common steel dry vans (ISO 668 sets only minimums: 5.867/11.998 m long, 2.330 m wide).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContainerDims {
    /// Outside `[length, width, height]`, m.
    pub external: [f64; 3],
    /// Inside `[length, width, height]`, m.
    pub internal: [f64; 3],
    /// Empty mass, kg.
    pub tare_kg: f64,
    /// Largest gross mass (tare plus payload), kg.
    pub max_gross_kg: f64,
}

impl ContainerType {
    /// ISO 6346 size-type code, e.g. `22G1`.
    pub fn iso_code(self) -> &'static str {
        match self {
            ContainerType::Iso20 => "22G1",
            ContainerType::Iso40 => "42G1",
            ContainerType::Iso40Hc => "45G1",
        }
    }

    /// Its dimensions and masses.
    pub fn dims(self) -> ContainerDims {
        match self {
            ContainerType::Iso20 => ContainerDims {
                external: [6.058, 2.438, 2.591],
                internal: [5.898, 2.352, 2.393],
                tare_kg: 2_200.0,
                max_gross_kg: 30_480.0,
            },
            ContainerType::Iso40 => ContainerDims {
                external: [12.192, 2.438, 2.591],
                internal: [12.032, 2.352, 2.393],
                tare_kg: 3_700.0,
                max_gross_kg: 30_480.0,
            },
            ContainerType::Iso40Hc => ContainerDims {
                external: [12.192, 2.438, 2.896],
                internal: [12.032, 2.352, 2.698],
                tare_kg: 3_900.0,
                max_gross_kg: 30_480.0,
            },
        }
    }
}

/// Height of the container's underside above the road on a trailer, m.
pub const DECK_HEIGHT_M: f64 = 1.30;
/// Floor structure below the inner floor level (rails, cross members, plywood), m.
const FLOOR_DEPTH_M: f64 = 0.16;

/// The load space of a placed container, in scene coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadSpace {
    /// Inside of the front wall along the vehicle, m.
    pub x0: f64,
    /// Inside of the doors along the vehicle, m.
    pub x1: f64,
    /// Half of the internal width, m (the load space spans `-half_width..half_width`).
    pub half_width: f64,
    /// Height of the inner floor above the ground, m.
    pub floor_z: f64,
    /// Height of the inside of the roof above the ground, m.
    pub roof_z: f64,
}

struct Steel {
    steel: MaterialId,
    wood: MaterialId,
    rubber: MaterialId,
    density: f64,
}

/// Builds the container, its trailer and the image window into `scene`. The container's
/// front outer face sits at `x = 0`, the doors at the far end.
pub fn build_container(
    scene: &mut Scene,
    kind: ContainerType,
    fan: &FanBeam,
    table: &AttenuationTable,
) -> Result<LoadSpace, SynthError> {
    let d = kind.dims();
    let m = Steel {
        steel: table.id("steel")?,
        wood: table.id("wood")?,
        rubber: table.id("rubber")?,
        density: table.info(table.id("steel")?).density_g_cm3,
    };
    let [l_ext, w_ext, h_ext] = d.external;
    let [l_int, w_int, h_int] = d.internal;
    let base = DECK_HEIGHT_M;
    let floor_z = base + FLOOR_DEPTH_M;
    let roof_z = floor_z + h_int;
    let top = base + h_ext;
    let end_gap = 0.5 * (l_ext - l_int);
    let (x0, x1) = (end_gap, l_ext - end_gap);
    let hw = 0.5 * w_int;
    let wall_h = roof_z - floor_z;
    let wall_zc = 0.5 * (floor_z + roof_z);

    // Side walls: 1.6 mm sheet, trapezoidal corrugation (pitch 278 mm, depth 36 mm).
    for side in [-1.0, 1.0] {
        corrugated(scene, &m, 0, x0, x1, side * hw, side * 0.036, wall_zc, wall_h, 0.0016);
    }
    // Front wall (2 mm, corrugated along y) and the doors (two leaves, 2 mm, ribbed).
    corrugated(scene, &m, 1, -hw, hw, x0 - 0.02, -0.036, wall_zc, wall_h, 0.002);
    corrugated(scene, &m, 1, -hw, hw, x1 + 0.03, 0.02, wall_zc, wall_h, 0.002);
    // Door locking bars: four vertical 27 mm rods outside the doors.
    for y in [-0.9, -0.3, 0.3, 0.9] {
        scene.push(Object::new(
            Shape::Upright { centre: [x1 + 0.075, y, wall_zc], radius: 0.0135, height: wall_h },
            m.steel,
            m.density,
        ));
    }
    // Roof: 2 mm sheet over the whole width, with top side rails (hollow 60 x 100 mm, 3 mm).
    cuboid(scene, &m, [0.5 * l_ext, 0.0, roof_z + 0.02], [l_ext - 0.1, w_int, 0.002], m.steel);
    for side in [-1.0, 1.0] {
        hollow(scene, &m, [0.5 * l_ext, side * (hw + 0.02), top - 0.05], [l_ext, 0.06, 0.10], 0.003);
        // Bottom side rails: 160 mm deep, 4.5 mm.
        hollow(scene, &m, [0.5 * l_ext, side * (hw + 0.02), base + 0.08], [l_ext, 0.05, 0.16], 0.0045);
    }
    // Floor: 28 mm plywood on C-section cross members every 300 mm.
    cuboid(scene, &m, [0.5 * l_ext, 0.0, floor_z - 0.014], [l_int, w_int, 0.028], m.wood);
    let mut x = x0 + 0.15;
    while x < x1 - 0.1 {
        let (zb, zt) = (base + 0.01, floor_z - 0.028);
        cuboid(scene, &m, [x, 0.0, 0.5 * (zb + zt)], [0.004, w_int, zt - zb], m.steel);
        cuboid(scene, &m, [x + 0.02, 0.0, zt - 0.002], [0.045, w_int, 0.004], m.steel);
        cuboid(scene, &m, [x + 0.02, 0.0, zb + 0.002], [0.045, w_int, 0.004], m.steel);
        x += 0.30;
    }
    // Corner posts (hollow 160 x 110 mm, 6 mm) and corner castings (cast steel, half solid).
    for xc in [0.08, l_ext - 0.08] {
        for side in [-1.0, 1.0] {
            let yc = side * (0.5 * w_ext - 0.055);
            hollow(scene, &m, [xc, yc, base + 0.5 * h_ext], [0.16, 0.11, h_ext - 0.24], 0.006);
            for zc in [base + 0.059, top - 0.059] {
                scene.push(Object::new(
                    Shape::Cuboid { centre: [xc, yc, zc], size: [0.178, 0.162, 0.118], yaw: 0.0 },
                    m.steel,
                    0.5 * m.density,
                ));
            }
        }
    }
    trailer(scene, &m, l_ext, base);
    image_window(scene, l_ext, w_ext, top, fan);
    Ok(LoadSpace { x0, x1, half_width: hw, floor_z, roof_z })
}

/// The trailer under a container of length `l_ext` whose underside is at `base` (m): two
/// I-beams (web 8 mm, flanges 150 x 15 mm), hollow cross braces every 1.5 m, and the axles
/// at the rear (three for 40 ft, two for 20 ft) with dual wheels each side.
fn trailer(scene: &mut Scene, m: &Steel, l_ext: f64, base: f64) {
    let (beam_top, beam_bottom) = (base - 0.005, base - 0.40);
    for yc in [-0.5, 0.5] {
        cuboid(
            scene,
            m,
            [0.5 * l_ext, yc, 0.5 * (beam_top + beam_bottom)],
            [l_ext, 0.008, beam_top - beam_bottom],
            m.steel,
        );
        cuboid(scene, m, [0.5 * l_ext, yc, beam_top - 0.0075], [l_ext, 0.15, 0.015], m.steel);
        cuboid(scene, m, [0.5 * l_ext, yc, beam_bottom + 0.0075], [l_ext, 0.15, 0.015], m.steel);
    }
    let mut x = 0.6;
    while x < l_ext - 0.3 {
        hollow(scene, m, [x, 0.0, base - 0.2], [0.08, 1.0, 0.12], 0.005);
        x += 1.5;
    }
    let axles: &[f64] = if l_ext > 8.0 { &[-2.9, -1.6, -0.3] } else { &[-1.6, -0.3] };
    for &ax in axles {
        let xc = l_ext - 0.8 + ax;
        let zc = 0.52;
        scene.push_hollow(
            Shape::Lying { centre: [xc, 0.0, zc], radius: 0.075, length: 2.4, yaw: FRAC_PI_2 },
            Shape::Lying { centre: [xc, 0.0, zc], radius: 0.06, length: 2.4, yaw: FRAC_PI_2 },
            m.steel,
            m.density,
        );
        for yc in [-1.05, -0.72, 0.72, 1.05] {
            wheel(scene, m, xc, yc, zc);
        }
    }
}

/// The image window around a container of external length `l_ext` and width `w_ext` whose
/// top is at `top` (m): 0.4 m of open road before and after it, from 0.7 m above the ground
/// to 20 cm of open beam above the container's near top edge.
fn image_window(scene: &mut Scene, l_ext: f64, w_ext: f64, top: f64, fan: &FanBeam) {
    scene.x_min = -0.4;
    scene.x_max = l_ext + 0.4;
    scene.z_bottom = 0.70;
    // The fan slants upwards, so the top rows must clear the near top edge: solve
    // z_c - slope(z_c) * w/2 = top + 5 cm, then add 20 cm of open beam for calibration.
    let k = 0.5 * w_ext / fan.source_distance_m;
    scene.z_top = (top + 0.05 - fan.source_height_m * k) / (1.0 - k) + 0.20;
}

fn cuboid(scene: &mut Scene, m: &Steel, centre: [f64; 3], size: [f64; 3], material: MaterialId) {
    let density = if material == m.steel { m.density } else { 0.7 };
    scene.push(Object::new(Shape::Cuboid { centre, size, yaw: 0.0 }, material, density));
}

/// A rectangular hollow section of steel with wall thickness `t`.
fn hollow(scene: &mut Scene, m: &Steel, centre: [f64; 3], size: [f64; 3], t: f64) {
    let inner = [size[0] - 2.0 * t, size[1] - 2.0 * t, size[2] - 2.0 * t];
    scene.push_hollow(
        Shape::Cuboid { centre, size, yaw: 0.0 },
        Shape::Cuboid { centre, size: [size[0].max(inner[0]), inner[1], inner[2]], yaw: 0.0 },
        m.steel,
        m.density,
    );
}

/// A trapezoidal corrugated steel panel. `axis` 0: the panel runs along `x` from `a` to `b` at
/// `y = at` (side wall); 1: it runs along `y` at `x = at` (end wall). `depth` is the signed
/// corrugation depth; the ribs are vertical.
#[allow(clippy::too_many_arguments)]
fn corrugated(scene: &mut Scene, m: &Steel, axis: u8, a: f64, b: f64, at: f64, depth: f64, zc: f64, h: f64, t: f64) {
    const SEGMENTS: [(f64, bool, i8); 4] = [(0.072, false, 0), (0.069, true, 1), (0.068, false, 1), (0.069, true, -1)];
    let mut s = a;
    let mut i = 0;
    while s < b {
        let (len, web, level) = SEGMENTS[i % 4];
        let len = len.min(b - s);
        let mid = s + 0.5 * len;
        let (offset, yaw) = if web {
            let angle = (depth / len).atan() * f64::from(level);
            (0.5 * depth, angle)
        } else {
            (depth * f64::from(level), 0.0)
        };
        let run = if web { (len * len + depth * depth).sqrt() } else { len };
        let shape = if axis == 0 {
            Shape::Cuboid { centre: [mid, at + offset, zc], size: [run, t, h], yaw }
        } else {
            Shape::Cuboid { centre: [at + offset, mid, zc], size: [t, run, h], yaw: -yaw }
        };
        scene.push(Object::new(shape, m.steel, m.density));
        s += len;
        i += 1;
    }
}

/// A tyre (tread and side walls of rubber, air inside) on a steel rim.
fn wheel(scene: &mut Scene, m: &Steel, xc: f64, yc: f64, zc: f64) {
    let lying = |radius: f64, length: f64, y: f64| Shape::Lying { centre: [xc, y, zc], radius, length, yaw: FRAC_PI_2 };
    scene.push_hollow(lying(0.50, 0.28, yc), lying(0.47, 0.28, yc), m.rubber, 1.15);
    for dy in [-0.1325, 0.1325] {
        scene.push_hollow(lying(0.47, 0.015, yc + dy), lying(0.29, 0.015, yc + dy), m.rubber, 1.15);
    }
    scene.push_hollow(lying(0.29, 0.24, yc), lying(0.282, 0.24, yc), m.steel, m.density);
    scene.push(Object::new(lying(0.282, 0.012, yc), m.steel, m.density));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_steel_weighs_about_its_tare() {
        let t = AttenuationTable::embedded().unwrap();
        for kind in [ContainerType::Iso20, ContainerType::Iso40, ContainerType::Iso40Hc] {
            let mut scene = Scene::default();
            build_container(&mut scene, kind, &FanBeam::default(), t).unwrap();
            // Container only: everything at or above the deck (the trailer hangs below it).
            let mass: f64 = scene
                .objects
                .iter()
                .filter(|o| o.shape.bounds().0[2] >= DECK_HEIGHT_M - 1e-9)
                .map(Object::mass_kg)
                .sum();
            let tare = kind.dims().tare_kg;
            assert!(mass > 0.75 * tare && mass < 1.15 * tare, "{kind:?}: {mass:.0} kg vs tare {tare}");
        }
    }

    #[test]
    fn image_window_has_open_beam_above_the_roof() {
        let t = AttenuationTable::embedded().unwrap();
        let fan = FanBeam::default();
        let mut scene = Scene::default();
        build_container(&mut scene, ContainerType::Iso40Hc, &fan, t).unwrap();
        let top = DECK_HEIGHT_M + ContainerType::Iso40Hc.dims().external[2];
        // The ray through the top image row clears the near top edge of the container.
        let ray = fan.ray(scene.z_top);
        let z_near = ray.z_centre + ray.slope * (-0.5 * ContainerType::Iso40Hc.dims().external[1]);
        assert!(z_near > top + 0.1, "{z_near} vs {top}");
    }
}
