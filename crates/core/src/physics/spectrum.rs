//! Polychromatic X-ray sources: linac bremsstrahlung (cargo, MV) and X-ray tubes (kVp).

use serde::{Deserialize, Serialize};

use super::{AttenuationTable, PhysicsError};

/// Lowest photon energy carried in any spectrum, MeV: below this even 2 m of air and the
/// tube window remove the beam, and the table starts at 10 keV.
pub const SPECTRUM_MIN_MEV: f64 = 0.02;

/// Points of the fine energy grid used for exact spectral sums.
const FINE_POINTS: usize = 600;

/// One filter layer in the beam: table material and thickness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Material name in the attenuation table.
    pub material: String,
    /// Thickness along the beam, cm.
    pub thickness_cm: f64,
}

impl Filter {
    /// `thickness_cm` of table material `material`.
    pub fn new(material: &str, thickness_cm: f64) -> Self {
        Self { material: material.to_string(), thickness_cm }
    }
}

/// An X-ray source. Both kinds use Kramers' thick-target law for the photon number spectrum,
/// `dN/dE ∝ (E0 - E) / E`, then attenuate it by the target's own material (the mean depth at
/// which photons are made) and by the filtration layers.
///
/// Approximations (stated in `docs/synthetic-data.md`): Kramers is angle-integrated, so a linac's
/// forward spectrum comes out somewhat softer than a Monte Carlo one (mean energy about E0/3
/// after filtration); tungsten K lines of tubes are left out; the electron beam is
/// monoenergetic at the endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// Electron linac on a tungsten target, endpoint in MeV (MV): 4, 6, 9 in cargo scanners.
    Linac {
        /// Electron beam energy and so the spectrum's endpoint, MeV.
        endpoint_mev: f64,
        /// Tungsten the photons cross on their way out of the target, cm.
        target_cm: f64,
        /// Layers between the target and the object (window, collimator, air).
        filtration: Vec<Filter>,
    },
    /// A single energy (synchrotron-like or isotope line): the Beer-Lambert limit, for
    /// checks and for comparing against polychromatic beams.
    Mono {
        /// The photon energy, MeV.
        energy_mev: f64,
    },
    /// X-ray tube with a tungsten anode, peak voltage in kV.
    Tube {
        /// Peak tube voltage, kV (the spectrum's endpoint in keV).
        kvp: f64,
        /// Effective anode self-filtration (heel), cm of tungsten.
        anode_cm: f64,
        /// Layers between the anode and the object (window, added filters, air).
        filtration: Vec<Filter>,
    },
}

impl Source {
    /// A cargo linac: 1 mm W target path, 3 mm steel (window, collimator face, housing),
    /// 4 m of air to the detector.
    pub fn linac(endpoint_mev: f64) -> Self {
        Source::Linac {
            endpoint_mev,
            target_cm: 0.1,
            filtration: vec![Filter::new("steel", 0.3), Filter::new("air", 400.0)],
        }
    }

    /// A tube with 2.5 mm Al inherent + added filtration, `extra` on top (e.g. Cu for the
    /// high-energy beam of a dual-kVp pair) and 2 m of air.
    pub fn tube(kvp: f64, extra: &[Filter]) -> Self {
        let mut filtration = vec![Filter::new("aluminium", 0.25)];
        filtration.extend_from_slice(extra);
        filtration.push(Filter::new("air", 200.0));
        Source::Tube { kvp, anode_cm: 0.0008, filtration }
    }

    /// Endpoint energy, MeV.
    pub fn endpoint_mev(&self) -> f64 {
        match self {
            Source::Linac { endpoint_mev, .. } => *endpoint_mev,
            Source::Tube { kvp, .. } => kvp / 1000.0,
            Source::Mono { energy_mev } => *energy_mev,
        }
    }

    /// Short label, e.g. `6 MV` or `140 kVp`.
    pub fn label(&self) -> String {
        match self {
            Source::Linac { endpoint_mev, .. } => format!("{endpoint_mev} MV"),
            Source::Tube { kvp, .. } => format!("{kvp} kVp"),
            Source::Mono { energy_mev } => format!("{energy_mev} MeV"),
        }
    }

    /// The filtered photon spectrum on a fine log-spaced grid, normalised to one photon.
    pub fn spectrum(&self, table: &AttenuationTable) -> Result<Spectrum, PhysicsError> {
        let (e0, target, filtration) = match self {
            Source::Linac { endpoint_mev, target_cm, filtration } => (*endpoint_mev, *target_cm, filtration),
            Source::Tube { kvp, anode_cm, filtration } => (*kvp / 1000.0, *anode_cm, filtration),
            Source::Mono { energy_mev } => {
                let (lo, hi) = table.energy_range_mev();
                if !(energy_mev.is_finite() && *energy_mev >= lo && *energy_mev <= hi) {
                    return Err(PhysicsError::EnergyOutOfRange { energy_mev: *energy_mev, min_mev: lo, max_mev: hi });
                }
                return Ok(Spectrum { energies_mev: vec![*energy_mev], photons: vec![1.0], endpoint_mev: *energy_mev });
            }
        };
        let (_, table_max) = table.energy_range_mev();
        if !(e0.is_finite() && e0 > 2.0 * SPECTRUM_MIN_MEV && e0 <= table_max) {
            return Err(PhysicsError::Parameter {
                name: "source endpoint_mev",
                value: e0,
                reason: "must lie between 40 keV and the table's top energy",
            });
        }
        let mut layers = vec![(table.id("tungsten")?, target)];
        for f in filtration {
            layers.push((table.id(&f.material)?, f.thickness_cm));
        }
        for &(_, t) in &layers {
            if !(t.is_finite() && (0.0..=1e4).contains(&t)) {
                return Err(PhysicsError::Parameter {
                    name: "filter thickness_cm",
                    value: t,
                    reason: "must be in [0, 10000] cm",
                });
            }
        }
        let ln_lo = SPECTRUM_MIN_MEV.ln();
        let step = (e0.ln() - ln_lo) / FINE_POINTS as f64;
        let mut energies = Vec::with_capacity(FINE_POINTS);
        let mut photons = Vec::with_capacity(FINE_POINTS);
        for j in 0..FINE_POINTS {
            let (lo, hi) = ((ln_lo + step * j as f64).exp(), (ln_lo + step * (j + 1) as f64).exp());
            let e = (lo * hi).sqrt();
            let mut n = (e0 - e) / e * (hi - lo);
            for &(id, t) in &layers {
                let rho = table.info(id).density_g_cm3;
                n *= (-table.mu_rho(id, e)? * rho * t).exp();
            }
            energies.push(e);
            photons.push(n);
        }
        let total: f64 = photons.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return Err(PhysicsError::Parameter { name: "filtration", value: total, reason: "removes the whole beam" });
        }
        photons.iter_mut().for_each(|n| *n /= total);
        Ok(Spectrum { energies_mev: energies, photons, endpoint_mev: e0 })
    }
}

/// A photon spectrum: fraction of photons at each fine-grid energy (sums to one).
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrum {
    /// The fine energy grid, MeV, increasing.
    pub energies_mev: Vec<f64>,
    /// Fraction of the photons at each energy.
    pub photons: Vec<f64>,
    /// Highest photon energy, MeV.
    pub endpoint_mev: f64,
}

impl Spectrum {
    /// Mean photon energy, MeV.
    pub fn mean_energy_mev(&self) -> f64 {
        self.energies_mev.iter().zip(&self.photons).map(|(e, n)| e * n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filtration_hardens_and_spectra_stay_below_the_endpoint() {
        let t = AttenuationTable::embedded().unwrap();
        let bare = Source::Linac { endpoint_mev: 6.0, target_cm: 0.0, filtration: vec![] }.spectrum(t).unwrap();
        let filtered = Source::linac(6.0).spectrum(t).unwrap();
        assert!(filtered.mean_energy_mev() > 1.5 * bare.mean_energy_mev());
        assert!(filtered.energies_mev.iter().all(|&e| e < 6.0));
        // Kramers after filtration: mean photon energy of a 6 MV beam between 1 and 2.5 MeV.
        let m = filtered.mean_energy_mev();
        assert!((1.0..2.5).contains(&m), "{m}");
        let tube = Source::tube(140.0, &[]).spectrum(t).unwrap();
        let m = tube.mean_energy_mev();
        assert!((0.05..0.08).contains(&m), "140 kVp mean {m}");
    }

    #[test]
    fn bad_sources_are_rejected() {
        let t = AttenuationTable::embedded().unwrap();
        assert!(Source::linac(f64::NAN).spectrum(t).is_err());
        assert!(Source::linac(50.0).spectrum(t).is_err());
        assert!(Source::tube(120.0, &[Filter::new("unobtainium", 0.1)]).spectrum(t).is_err());
        assert!(Source::tube(120.0, &[Filter::new("lead", 1e3)]).spectrum(t).is_err());
        assert!(Source::tube(120.0, &[Filter::new("lead", -1.0)]).spectrum(t).is_err());
    }
}
