//! The commodity catalogue (`datasets/commodities.toml`) and the packing of a load into
//! 3-D packages inside a container.

use std::f64::consts::{FRAC_PI_2, PI};
use std::path::Path;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::SynthError;
use super::container::LoadSpace;
use super::geometry::Shape;
use super::scene::Object;
use nii_atr_core::physics::{AttenuationTable, MaterialId};

/// The catalogue shipped with nii-atr.
pub const COMMODITIES_TOML: &str = include_str!("../../../datasets/commodities.toml");

/// Catalogue schema this build reads.
pub const CATALOGUE_SCHEMA_VERSION: u32 = 1;

/// How a commodity is packed; each pattern has its own layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Packing {
    /// Cartons in rows and stacks, 15 mm apart.
    Cartons,
    /// Crates in rows and stacks, 15 mm apart.
    Crates,
    /// Bags in rows and stacks, 15 mm apart.
    Bags,
    /// Goods on 144 mm wooden pallets, 50 mm apart.
    Pallets,
    /// Rolls standing on end around a hollow core.
    Rolls,
    /// Crated machines (steel frame, motor block, housing, shaft) in single file.
    Machinery,
    /// Steel coils lying along the vehicle on wooden cradles.
    Coils,
    /// Steel pipes lying along the vehicle in a tight stack.
    Pipes,
    /// A heap of steel pieces, highest in the middle.
    Loose,
}

/// One material of a commodity's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// Material name in the attenuation table (e.g. `garments`, `steel`).
    pub material: String,
    /// Mass fraction of the package contents.
    pub fraction: f64,
}

/// One kind of goods: how it is declared, packed and made up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commodity {
    /// Catalogue name, unique (e.g. `garments`).
    pub name: String,
    /// Harmonized System code the manifest declares it under.
    pub hs_code: String,
    /// Description written into the manifest line.
    pub description: String,
    /// How it is packed.
    pub packing: Packing,
    /// Package size `[along, across, up]`, m. Rolls take their diameter from the first entry,
    /// pipes their outer diameter from the second, coils theirs from the third.
    pub package_size_m: [f64; 3],
    /// Materials of the contents, mass fractions summing to 1.
    pub contents: Vec<Content>,
    /// Range of the bulk density of a package, g/cm^3, drawn once per load.
    pub density_g_cm3: [f64; 2],
    /// Range of the share of the available length a load fills, drawn once per load.
    pub fill: [f64; 2],
    /// Highest stack, m.
    pub max_stack_m: f64,
}

/// The commodity catalogue: every kind of goods a load may be drawn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// Must be [`CATALOGUE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The commodities, `[[commodity]]` tables in the TOML.
    #[serde(rename = "commodity")]
    pub commodities: Vec<Commodity>,
}

impl Catalogue {
    /// The embedded catalogue.
    pub fn embedded(table: &AttenuationTable) -> Result<Self, SynthError> {
        Self::parse(COMMODITIES_TOML, Path::new("datasets/commodities.toml"), table)
    }

    /// Reads and checks a catalogue file (see [`Catalogue::parse`]): a regular file of at most
    /// [`MAX_RECIPE_BYTES`](crate::recipe::MAX_RECIPE_BYTES).
    pub fn load(path: &Path, table: &AttenuationTable) -> Result<Self, SynthError> {
        let text = nii_atr_core::io::read_text_capped(path, crate::recipe::MAX_RECIPE_BYTES)
            .map_err(|e| SynthError::File { path: path.to_path_buf(), reason: e.reason() })?;
        Self::parse(&text, path, table)
    }

    /// Parses and checks a catalogue: known materials, fractions summing to one, sane sizes.
    pub fn parse(text: &str, path: &Path, table: &AttenuationTable) -> Result<Self, SynthError> {
        let err = |reason: String| SynthError::File { path: path.to_path_buf(), reason };
        let cat: Catalogue = nii_atr_core::io::parse_toml(text).map_err(|e| err(e.to_string()))?;
        if cat.schema_version != CATALOGUE_SCHEMA_VERSION {
            return Err(err(format!(
                "schema_version {} (this build reads {CATALOGUE_SCHEMA_VERSION})",
                cat.schema_version
            )));
        }
        if cat.commodities.is_empty() {
            return Err(err("no commodities".into()));
        }
        for c in &cat.commodities {
            let bad = |what: &str| err(format!("commodity `{}`: {what}", c.name));
            if cat.commodities.iter().filter(|o| o.name == c.name).count() > 1 {
                return Err(bad("duplicate name"));
            }
            if c.contents.is_empty() {
                return Err(bad("no contents"));
            }
            let total: f64 = c.contents.iter().map(|m| m.fraction).sum();
            let positive = c.contents.iter().all(|m| m.fraction > 0.0 && m.fraction.is_finite());
            if (total - 1.0).abs() >= 1e-3 || !positive {
                return Err(bad("content fractions must be positive and sum to 1"));
            }
            for m in &c.contents {
                table.id(&m.material).map_err(|e| bad(&e.to_string()))?;
            }
            let [d0, d1] = c.density_g_cm3;
            if !(d0 > 0.0 && d1 >= d0 && d1 <= 22.0) {
                return Err(bad("density_g_cm3 must be an increasing range in (0, 22]"));
            }
            let [f0, f1] = c.fill;
            if !(f0 > 0.0 && f1 >= f0 && f1 <= 1.0) {
                return Err(bad("fill must be an increasing range in (0, 1]"));
            }
            if c.package_size_m.iter().any(|s| !(*s >= 0.01 && *s <= 12.0)) {
                return Err(bad("package_size_m entries must be in 0.01..12 m"));
            }
            if !(c.max_stack_m > 0.05 && c.max_stack_m <= 3.0) {
                return Err(bad("max_stack_m must be in 0.05..3 m"));
            }
        }
        Ok(cat)
    }

    /// The commodity called `name`.
    pub fn get(&self, name: &str) -> Option<&Commodity> {
        self.commodities.iter().find(|c| c.name == name)
    }
}

/// One package of a load: its solids and bounding box.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    /// Its solids (packaging, goods, cavities).
    pub objects: Vec<Object>,
    /// Lower corner of its bounding box, m.
    pub lo: [f64; 3],
    /// Upper corner of its bounding box, m.
    pub hi: [f64; 3],
    /// Which line of the load it belongs to (set by the caller).
    pub tag: usize,
}

impl Package {
    /// Mass of its solids, kg.
    pub fn mass_kg(&self) -> f64 {
        self.objects.iter().map(Object::mass_kg).sum()
    }

    fn intersects(&self, lo: [f64; 3], hi: [f64; 3]) -> bool {
        (0..3).all(|i| self.lo[i] < hi[i] && self.hi[i] > lo[i])
    }

    fn contains(&self, lo: [f64; 3], hi: [f64; 3]) -> bool {
        (0..3).all(|i| self.lo[i] <= lo[i] && self.hi[i] >= hi[i])
    }

    fn volume(&self) -> f64 {
        (0..3).map(|i| self.hi[i] - self.lo[i]).product()
    }
}

/// Makes room for a concealed object of `volume_m3` occupying the box `lo..hi` (m): a package that holds it
/// whole gives up that volume of its contents (the object is hidden inside it); otherwise all
/// packages it touches are taken out (the object replaces them).
pub fn make_room(packages: &mut Vec<Package>, lo: [f64; 3], hi: [f64; 3], volume_m3: f64) {
    if let Some(p) = packages.iter_mut().find(|p| p.contains(lo, hi)) {
        let keep = (1.0 - volume_m3 / p.volume()).clamp(0.0, 1.0);
        for o in &mut p.objects {
            o.density_g_cm3 *= keep;
        }
        return;
    }
    packages.retain(|p| !p.intersects(lo, hi));
}

/// Raises every package overlapping `x0..x1` along the vehicle by `dz` (cargo resting on a
/// false floor); packages that would then reach the roof are taken out.
pub fn raise_packages(packages: &mut Vec<Package>, (x0, x1): (f64, f64), dz: f64, roof_z: f64) {
    packages.retain_mut(|p| {
        if p.lo[0] >= x1 || p.hi[0] <= x0 {
            return true;
        }
        if p.hi[2] + dz > roof_z {
            return false;
        }
        p.lo[2] += dz;
        p.hi[2] += dz;
        for o in &mut p.objects {
            o.shape = o.shape.translated([0.0, 0.0, dz]);
        }
        true
    });
}

/// A uniform draw in `range[0]..range[1]`.
pub(crate) fn uniform(rng: &mut ChaCha8Rng, range: [f64; 2]) -> f64 {
    range[0] + (range[1] - range[0]) * rng.random::<f64>()
}

/// Table ids and mass fractions of a commodity's contents.
fn contents(c: &Commodity, table: &AttenuationTable) -> Result<Vec<(MaterialId, f64)>, SynthError> {
    c.contents.iter().map(|m| Ok((table.id(&m.material)?, m.fraction))).collect()
}

/// Packs `commodity` into the part `x0..x1` (m along the vehicle) of the load space, up to
/// `max_mass_kg`, in the layout of its packing pattern.
pub fn pack(
    commodity: &Commodity,
    space: &LoadSpace,
    (x0, x1): (f64, f64),
    max_mass_kg: f64,
    rng: &mut ChaCha8Rng,
    table: &AttenuationTable,
) -> Result<Vec<Package>, SynthError> {
    let mut load = Load::new(commodity, space, (x0, x1), max_mass_kg, rng, table)?;
    match commodity.packing {
        Packing::Cartons | Packing::Crates | Packing::Bags | Packing::Pallets => {
            stacked(&mut load, commodity.packing == Packing::Pallets, rng)
        }
        Packing::Rolls => rolls(&mut load, rng),
        Packing::Machinery => machinery(&mut load, rng),
        Packing::Coils => coils(&mut load, rng),
        Packing::Pipes => pipes(&mut load),
        Packing::Loose => loose(&mut load, rng),
    }
    Ok(load.into_packages())
}

/// A load being packed: where it may go, the goods' drawn bulk density and materials, and the
/// packages placed so far against the mass budget.
struct Load<'a> {
    space: &'a LoadSpace,
    /// Start of the load along the vehicle, m.
    x0: f64,
    /// End of the filled part (the drawn fill share of `x0..x1`), m.
    x_end: f64,
    /// Internal width, m.
    width: f64,
    /// Highest stack, m: the commodity's, or the load space's height less 5 cm.
    stack: f64,
    /// Drawn bulk density of the goods, g/cm^3.
    bulk: f64,
    /// Package size `[along, across, up]`, m.
    size: [f64; 3],
    /// Table ids and mass fractions of the goods.
    mix: Vec<(MaterialId, f64)>,
    steel: MaterialId,
    wood: MaterialId,
    max_mass_kg: f64,
    mass_kg: f64,
    packages: Vec<Package>,
}

impl<'a> Load<'a> {
    /// Draws the bulk density and the fill share (in that order) for a load of `commodity`.
    fn new(
        commodity: &Commodity,
        space: &'a LoadSpace,
        (x0, x1): (f64, f64),
        max_mass_kg: f64,
        rng: &mut ChaCha8Rng,
        table: &AttenuationTable,
    ) -> Result<Self, SynthError> {
        let mix = contents(commodity, table)?;
        let steel = table.id("steel")?;
        let wood = table.id("wood")?;
        let bulk = uniform(rng, commodity.density_g_cm3);
        let fill = uniform(rng, commodity.fill);
        Ok(Self {
            space,
            x0,
            x_end: x0 + (x1 - x0) * fill,
            width: 2.0 * space.half_width,
            stack: commodity.max_stack_m.min(space.roof_z - space.floor_z - 0.05),
            bulk,
            size: commodity.package_size_m,
            mix,
            steel,
            wood,
            max_mass_kg,
            mass_kg: 0.0,
            packages: Vec::new(),
        })
    }

    /// Adds `p` unless it would take the load over its mass budget; false: the load is full.
    fn push(&mut self, p: Package) -> bool {
        let m = p.mass_kg();
        if self.mass_kg + m > self.max_mass_kg {
            return false;
        }
        self.mass_kg += m;
        self.packages.push(p);
        true
    }

    /// The goods filling `shape` at `density` g/cm^3: one solid per material of the contents.
    fn mixed(&self, shape: Shape, density: f64) -> Vec<Object> {
        self.mix.iter().map(|&(id, f)| Object::new(shape, id, density * f)).collect()
    }

    /// The packages placed, less those a custom catalogue made larger than the container.
    fn into_packages(self) -> Vec<Package> {
        let space = self.space;
        let mut packages = self.packages;
        packages.retain(|p| {
            p.lo[0] >= space.x0 - 1e-6
                && p.hi[0] <= space.x1 + 1e-6
                && p.lo[1] >= -space.half_width - 0.02
                && p.hi[1] <= space.half_width + 0.02
                && p.hi[2] <= space.roof_z + 1e-6
        });
        packages
    }

    /// A carton, crate or bag filling `lo..hi` at `density` g/cm^3; with `pallet`, the goods
    /// sit on a wooden pallet in the bottom 144 mm.
    fn unit(&self, lo: [f64; 3], hi: [f64; 3], density: f64, pallet: bool) -> Package {
        let mut objects = Vec::new();
        let mut goods_lo = lo;
        if pallet {
            // Wooden pallet: 144 mm, slats and blocks about a third solid.
            objects.push(Object::new(cuboid(lo, [hi[0], hi[1], lo[2] + 0.144]), self.wood, 0.6 * 0.35));
            goods_lo[2] += 0.144;
        }
        objects.extend(self.mixed(cuboid(goods_lo, hi), density));
        Package { objects, lo, hi, tag: 0 }
    }

    /// A crated machine in `lo..hi`, centred at `yc` across: 20 mm boards, a steel base frame,
    /// housing and shaft, and a motor block whose density brings the crate to the drawn bulk
    /// density.
    fn machine(&self, lo: [f64; 3], hi: [f64; 3], yc: f64) -> Vec<Object> {
        let [sx, sy, _] = self.size;
        let (steel, wood, bulk) = (self.steel, self.wood, self.bulk);
        let h = hi[2] - lo[2];
        let c = [lo[0] + 0.5 * sx, yc, lo[2] + 0.5 * h];
        let mut objects = Vec::new();
        // Crate: 20 mm boards.
        objects.push(Object::new(Shape::Cuboid { centre: c, size: [sx, sy, h], yaw: 0.0 }, wood, 0.5));
        objects.push(Object::new(
            Shape::Cuboid { centre: c, size: [sx - 0.04, sy - 0.04, h - 0.04], yaw: 0.0 },
            wood,
            -0.5,
        ));
        // Base frame, motor block, housing and shaft; the block's density makes the
        // crate's steel reach the drawn bulk density.
        let target_kg = bulk * 1000.0 * sx * sy * h;
        let frame_kg = 2.0 * 7850.0 * (sx * 0.1 * 0.1 - sx * 0.088 * 0.088);
        for dy in [-0.3, 0.3] {
            let fc = [c[0], yc + dy * sy, lo[2] + 0.07];
            objects.push(Object::new(Shape::Cuboid { centre: fc, size: [sx - 0.1, 0.1, 0.1], yaw: 0.0 }, steel, 7.85));
            objects.push(Object::new(
                Shape::Cuboid { centre: fc, size: [sx - 0.1, 0.088, 0.088], yaw: 0.0 },
                steel,
                -7.85,
            ));
        }
        let block = [0.45 * sx, 0.5 * sy, 0.45 * h];
        let bc = [lo[0] + 0.1 + 0.5 * block[0], yc, lo[2] + 0.12 + 0.5 * block[2]];
        let housing_r = (0.25 * h).min(0.3 * sy);
        let hc = [hi[0] - 0.1 - housing_r, yc, lo[2] + 0.12 + housing_r];
        objects.push(Object::new(
            Shape::Lying { centre: hc, radius: housing_r, length: 0.6 * sy, yaw: FRAC_PI_2 },
            steel,
            7.85,
        ));
        objects.push(Object::new(
            Shape::Lying { centre: hc, radius: housing_r - 0.012, length: 0.6 * sy, yaw: FRAC_PI_2 },
            steel,
            -7.85,
        ));
        let shaft = Shape::Lying { centre: [c[0], yc, bc[2]], radius: 0.04, length: 0.8 * sx, yaw: 0.0 };
        objects.push(Object::new(shaft, steel, 7.85));
        let housing_kg = 7850.0 * PI * (housing_r.powi(2) - (housing_r - 0.012).powi(2)) * 0.6 * sy;
        let shaft_kg = 7850.0 * shaft.volume();
        let block_vol = block[0] * block[1] * block[2];
        let block_density = ((target_kg - frame_kg - housing_kg - shaft_kg) / block_vol / 1000.0).clamp(0.5, 7.85);
        objects.push(Object::new(Shape::Cuboid { centre: bc, size: block, yaw: 0.0 }, steel, block_density));
        objects
    }
}

/// Cartons, crates, bags or pallets: rows across the width, stacked up to the highest stack
/// (stacks at the back of a row often one lower), each unit's density jittered by 8 %.
fn stacked(load: &mut Load<'_>, pallet: bool, rng: &mut ChaCha8Rng) {
    let [sx, sy, sz] = load.size;
    let gap = if pallet { 0.05 } else { 0.015 };
    let ny = ((load.width + gap) / (sy + gap)).floor().max(1.0) as usize;
    let nz = ((load.stack + 1e-9) / sz).floor().max(1.0) as usize;
    let y_start = -0.5 * (ny as f64 * (sy + gap) - gap);
    let mut x = load.x0 + gap;
    while x + sx <= load.x_end + 1e-9 {
        for iy in 0..ny {
            // Stacks at the back of the load are often lower.
            let levels = if rng.random::<f64>() < 0.25 { nz.saturating_sub(1).max(1) } else { nz };
            for iz in 0..levels {
                let jitter = [0.01 * (rng.random::<f64>() - 0.5), 0.01 * (rng.random::<f64>() - 0.5)];
                let lo =
                    [x + jitter[0], y_start + iy as f64 * (sy + gap) + jitter[1], load.space.floor_z + iz as f64 * sz];
                let hi = [lo[0] + sx, lo[1] + sy, lo[2] + sz];
                let density = load.bulk * (1.0 + 0.16 * (rng.random::<f64>() - 0.5));
                if !load.push(load.unit(lo, hi, density, pallet)) {
                    return;
                }
            }
        }
        x += sx + gap;
    }
}

/// Rolls standing on end in rows and layers, each around a 50 mm hollow core.
fn rolls(load: &mut Load<'_>, rng: &mut ChaCha8Rng) {
    let [sx, _, sz] = load.size;
    let r = 0.5 * sx;
    let ny = (load.width / (2.0 * r)).floor().max(1.0) as usize;
    let nz = (load.stack / sz).floor().max(1.0) as usize;
    let y_start = -0.5 * ny as f64 * 2.0 * r;
    let mut x = load.x0 + r + 0.02;
    while x + r <= load.x_end {
        for iy in 0..ny {
            for iz in 0..nz {
                let c = [x, y_start + r * (2 * iy + 1) as f64, load.space.floor_z + (iz as f64 + 0.5) * sz];
                let shape = Shape::Upright { centre: c, radius: r, height: sz };
                let core = Shape::Upright { centre: c, radius: 0.05, height: sz };
                let density = load.bulk * (1.0 + 0.1 * (rng.random::<f64>() - 0.5));
                let mut objects = load.mixed(shape, density);
                objects.extend(load.mix.iter().map(|&(id, f)| Object::new(core, id, -density * f)));
                let lo = [c[0] - r, c[1] - r, c[2] - 0.5 * sz];
                let hi = [c[0] + r, c[1] + r, c[2] + 0.5 * sz];
                if !load.push(Package { objects, lo, hi, tag: 0 }) {
                    return;
                }
            }
        }
        x += 2.0 * r + 0.03;
    }
}

/// Crated machines in a single file along the vehicle, at random places across it.
fn machinery(load: &mut Load<'_>, rng: &mut ChaCha8Rng) {
    let [sx, sy, sz] = load.size;
    let floor_z = load.space.floor_z;
    let mut x = load.x0 + 0.05;
    while x + sx <= load.x_end {
        let yc = (rng.random::<f64>() - 0.5) * (load.width - sy).max(0.0);
        let lo = [x, yc - 0.5 * sy, floor_z];
        let hi = [x + sx, yc + 0.5 * sy, floor_z + sz.min(load.stack)];
        let objects = load.machine(lo, hi, yc);
        if !load.push(Package { objects, lo, hi, tag: 0 }) {
            break;
        }
        x += sx + 0.1 + 0.4 * rng.random::<f64>();
    }
}

/// Steel coils lying along the vehicle on wooden cradles, spaced out (at least one coil).
fn coils(load: &mut Load<'_>, rng: &mut ChaCha8Rng) {
    let [sx, sy, sz] = load.size;
    let (x0, floor_z, bulk, steel) = (load.x0, load.space.floor_z, load.bulk, load.steel);
    let r = 0.5 * sz;
    let mut x = x0 + 0.3;
    while x + sx <= load.x_end.max(x0 + sx + 0.3) {
        let c = [x + 0.5 * sx, 0.0, floor_z + 0.15 + r];
        let lo = [x, -r, floor_z];
        let hi = [x + sx, r, c[2] + r];
        let mut objects =
            vec![Object::new(cuboid([x, -0.5 * sy, floor_z], [x + sx, 0.5 * sy, floor_z + 0.15]), load.wood, 0.6)];
        objects.push(Object::new(Shape::Lying { centre: c, radius: r, length: sx, yaw: 0.0 }, steel, bulk));
        objects.push(Object::new(Shape::Lying { centre: c, radius: 0.5 * r, length: sx, yaw: 0.0 }, steel, -bulk));
        if !load.push(Package { objects, lo, hi, tag: 0 }) {
            break;
        }
        x += sx + 0.8 + 1.5 * rng.random::<f64>();
    }
}

/// Steel pipes lying along the vehicle in a tight stack; the wall is 5 % of the outer
/// diameter (at least 4 mm).
fn pipes(load: &mut Load<'_>) {
    let [sx, od, _] = load.size;
    let (x0, floor_z, bulk, steel) = (load.x0, load.space.floor_z, load.bulk, load.steel);
    let wall = (0.05 * od).max(0.004);
    let length = sx.min(load.x_end - x0 - 0.1).max(0.5);
    let ny = ((load.width * 0.95) / od).floor().max(1.0) as usize;
    let nz = (load.stack / od).floor().max(1.0) as usize;
    let mut x = x0 + 0.05;
    while x + length <= load.x_end + 1e-9 {
        for iz in 0..nz {
            for iy in 0..ny {
                let c = [
                    x + 0.5 * length,
                    -0.5 * ny as f64 * od + (iy as f64 + 0.5) * od,
                    floor_z + (iz as f64 + 0.5) * od,
                ];
                let r = 0.5 * od;
                let objects = vec![
                    Object::new(Shape::Lying { centre: c, radius: r, length, yaw: 0.0 }, steel, bulk),
                    Object::new(Shape::Lying { centre: c, radius: r - wall, length, yaw: 0.0 }, steel, -bulk),
                ];
                let lo = [x, c[1] - r, c[2] - r];
                let hi = [x + length, c[1] + r, c[2] + r];
                if !load.push(Package { objects, lo, hi, tag: 0 }) {
                    return;
                }
            }
        }
        x += length + 0.1;
    }
}

/// A heap of steel pieces (boxes and bars, turned at random) whose mean density over the
/// heap is the drawn bulk density; higher in the middle of its length.
fn loose(load: &mut Load<'_>, rng: &mut ChaCha8Rng) {
    let [sx, sy, sz] = load.size;
    let (x0, x_end, width) = (load.x0, load.x_end, load.width);
    let heap_h = load.stack * (0.6 + 0.4 * rng.random::<f64>());
    let heap_vol = (x_end - x0) * width * heap_h * 0.6;
    let mut remaining = load.bulk * 1000.0 * heap_vol;
    let mut n = 0;
    while remaining > 0.0 && n < 600 {
        n += 1;
        let size = [sx * uniform(rng, [0.3, 1.0]), sy * uniform(rng, [0.2, 1.0]), sz * uniform(rng, [0.05, 0.4])];
        let x = uniform(rng, [x0 + 0.3, x_end - 0.3]);
        let y = uniform(rng, [-0.5 * width + 0.3, 0.5 * width - 0.3]);
        // Heap profile: higher in the middle of its length.
        let u = (x - x0) / (x_end - x0).max(1e-6);
        let top = heap_h * (0.5 + 0.5 * (PI * u).sin());
        let z = load.space.floor_z + 0.5 * size[2] + uniform(rng, [0.0, (top - size[2]).max(0.0)]);
        let yaw = uniform(rng, [0.0, PI]);
        let shape = if rng.random::<f64>() < 0.7 {
            Shape::Cuboid { centre: [x, y, z], size, yaw }
        } else {
            Shape::Lying { centre: [x, y, z], radius: 0.5 * size[2], length: size[0], yaw }
        };
        let (lo, hi) = shape.bounds();
        let objects = vec![Object::new(shape, load.steel, 7.85)];
        let p = Package { objects, lo, hi, tag: 0 };
        remaining -= p.mass_kg();
        if !load.push(p) {
            break;
        }
    }
}

fn cuboid(lo: [f64; 3], hi: [f64; 3]) -> Shape {
    Shape::Cuboid {
        centre: [0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1]), 0.5 * (lo[2] + hi[2])],
        size: [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]],
        yaw: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_commodity_has_a_reference_line_covering_its_goods() {
        // The generator's catalogue and the reference are linked: each commodity's HS code
        // resolves, and its contents' main material is one of the line's classes.
        let r = nii_atr_core::verify::CommodityReference::embedded().unwrap();
        let cat = Catalogue::embedded(nii_atr_core::physics::AttenuationTable::embedded().unwrap()).unwrap();
        for c in &cat.commodities {
            let line = r.lookup(&c.hs_code).unwrap_or_else(|| panic!("{}: {} not in the reference", c.name, c.hs_code));
            let main = c.contents.iter().max_by(|a, b| a.fraction.total_cmp(&b.fraction)).unwrap();
            let metal = matches!(main.material.as_str(), "steel" | "iron" | "copper" | "brass");
            assert!(
                line.classes.iter().any(|k| (*k == nii_atr_core::preprocess::materials::MaterialClass::Metal) == metal),
                "{}: {:?}",
                c.name,
                line.classes
            );
        }
    }
    use rand::SeedableRng;

    #[test]
    fn embedded_catalogue_has_twelve_commodities_or_more() {
        let t = AttenuationTable::embedded().unwrap();
        let c = Catalogue::embedded(t).unwrap();
        assert!(c.commodities.len() >= 12);
    }

    #[test]
    fn bad_catalogues_are_rejected() {
        let t = AttenuationTable::embedded().unwrap();
        let good = COMMODITIES_TOML;
        for (from, to) in [
            ("schema_version = 1", "schema_version = 9"),
            ("material = \"garments\"", "material = \"mithril\""),
            ("density_g_cm3 = [0.15, 0.30]", "density_g_cm3 = [0.30, 0.15]"),
            ("fraction = 1.0", "fraction = 0.5"),
            ("packing = \"cartons\"", "packing = \"teleported\""),
        ] {
            let text = good.replacen(from, to, 1);
            assert!(Catalogue::parse(&text, Path::new("x.toml"), t).is_err(), "{to}");
        }
    }

    #[test]
    fn raised_packages_move_with_their_solids_and_stay_below_the_roof() {
        let t = AttenuationTable::embedded().unwrap();
        let cat = Catalogue::embedded(t).unwrap();
        let space = LoadSpace { x0: 0.08, x1: 5.9, half_width: 1.176, floor_z: 1.46, roof_z: 3.85 };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut p = pack(cat.get("garments").unwrap(), &space, (space.x0, space.x1), 28_000.0, &mut rng, t).unwrap();
        let before = p.len();
        // Garments stack 5 x 0.4 m = 2.0 m high; raised 0.5 m the top layer passes the
        // 2.39 m internal height.
        raise_packages(&mut p, (1.0, 3.0), 0.5, space.roof_z);
        assert!(p.len() < before, "the top layer over the false floor no longer fits");
        for pk in &p {
            assert!(pk.hi[2] <= space.roof_z + 1e-9);
            for o in &pk.objects {
                let (lo, hi) = o.shape.bounds();
                assert!((lo[2] - pk.lo[2]).abs() < 1e-9 && (hi[2] - pk.hi[2]).abs() < 1e-9);
            }
            if pk.hi[0] > 1.0 && pk.lo[0] < 3.0 {
                assert!(pk.lo[2] >= space.floor_z + 0.5 - 1e-9);
            }
        }
    }

    #[test]
    fn every_commodity_packs_inside_the_load_space_and_within_payload() {
        let t = AttenuationTable::embedded().unwrap();
        let cat = Catalogue::embedded(t).unwrap();
        let space = LoadSpace { x0: 0.08, x1: 12.1, half_width: 1.176, floor_z: 1.46, roof_z: 3.85 };
        for c in &cat.commodities {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let p = pack(c, &space, (space.x0, space.x1), 28_000.0, &mut rng, t).unwrap();
            assert!(!p.is_empty(), "{}", c.name);
            let mass: f64 = p.iter().map(Package::mass_kg).sum();
            assert!(mass > 0.0 && mass <= 28_000.0, "{}: {mass}", c.name);
            for pk in &p {
                assert!(pk.lo[0] >= space.x0 - 0.01 && pk.hi[0] <= space.x1 + 0.01, "{} x", c.name);
                assert!(
                    pk.lo[1] >= -space.half_width - 0.01 && pk.hi[1] <= space.half_width + 0.01,
                    "{} y {:?}",
                    c.name,
                    pk.lo
                );
                assert!(pk.lo[2] >= space.floor_z - 1e-9 && pk.hi[2] <= space.roof_z, "{} z", c.name);
            }
        }
    }
}
