//! A scene: the solid objects of one case (container steel, cargo, concealments) and the
//! image window the scanner sees.

use serde::{Deserialize, Serialize};

use super::geometry::Shape;
use nii_atr_core::physics::MaterialId;

/// One solid of one material. A negative density carves a cavity out of an enclosing solid of
/// the same material (hollow sections, pipes, shells): attenuation is linear in areal density,
/// so outer minus inner is exact when the inner shape lies inside the outer one.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Its shape and place, m.
    pub shape: Shape,
    /// Its material in the attenuation table.
    pub material: MaterialId,
    /// Density, g/cm^3; negative for a cavity.
    pub density_g_cm3: f64,
    /// Index into [`Scene::threats`] when the object belongs to a labelled threat.
    pub threat: Option<usize>,
}

impl Object {
    /// An unlabelled solid.
    pub fn new(shape: Shape, material: MaterialId, density_g_cm3: f64) -> Self {
        Self { shape, material, density_g_cm3, threat: None }
    }

    /// Mass in kg (negative for cavities).
    pub fn mass_kg(&self) -> f64 {
        self.shape.volume() * self.density_g_cm3 * 1000.0
    }
}

/// A concealed object to be labelled: its class and what the generator knows about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threat {
    /// Category name from the class list (e.g. `narcotics`, `high_z`).
    pub category: String,
    /// Material of its main body (table name).
    pub material: String,
    /// Mass of all its solids, kg.
    pub mass_kg: f64,
    /// Distance of its centre from the source-side inner wall across the container, m.
    pub depth_m: f64,
    /// Turn about the vertical axis, degrees.
    pub yaw_deg: f64,
    /// Short description of the concealment method.
    pub concealment: String,
}

/// The solids of a case plus the image window.
#[derive(Debug, Clone, Default)]
pub struct Scene {
    /// Every solid, in the order they were added (the order of the render's sums).
    pub objects: Vec<Object>,
    /// The labelled threats; [`Object::threat`] indexes into it.
    pub threats: Vec<Threat>,
    /// Start of the scan along the vehicle, m: image columns cover `x_min..x_max`.
    pub x_min: f64,
    /// End of the scan along the vehicle, m.
    pub x_max: f64,
    /// Height at the centre plane of the image's bottom edge, m.
    pub z_bottom: f64,
    /// Height at the centre plane of the image's top edge, m.
    pub z_top: f64,
}

impl Scene {
    /// Adds an unlabelled solid.
    pub fn push(&mut self, object: Object) {
        self.objects.push(object);
    }

    /// Adds a hollow solid: `outer` of the material minus `inner`.
    pub fn push_hollow(&mut self, outer: Shape, inner: Shape, material: MaterialId, density_g_cm3: f64) {
        self.objects.push(Object::new(outer, material, density_g_cm3));
        self.objects.push(Object::new(inner, material, -density_g_cm3));
    }

    /// Adds the objects of a threat and labels them all with one new threat entry.
    pub fn push_threat(&mut self, threat: Threat, objects: Vec<Object>) {
        let id = self.threats.len();
        self.threats.push(threat);
        self.objects.extend(objects.into_iter().map(|mut o| {
            o.threat = Some(id);
            o
        }));
    }

    /// Distinct materials in first-use order (the slots of the binned physics).
    pub fn materials(&self) -> Vec<MaterialId> {
        let mut out: Vec<MaterialId> = Vec::new();
        for o in &self.objects {
            if !out.contains(&o.material) {
                out.push(o.material);
            }
        }
        out
    }
}
