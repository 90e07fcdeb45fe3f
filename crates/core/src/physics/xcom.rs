//! The XCOM-derived attenuation table of the project's materials (mixture rule over elements).

use std::collections::HashMap;
use std::sync::OnceLock;

use super::PhysicsError;

const XCOM_CSV: &str = include_str!("../../../../datasets/physics/xcom_materials.csv");
const MATERIALS_CSV: &str = include_str!("../../../../datasets/physics/materials.csv");

/// Index of a material in an [`AttenuationTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MaterialId(pub u16);

/// Partial mass attenuation coefficients at one energy, cm^2/g.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrossSections {
    /// All interactions, coherent scattering included.
    pub total: f64,
    /// Photoelectric absorption.
    pub photoelectric: f64,
    /// Incoherent (Compton) scattering.
    pub incoherent: f64,
    /// Pair production, nuclear and electron field.
    pub pair: f64,
}

/// Name, nominal density and composition of a table material.
#[derive(Debug, Clone)]
pub struct MaterialInfo {
    /// Table name (e.g. `steel`, `cellulose`, `cdwo4`).
    pub name: String,
    /// Nominal density, g/cm^3.
    pub density_g_cm3: f64,
    /// Elemental composition by mass, as given in `materials.csv`.
    pub composition: String,
    /// What the material stands for.
    pub description: String,
    energies_mev: Vec<f64>,
    sections: Vec<CrossSections>,
}

/// Mass attenuation coefficients of the project's materials, log-log interpolated between
/// XCOM grid points (edges kept as point pairs, so steps stay sharp).
#[derive(Debug, Clone)]
pub struct AttenuationTable {
    materials: Vec<MaterialInfo>,
    by_name: HashMap<String, MaterialId>,
}

static EMBEDDED: OnceLock<Result<AttenuationTable, PhysicsError>> = OnceLock::new();

impl AttenuationTable {
    /// The table compiled into the binary.
    pub fn embedded() -> Result<&'static AttenuationTable, PhysicsError> {
        EMBEDDED.get_or_init(|| AttenuationTable::parse(XCOM_CSV, MATERIALS_CSV)).as_ref().map_err(Clone::clone)
    }

    /// Parses the two CSV files written by `datasets/tools/derive_xcom.py`.
    pub fn parse(xcom_csv: &str, materials_csv: &str) -> Result<Self, PhysicsError> {
        let table_err =
            |table: &str, line: usize, reason: String| PhysicsError::Table { table: table.to_string(), line, reason };
        let mut materials: Vec<MaterialInfo> = Vec::new();
        let mut by_name = HashMap::new();
        for (idx, line) in data_lines(materials_csv, "material,density_g_cm3") {
            let (name, rest) =
                line.split_once(',').ok_or_else(|| table_err("materials.csv", idx, "missing columns".into()))?;
            let mut parts = rest.splitn(3, ',');
            let density: f64 = parts
                .next()
                .and_then(|d| d.parse().ok())
                .filter(|d: &f64| d.is_finite() && *d > 0.0)
                .ok_or_else(|| table_err("materials.csv", idx, "bad density".into()))?;
            let composition = parts.next().unwrap_or_default().to_string();
            let description = parts.next().unwrap_or_default().trim_matches('"').to_string();
            let id = MaterialId(
                u16::try_from(materials.len())
                    .map_err(|_| table_err("materials.csv", idx, "too many materials".into()))?,
            );
            if by_name.insert(name.to_string(), id).is_some() {
                return Err(table_err("materials.csv", idx, format!("duplicate `{name}`")));
            }
            materials.push(MaterialInfo {
                name: name.to_string(),
                density_g_cm3: density,
                composition,
                description,
                energies_mev: Vec::new(),
                sections: Vec::new(),
            });
        }
        for (idx, line) in data_lines(xcom_csv, "material,energy_MeV") {
            let cols: Vec<&str> = line.split(',').collect();
            if cols.len() != 6 {
                return Err(table_err("xcom_materials.csv", idx, "expected 6 columns".into()));
            }
            let id = *by_name.get(cols[0]).ok_or_else(|| {
                table_err("xcom_materials.csv", idx, format!("material `{}` not in materials.csv", cols[0]))
            })?;
            let mut v = [0.0f64; 5];
            for (slot, text) in v.iter_mut().zip(&cols[1..]) {
                *slot = text
                    .parse()
                    .ok()
                    .filter(|x: &f64| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| table_err("xcom_materials.csv", idx, format!("bad number `{text}`")))?;
            }
            let m = &mut materials[usize::from(id.0)];
            if m.energies_mev.last().is_some_and(|&last| v[0] <= last) || v[0] <= 0.0 || v[1] <= 0.0 {
                return Err(table_err("xcom_materials.csv", idx, "energies must rise and totals be positive".into()));
            }
            m.energies_mev.push(v[0]);
            m.sections.push(CrossSections { total: v[1], photoelectric: v[2], incoherent: v[3], pair: v[4] });
        }
        if let Some(m) = materials.iter().find(|m| m.energies_mev.len() < 2) {
            return Err(table_err("xcom_materials.csv", 0, format!("material `{}` has no energy grid", m.name)));
        }
        Ok(Self { materials, by_name })
    }

    /// Looks a material up by its table name (e.g. `"iron"`, `"cocaine_hcl"`).
    pub fn id(&self, name: &str) -> Result<MaterialId, PhysicsError> {
        self.by_name.get(name).copied().ok_or_else(|| PhysicsError::UnknownMaterial(name.to_string()))
    }

    /// Name, density and composition of material `id`.
    pub fn info(&self, id: MaterialId) -> &MaterialInfo {
        &self.materials[usize::from(id.0)]
    }

    /// Every material of the table, in table order.
    pub fn materials(&self) -> impl Iterator<Item = (MaterialId, &MaterialInfo)> {
        self.materials.iter().enumerate().map(|(i, m)| (MaterialId(i as u16), m))
    }

    /// Common energy range covered by every material, MeV.
    pub fn energy_range_mev(&self) -> (f64, f64) {
        self.materials.iter().fold((0.0f64, f64::INFINITY), |(lo, hi), m| {
            (lo.max(m.energies_mev[0]), hi.min(m.energies_mev[m.energies_mev.len() - 1]))
        })
    }

    /// Total mass attenuation coefficient (with coherent scattering), cm^2/g.
    pub fn mu_rho(&self, id: MaterialId, energy_mev: f64) -> Result<f64, PhysicsError> {
        self.cross_sections(id, energy_mev).map(|s| s.total)
    }

    /// All partial coefficients at `energy_mev`, log-log interpolated (linear where a side is
    /// zero, i.e. pair production next to its threshold).
    pub fn cross_sections(&self, id: MaterialId, energy_mev: f64) -> Result<CrossSections, PhysicsError> {
        let m = &self.materials[usize::from(id.0)];
        let (lo, hi) = (m.energies_mev[0], m.energies_mev[m.energies_mev.len() - 1]);
        if !(energy_mev >= lo && energy_mev <= hi) {
            return Err(PhysicsError::EnergyOutOfRange { energy_mev, min_mev: lo, max_mev: hi });
        }
        // First grid point above the energy; at an edge pair the upper side wins at equality.
        let i = m.energies_mev.partition_point(|&e| e <= energy_mev).clamp(1, m.energies_mev.len() - 1);
        let (e0, e1) = (m.energies_mev[i - 1], m.energies_mev[i]);
        let (s0, s1) = (m.sections[i - 1], m.sections[i]);
        if energy_mev == e1 {
            return Ok(s1);
        }
        let t = (energy_mev / e0).ln() / (e1 / e0).ln();
        let f = |a: f64, b: f64| {
            if a > 0.0 && b > 0.0 {
                (a.ln() + t * (b.ln() - a.ln())).exp()
            } else {
                a + (b - a) * (energy_mev - e0) / (e1 - e0)
            }
        };
        Ok(CrossSections {
            total: f(s0.total, s1.total),
            photoelectric: f(s0.photoelectric, s1.photoelectric),
            incoherent: f(s0.incoherent, s1.incoherent),
            pair: f(s0.pair, s1.pair),
        })
    }
}

/// Non-comment data lines after the header starting with `header_prefix`, 1-based line numbers.
fn data_lines<'a>(text: &'a str, header_prefix: &'a str) -> impl Iterator<Item = (usize, &'a str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(move |(_, l)| !l.is_empty() && !l.starts_with('#') && !l.starts_with(header_prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_parses_with_all_materials() {
        let t = AttenuationTable::embedded().unwrap();
        for name in ["air", "water", "iron", "lead", "tungsten", "cdwo4", "cocaine_hcl", "ivory"] {
            t.id(name).unwrap();
        }
        let (lo, hi) = t.energy_range_mev();
        assert!(lo <= 0.02 && hi >= 9.0, "range {lo}..{hi}");
    }

    #[test]
    fn unknown_material_is_a_typed_error() {
        let t = AttenuationTable::embedded().unwrap();
        assert_eq!(t.id("kryptonite"), Err(PhysicsError::UnknownMaterial("kryptonite".into())));
    }

    #[test]
    fn lead_k_edge_is_a_sharp_step() {
        // Pb K edge at 88.0045 keV: XCOM's photoelectric takes the total up by a factor of about 4.
        let t = AttenuationTable::embedded().unwrap();
        let pb = t.id("lead").unwrap();
        let below = t.mu_rho(pb, 0.0875).unwrap();
        let above = t.mu_rho(pb, 0.0885).unwrap();
        assert!(above / below > 3.5, "{below} -> {above}");
    }

    #[test]
    fn corrupt_tables_are_rejected_with_the_line() {
        let mats = "material,density_g_cm3,composition,description\nx,1.0,H:1,\"x\"\n";
        let bad = "material,energy_MeV,total_cm2g,photoelectric_cm2g,incoherent_cm2g,pair_cm2g\nx,0.1,NaN,0,0,0\n";
        match AttenuationTable::parse(bad, mats) {
            Err(PhysicsError::Table { line: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
        let falling = "x,0.2,1,0,0,0\nx,0.1,1,0,0,0\n";
        assert!(AttenuationTable::parse(falling, mats).is_err());
        assert!(AttenuationTable::parse("y,0.1,1,0,0,0\n", mats).is_err());
        assert!(AttenuationTable::parse("", "x,-1,H:1,\"\"\n").is_err());
    }
}
