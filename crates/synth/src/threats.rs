//! Concealed threats, built as solids inside the scene before any noise: narcotics bricks,
//! cigarettes, firearms, vehicles, ivory tusks, high-Z blocks and hidden compartments.

use std::f64::consts::{FRAC_PI_2, PI};

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::SynthError;
use super::catalogue::{Package, make_room, raise_packages, uniform};
use super::container::LoadSpace;
use super::geometry::Shape;
use super::scene::{Object, Scene, Threat};
use nii_atr_core::physics::AttenuationTable;

pub use nii_atr_core::truth::CATEGORIES;

/// The kinds of concealment the generator builds; each labels its threats with the category
/// of the same index in [`CATEGORIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreatKind {
    /// A block of cocaine or heroin bricks (20 x 12 x 4.5 cm each), 4-15 in hard mode, 20-149 otherwise.
    Narcotics,
    /// Master cases of cigarettes (58 x 46 x 30 cm, 15 % cardboard by mass).
    Cigarettes,
    /// One to three rifles or pistols (pistols only, turned, in hard mode).
    Firearm,
    /// A car in place of cargo packages.
    Vehicle,
    /// One to four elephant tusks, shorter in hard mode.
    Ivory,
    /// A lead or tungsten block (3-8 cm in hard mode, 10-25 cm otherwise), sometimes a
    /// shielding pot.
    HighZ,
    /// A false front wall, floor or roof with a labelled cavity, often with contraband inside.
    HiddenCompartment,
}

impl ThreatKind {
    /// Every kind, in category order.
    pub const ALL: [ThreatKind; 7] = [
        ThreatKind::Narcotics,
        ThreatKind::Cigarettes,
        ThreatKind::Firearm,
        ThreatKind::Vehicle,
        ThreatKind::Ivory,
        ThreatKind::HighZ,
        ThreatKind::HiddenCompartment,
    ];

    /// The label category of this kind's threats.
    pub fn category(self) -> &'static str {
        CATEGORIES[self as usize]
    }
}

/// What a concealment needs to know about the case being built.
pub struct Hide<'a> {
    /// The scene the threat's solids go into.
    pub scene: &'a mut Scene,
    /// The cargo packages, not yet in the scene: concealments make room in them.
    pub packages: &'a mut Vec<Package>,
    /// The container's load space.
    pub space: LoadSpace,
    /// The case's random stream.
    pub rng: &'a mut ChaCha8Rng,
    /// Material ids by name.
    pub table: &'a AttenuationTable,
    /// Hard mode: smaller amounts, deeper inside the load, turned.
    pub hard: bool,
}

impl Hide<'_> {
    fn obj(&self, shape: Shape, material: &str, density: f64) -> Result<Object, SynthError> {
        Ok(Object::new(shape, self.table.id(material)?, density))
    }

    /// A centre for an object of `size`: inside a package (hard: the middle of the load
    /// across the beam, low down) or on the floor of an empty space.
    fn place(&mut self, size: [f64; 3]) -> ([f64; 3], String) {
        let s = self.space;
        let clamp = |c: [f64; 3]| {
            [
                c[0].clamp(s.x0 + 0.5 * size[0] + 0.01, (s.x1 - 0.5 * size[0] - 0.01).max(s.x0 + 0.5 * size[0] + 0.01)),
                c[1].clamp(
                    -s.half_width + 0.5 * size[1] + 0.01,
                    (s.half_width - 0.5 * size[1] - 0.01).max(-s.half_width + 0.5 * size[1] + 0.01),
                ),
                c[2].clamp(s.floor_z + 0.5 * size[2], (s.roof_z - 0.5 * size[2] - 0.01).max(s.floor_z + 0.5 * size[2])),
            ]
        };
        if self.packages.is_empty() {
            let c = [
                uniform(self.rng, [s.x0, s.x1]),
                uniform(self.rng, [-s.half_width, s.half_width]),
                s.floor_z + 0.5 * size[2],
            ];
            return (clamp(c), "on the floor of the load space".into());
        }
        let pick = if self.hard {
            // Most occluded: nearest the centre plane, lowest down.
            let n = self.packages.len();
            let mut best = self.rng.random_range(0..n);
            for _ in 0..6 {
                let k = self.rng.random_range(0..n);
                let score = |p: &Package| (0.5 * (p.lo[1] + p.hi[1])).abs() + 0.3 * (p.lo[2] - s.floor_z);
                if score(&self.packages[k]) < score(&self.packages[best]) {
                    best = k;
                }
            }
            best
        } else {
            self.rng.random_range(0..self.packages.len())
        };
        let p = &self.packages[pick];
        let fits = (0..3).all(|i| p.hi[i] - p.lo[i] >= size[i] + 0.01);
        let c = [
            0.5 * (p.lo[0] + p.hi[0]),
            0.5 * (p.lo[1] + p.hi[1]),
            if fits { 0.5 * (p.lo[2] + p.hi[2]) } else { p.lo[2] + 0.5 * size[2] },
        ];
        let how = if fits { "inside a cargo package" } else { "in place of cargo packages" };
        (clamp(c), how.into())
    }

    /// Registers the threat: clears room in the cargo, adds its solids with one label.
    fn commit(&mut self, kind: ThreatKind, material: &str, objects: Vec<Object>, yaw: f64, concealment: String) {
        let (mut lo, mut hi) = ([f64::MAX; 3], [f64::MIN; 3]);
        let mut volume = 0.0;
        let mut mass = 0.0;
        for o in &objects {
            let (a, b) = o.shape.bounds();
            for i in 0..3 {
                lo[i] = lo[i].min(a[i]);
                hi[i] = hi[i].max(b[i]);
            }
            if o.density_g_cm3 > 0.0 {
                volume += o.shape.volume();
            } else {
                volume -= o.shape.volume();
            }
            mass += o.mass_kg();
        }
        make_room(self.packages, lo, hi, volume.max(0.0));
        let threat = Threat {
            category: kind.category().to_string(),
            material: material.to_string(),
            mass_kg: mass,
            depth_m: 0.5 * (lo[1] + hi[1]) + self.space.half_width,
            yaw_deg: yaw.to_degrees(),
            concealment,
        };
        self.scene.push_threat(threat, objects);
    }
}

/// Adds one concealment of `kind`.
pub fn conceal(kind: ThreatKind, h: &mut Hide<'_>) -> Result<(), SynthError> {
    match kind {
        ThreatKind::Narcotics => {
            let n: usize = if h.hard { h.rng.random_range(4..16) } else { h.rng.random_range(20..150) };
            let material = if h.rng.random::<bool>() { "cocaine_hcl" } else { "heroin" };
            bricks(h, ThreatKind::Narcotics, material, n, [0.20, 0.12, 0.045], [1.0, 1.25], None)
        }
        ThreatKind::Cigarettes => {
            let n: usize = if h.hard { h.rng.random_range(1..4) } else { h.rng.random_range(4..24) };
            bricks(h, ThreatKind::Cigarettes, "tobacco", n, [0.58, 0.46, 0.30], [0.17, 0.25], None)
        }
        ThreatKind::Firearm => {
            let n: usize = h.rng.random_range(1..4);
            let (centre, how) = h.place([0.9, 0.4, 0.3]);
            for i in 0..n {
                let yaw = if h.hard { uniform(h.rng, [0.0, PI]) } else { 0.0 };
                let c = [centre[0] + 0.25 * i as f64 - 0.25, centre[1] + 0.08 * i as f64, centre[2]];
                let rifle = !h.hard && h.rng.random::<f64>() < 0.6;
                let objects = if rifle { rifle_parts(h, c, yaw)? } else { pistol_parts(h, c, yaw)? };
                h.commit(ThreatKind::Firearm, "steel", objects, yaw, how.clone());
            }
            Ok(())
        }
        ThreatKind::Vehicle => {
            let (l, w, ht) = (uniform(h.rng, [3.8, 4.8]), uniform(h.rng, [1.65, 1.85]), uniform(h.rng, [1.35, 1.55]));
            let s = h.space;
            let x0 = uniform(h.rng, [s.x0 + 0.1, (s.x1 - l - 0.1).max(s.x0 + 0.1)]);
            let yc = uniform(h.rng, [-0.1, 0.1]);
            let objects = vehicle_parts(h, [x0 + 0.5 * l, yc, s.floor_z], [l, w, ht])?;
            h.commit(ThreatKind::Vehicle, "steel", objects, 0.0, "in place of cargo packages".into());
            Ok(())
        }
        ThreatKind::Ivory => {
            // Each tusk is labelled on its own; 1-4 keeps ivory from swamping the class balance.
            let n: usize = if h.hard { h.rng.random_range(1..3) } else { h.rng.random_range(1..5) };
            let length = if h.hard { uniform(h.rng, [0.3, 0.7]) } else { uniform(h.rng, [1.0, 1.8]) };
            let (centre, how) = h.place([length, 0.5, 0.4]);
            for i in 0..n {
                let yaw = uniform(h.rng, [-0.4, 0.4]) + if h.hard { uniform(h.rng, [0.0, PI]) } else { 0.0 };
                let c = [centre[0], centre[1] + 0.1 * (i as f64 - 0.5 * n as f64), centre[2] + 0.02 * i as f64];
                let base_r = uniform(h.rng, [0.035, 0.065]);
                let objects = tusk(h, c, length, base_r, yaw)?;
                h.commit(ThreatKind::Ivory, "ivory", objects, yaw, how.clone());
            }
            Ok(())
        }
        ThreatKind::HighZ => {
            let tungsten = h.rng.random::<f64>() < 0.3;
            let (material, density) = if tungsten { ("tungsten", 19.3) } else { ("lead", 11.35) };
            let side = if h.hard { uniform(h.rng, [0.03, 0.08]) } else { uniform(h.rng, [0.10, 0.25]) };
            let (c, how) = h.place([side, side, side]);
            let yaw = uniform(h.rng, [0.0, FRAC_PI_2]);
            let cube = Shape::Cuboid { centre: c, size: [side; 3], yaw };
            let mut objects = vec![h.obj(cube, material, density)?];
            if !h.hard && h.rng.random::<bool>() {
                // A shielding pot: lead walls around a small steel source holder.
                let wall = 0.3 * side;
                objects.push(h.obj(
                    Shape::Cuboid { centre: c, size: [side - 2.0 * wall; 3], yaw },
                    material,
                    -density,
                )?);
                objects.push(h.obj(Shape::Upright { centre: c, radius: 0.01, height: 0.03 }, "steel", 7.85)?);
            }
            h.commit(ThreatKind::HighZ, material, objects, yaw, how);
            Ok(())
        }
        ThreatKind::HiddenCompartment => compartment(h),
    }
}

/// A block of `n` bricks (or cases) of `size`, packed tight, turned in hard mode.
fn bricks(
    h: &mut Hide<'_>,
    kind: ThreatKind,
    material: &str,
    n: usize,
    size: [f64; 3],
    density: [f64; 2],
    at: Option<([f64; 3], String)>,
) -> Result<(), SynthError> {
    let nx = (n as f64).cbrt().ceil().max(1.0);
    let ny = ((n as f64 / nx).sqrt()).ceil().max(1.0);
    let nz = (n as f64 / (nx * ny)).ceil().max(1.0);
    let block = [nx * size[0], ny * size[1], nz * size[2]];
    let (c, how) = match at {
        Some(a) => a,
        None => h.place(block),
    };
    let yaw = if h.hard { uniform(h.rng, [0.0, PI]) } else { 0.0 };
    // Bricks of the block that are really there: n of nx*ny*nz slots, as a density share.
    let rho = uniform(h.rng, density) * n as f64 / (nx * ny * nz);
    let mut objects = vec![h.obj(Shape::Cuboid { centre: c, size: block, yaw }, material, rho)?];
    if kind == ThreatKind::Cigarettes {
        // Master cases are 15 % cardboard by mass.
        objects[0].density_g_cm3 *= 0.85;
        objects.push(h.obj(Shape::Cuboid { centre: c, size: block, yaw }, "cellulose", rho * 0.15)?);
    }
    h.commit(kind, material, objects, yaw, how);
    Ok(())
}

/// Local-to-scene placement of a part at `u` along and `v` across a turned object.
fn at(c: [f64; 3], yaw: f64, u: f64, v: f64, dz: f64) -> [f64; 3] {
    let (s, co) = yaw.sin_cos();
    [c[0] + u * co - v * s, c[1] + u * s + v * co, c[2] + dz]
}

fn rifle_parts(h: &Hide<'_>, c: [f64; 3], yaw: f64) -> Result<Vec<Object>, SynthError> {
    let barrel_c = at(c, yaw, 0.30, 0.0, 0.02);
    Ok(vec![
        h.obj(Shape::Lying { centre: barrel_c, radius: 0.011, length: 0.5, yaw }, "steel", 7.85)?,
        h.obj(Shape::Lying { centre: barrel_c, radius: 0.0028, length: 0.5, yaw }, "steel", -7.85)?,
        h.obj(Shape::Cuboid { centre: at(c, yaw, -0.05, 0.0, 0.0), size: [0.22, 0.035, 0.06], yaw }, "steel", 5.0)?,
        h.obj(Shape::Cuboid { centre: at(c, yaw, -0.02, 0.0, -0.09), size: [0.07, 0.025, 0.14], yaw }, "steel", 2.5)?,
        h.obj(Shape::Cuboid { centre: at(c, yaw, -0.33, 0.0, -0.02), size: [0.32, 0.04, 0.12], yaw }, "wood", 0.7)?,
    ])
}

fn pistol_parts(h: &Hide<'_>, c: [f64; 3], yaw: f64) -> Result<Vec<Object>, SynthError> {
    Ok(vec![
        h.obj(Shape::Cuboid { centre: at(c, yaw, 0.0, 0.0, 0.05), size: [0.18, 0.028, 0.035], yaw }, "steel", 6.0)?,
        h.obj(
            Shape::Cuboid { centre: at(c, yaw, -0.05, 0.0, -0.01), size: [0.06, 0.03, 0.11], yaw },
            "polystyrene",
            1.1,
        )?,
        h.obj(Shape::Cuboid { centre: at(c, yaw, -0.05, 0.0, -0.015), size: [0.035, 0.022, 0.10], yaw }, "steel", 3.0)?,
    ])
}

/// A tusk: a tapering, upward-curving chain of cylinders of ivory.
fn tusk(h: &Hide<'_>, c: [f64; 3], length: f64, base_r: f64, yaw: f64) -> Result<Vec<Object>, SynthError> {
    const SEGMENTS: usize = 6;
    let seg = length / SEGMENTS as f64;
    let mut out = Vec::new();
    for i in 0..SEGMENTS {
        let u = -0.5 * length + (i as f64 + 0.5) * seg;
        let t = (i as f64 + 0.5) / SEGMENTS as f64;
        let r = base_r * (1.0 - 0.75 * t);
        let lift = 0.25 * length * t * t;
        let centre = at(c, yaw, u, 0.0, lift - 0.1 * length);
        out.push(h.obj(Shape::Lying { centre, radius: r, length: seg * 1.02, yaw }, "ivory", 1.85)?);
        if i == 0 {
            // Pulp cavity at the base.
            out.push(h.obj(Shape::Lying { centre, radius: 0.6 * r, length: seg, yaw }, "ivory", -1.85)?);
        }
    }
    Ok(out)
}

/// A car: steel body shell and cabin, glass, engine, gearbox, seats, tank and four wheels.
fn vehicle_parts(h: &Hide<'_>, base: [f64; 3], [l, w, ht]: [f64; 3]) -> Result<Vec<Object>, SynthError> {
    let (x, y, z0) = (base[0], base[1], base[2]);
    let body_h = 0.55 * ht;
    let body_c = [x, y, z0 + 0.2 + 0.5 * body_h];
    let cabin = [0.5 * l, w - 0.1, ht - body_h - 0.2];
    let cabin_c = [x - 0.05 * l, y, z0 + 0.2 + body_h + 0.5 * cabin[2]];
    let t = 0.0012;
    let cuboid = |centre: [f64; 3], size: [f64; 3]| Shape::Cuboid { centre, size, yaw: 0.0 };
    let shrink = |s: [f64; 3], d: f64| [s[0] - 2.0 * d, s[1] - 2.0 * d, s[2] - 2.0 * d];
    let body = [l, w, body_h];
    let mut out = vec![
        h.obj(cuboid(body_c, body), "steel", 7.85)?,
        h.obj(cuboid(body_c, shrink(body, t)), "steel", -7.85)?,
        // Cabin: steel roof and pillars as a thin shell, glass all round.
        h.obj(
            cuboid([cabin_c[0], cabin_c[1], cabin_c[2] + 0.5 * cabin[2] - 0.001], [cabin[0], cabin[1], 0.002]),
            "steel",
            7.85,
        )?,
        h.obj(cuboid(cabin_c, cabin), "glass", 2.5)?,
        h.obj(cuboid(cabin_c, shrink(cabin, 0.004)), "glass", -2.5)?,
        // Engine (cast iron block, aluminium head) and gearbox.
        h.obj(cuboid([x + 0.36 * l, y, z0 + 0.55], [0.55, 0.5, 0.45]), "iron", 3.2)?,
        h.obj(cuboid([x + 0.36 * l, y, z0 + 0.86], [0.5, 0.45, 0.17]), "aluminium", 1.6)?,
        h.obj(cuboid([x + 0.24 * l, y, z0 + 0.45], [0.45, 0.3, 0.3]), "aluminium", 1.8)?,
        // Fuel tank: steel shell with petrol (polyethylene-like hydrocarbon, 0.74 g/cm^3).
        h.obj(cuboid([x - 0.3 * l, y, z0 + 0.35], [0.5, 0.7, 0.22]), "polyethylene", 0.74 * 0.6)?,
        // Seats: foam on steel frames.
        h.obj(cuboid([x - 0.05 * l, y, z0 + 0.2 + body_h], [1.2, w - 0.3, 0.5]), "polyethylene", 0.05)?,
        h.obj(cuboid([x - 0.05 * l, y, z0 + 0.2 + 0.6 * body_h], [1.2, w - 0.3, 0.03]), "steel", 1.5)?,
    ];
    for wx in [x + 0.32 * l, x - 0.32 * l] {
        for wy in [y - 0.5 * w + 0.12, y + 0.5 * w - 0.12] {
            let c = [wx, wy, z0 + 0.31];
            let lying = |radius: f64, length: f64| Shape::Lying { centre: c, radius, length, yaw: FRAC_PI_2 };
            out.push(h.obj(lying(0.31, 0.2), "rubber", 1.15)?);
            out.push(h.obj(lying(0.21, 0.2), "rubber", -1.15)?);
            out.push(h.obj(lying(0.21, 0.18), "aluminium", 0.5)?);
            out.push(h.obj(lying(0.12, 0.05), "steel", 3.0)?);
        }
    }
    Ok(out)
}

/// A false front wall, floor or roof: a steel plate closing a cavity, the cavity labelled
/// (as air, so the box covers it), often with contraband inside (labelled on its own).
fn compartment(h: &mut Hide<'_>) -> Result<(), SynthError> {
    let s = h.space;
    let kind = h.rng.random_range(0..3);
    let (plate, cavity, how) = match kind {
        0 => {
            let d = if h.hard { uniform(h.rng, [0.15, 0.35]) } else { uniform(h.rng, [0.4, 0.9]) };
            let zc = 0.5 * (s.floor_z + s.roof_z);
            let hgt = s.roof_z - s.floor_z;
            let w = 2.0 * s.half_width;
            (
                Shape::Cuboid { centre: [s.x0 + d, 0.0, zc], size: [0.003, w, hgt], yaw: 0.0 },
                ([s.x0 + 0.5 * d, 0.0, zc], [d - 0.01, w, hgt]),
                "behind a false front wall",
            )
        }
        1 => {
            let dh = if h.hard { uniform(h.rng, [0.05, 0.10]) } else { uniform(h.rng, [0.12, 0.25]) };
            let len = uniform(h.rng, [1.5, (s.x1 - s.x0).min(5.0)]);
            let xc = uniform(h.rng, [s.x0 + 0.5 * len, s.x1 - 0.5 * len]);
            let w = 2.0 * s.half_width;
            // The load rests on the false floor.
            raise_packages(h.packages, (xc - 0.5 * len, xc + 0.5 * len), dh + 0.002, s.roof_z);
            (
                Shape::Cuboid { centre: [xc, 0.0, s.floor_z + dh], size: [len, w, 0.004], yaw: 0.0 },
                ([xc, 0.0, s.floor_z + 0.5 * dh], [len, w, dh - 0.005]),
                "under a false floor",
            )
        }
        _ => {
            let dh = if h.hard { uniform(h.rng, [0.06, 0.12]) } else { uniform(h.rng, [0.12, 0.25]) };
            let len = uniform(h.rng, [1.5, (s.x1 - s.x0).min(5.0)]);
            let xc = uniform(h.rng, [s.x0 + 0.5 * len, s.x1 - 0.5 * len]);
            let w = 2.0 * s.half_width;
            (
                Shape::Cuboid { centre: [xc, 0.0, s.roof_z - dh], size: [len, w, 0.003], yaw: 0.0 },
                ([xc, 0.0, s.roof_z - 0.5 * dh], [len, w, dh - 0.005]),
                "above a false roof",
            )
        }
    };
    let (cc, cs) = cavity;
    let objects =
        vec![h.obj(plate, "steel", 7.85)?, h.obj(Shape::Cuboid { centre: cc, size: cs, yaw: 0.0 }, "air", 0.001205)?];
    h.commit(ThreatKind::HiddenCompartment, "steel", objects, 0.0, how.to_string());
    if h.rng.random::<f64>() < 0.6 {
        // Contraband inside, sized to the cavity.
        let narcotics = h.rng.random::<bool>();
        let (kind, material, brick, density) = if narcotics {
            (ThreatKind::Narcotics, "cocaine_hcl", [0.20, 0.12, 0.045], [1.0, 1.25])
        } else {
            (ThreatKind::Cigarettes, "tobacco", [0.58, 0.46, 0.30], [0.17, 0.25])
        };
        let fit = |i: usize| ((cs[i] - 0.02) / brick[i]).floor().max(0.0) as usize;
        let n_max = fit(0).min(4) * fit(1).min(6) * fit(2).min(3);
        if n_max > 0 {
            let n = h.rng.random_range(1..=n_max);
            let pos = [cc[0], cc[1] + uniform(h.rng, [-0.3, 0.3]) * cs[1], cc[2]];
            let hard = h.hard;
            h.hard = false;
            let res = bricks(h, kind, material, n, brick, density, Some((pos, how.to_string())));
            h.hard = hard;
            res?;
        }
    }
    Ok(())
}
