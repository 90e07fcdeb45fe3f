//! The four manifest checks. Each returns passed, flagged (with evidence: numbers, regions,
//! the declared line it contradicts) or skipped with the reason.

use serde::{Deserialize, Serialize};

use super::VerifyConfig;
use super::measure::{CargoMeasures, MIX_CLASSES, Slice};
use super::reference::CommodityReference;
use crate::preprocess::materials::MaterialClass;
use crate::scan::Manifest;

/// Most gross mass a manifest line or a container may declare, kg: ISO 668's 30,480 kg
/// maximum gross plus margin for heavier special containers.
pub const MAX_DECLARED_KG: f64 = 40_000.0;

/// The four manifest checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// The estimated load mass against the declared gross mass.
    WeightMismatch,
    /// The measured material mix and density against the declared goods' reference.
    CommodityMismatch,
    /// A part of the load unlike the rest, that the declaration does not cover.
    UndeclaredGoods,
    /// A container declared empty that holds load.
    NotEmpty,
}

impl CheckKind {
    /// Every check, in report order.
    pub const ALL: [CheckKind; 4] =
        [CheckKind::WeightMismatch, CheckKind::CommodityMismatch, CheckKind::UndeclaredGoods, CheckKind::NotEmpty];

    /// The snake_case name used in reports and findings.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::WeightMismatch => "weight_mismatch",
            CheckKind::CommodityMismatch => "commodity_mismatch",
            CheckKind::UndeclaredGoods => "undeclared_goods",
            CheckKind::NotEmpty => "not_empty",
        }
    }
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The load agrees with the declaration.
    Passed,
    /// The load contradicts the declaration.
    Flagged,
    /// The check could not be made (no manifest, no mass, unknown HS code, ...).
    Skipped,
}

/// A part of the load that a check points at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionEvidence {
    /// Pixel ranges, half-open.
    pub columns: [usize; 2],
    /// Rows of the cargo region.
    pub rows: [usize; 2],
    /// Start along the cargo region from its front, m.
    pub from_m: f64,
    /// End along the cargo region from its front, m.
    pub to_m: f64,
    /// Estimated mass of the part, kg.
    pub mass_kg: f64,
    /// Apparent density of the part, g/cm^3.
    pub density_g_cm3: f64,
    /// The material class with the most mass in the part.
    pub dominant_class: &'static str,
}

/// One check's outcome, reason and evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// Which check.
    pub check: CheckKind,
    /// Passed, flagged or skipped.
    pub outcome: Outcome,
    /// What was compared and why it passed, was flagged or skipped, with the numbers.
    pub reason: String,
    /// Index of the manifest line the finding contradicts, when it is one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_line: Option<usize>,
    /// HS code of that line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_hs_code: Option<String>,
    /// Declared gross mass the check compared against, kg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_kg: Option<f64>,
    /// Estimated load mass, kg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_kg: Option<f64>,
    /// How far past its threshold the measure is (1 = at the threshold); 0 when skipped.
    pub strength: f64,
    /// The parts of the load the check points at.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionEvidence>,
}

impl CheckResult {
    fn new(check: CheckKind, outcome: Outcome, reason: String) -> Self {
        Self {
            check,
            outcome,
            reason,
            declared_line: None,
            declared_hs_code: None,
            declared_kg: None,
            estimated_kg: None,
            strength: 0.0,
            regions: Vec::new(),
        }
    }

    /// Check `check` skipped for `reason`, with no numbers or evidence.
    pub fn skipped(check: CheckKind, reason: impl Into<String>) -> Self {
        Self::new(check, Outcome::Skipped, reason.into())
    }
}

fn region_of(m: &CargoMeasures, slices: &[&Slice]) -> Option<RegionEvidence> {
    let (first, last) = (slices.first()?, slices.last()?);
    let mass: f64 = slices.iter().map(|s| s.mass_kg).sum();
    let density = occupied_density(slices);
    let (mix, _) = mass_weighted_mix(slices);
    let dom = (0..4).max_by(|&a, &b| mix[a].total_cmp(&mix[b])).unwrap_or(0);
    let end_m = last.start_m + (last.columns[1] - last.columns[0]) as f64 * slice_step_m(m);
    Some(RegionEvidence {
        columns: [first.columns[0], last.columns[1]],
        rows: m.region.rows,
        from_m: first.start_m,
        to_m: end_m,
        mass_kg: mass,
        density_g_cm3: density,
        dominant_class: MIX_CLASSES[dom].name(),
    })
}

/// Metres per column, from the slices' own positions.
fn slice_step_m(m: &CargoMeasures) -> f64 {
    match m.slices.as_slice() {
        [a, b, ..] => (b.start_m - a.start_m) / (a.columns[1] - a.columns[0]).max(1) as f64,
        _ => 0.0,
    }
}

/// Groups consecutive slices (by index) that satisfy `pick` into regions.
fn regions_where(m: &CargoMeasures, pick: impl Fn(&Slice) -> bool) -> Vec<RegionEvidence> {
    let mut out = Vec::new();
    let mut run: Vec<&Slice> = Vec::new();
    for s in &m.slices {
        if pick(s) {
            run.push(s);
        } else if !run.is_empty() {
            out.extend(region_of(m, &run));
            run.clear();
        }
    }
    out.extend(region_of(m, &run));
    out
}

pub(super) fn run(
    manifest: Option<&Manifest>,
    measures: Option<&CargoMeasures>,
    measure_error: Option<&str>,
    reference: &CommodityReference,
    cfg: &VerifyConfig,
) -> Vec<CheckResult> {
    let Some(manifest) = manifest else {
        return CheckKind::ALL.map(|k| CheckResult::skipped(k, "the scan descriptor carries no manifest")).to_vec();
    };
    let Some(m) = measures else {
        let why = format!("the load could not be measured: {}", measure_error.unwrap_or("unknown reason"));
        return CheckKind::ALL.map(|k| CheckResult::skipped(k, why.clone())).to_vec();
    };
    let mut out = vec![not_empty(manifest, m, cfg)];
    let goods_skip = if manifest.declared_empty {
        Some("the container is declared empty (see not_empty)".to_string())
    } else if manifest.goods.is_empty() {
        Some("the manifest lists no goods and does not declare the container empty".to_string())
    } else {
        None
    };
    match goods_skip {
        Some(why) => {
            for k in [CheckKind::WeightMismatch, CheckKind::CommodityMismatch, CheckKind::UndeclaredGoods] {
                out.push(CheckResult::skipped(k, why.clone()));
            }
        }
        None => {
            out.push(weight(manifest, m, cfg));
            out.push(commodity(manifest, m, reference, cfg));
            out.push(undeclared(manifest, m, reference, cfg));
        }
    }
    out.sort_by_key(|c| c.check);
    out
}

fn not_empty(manifest: &Manifest, m: &CargoMeasures, cfg: &VerifyConfig) -> CheckResult {
    let kind = CheckKind::NotEmpty;
    if !manifest.declared_empty {
        return CheckResult::skipped(kind, "the container is not declared empty");
    }
    let loaded = regions_where(m, |s| s.occupied >= cfg.loaded_slice_occupancy);
    let mut r = if m.mass_kg > cfg.empty_max_kg {
        let mut r = CheckResult::new(
            kind,
            Outcome::Flagged,
            format!(
                "declared empty, but holds an estimated {:.0} kg beyond the container's own structure \
                 (threshold {:.0} kg), over {:.0} % of its length",
                m.mass_kg,
                cfg.empty_max_kg,
                100.0 * m.length_fill
            ),
        );
        r.regions = loaded;
        r
    } else {
        CheckResult::new(
            kind,
            Outcome::Passed,
            format!("declared empty; estimated load {:.0} kg, within {:.0} kg of empty", m.mass_kg, cfg.empty_max_kg),
        )
    };
    r.estimated_kg = Some(m.mass_kg);
    r.declared_kg = Some(0.0);
    r.strength = m.mass_kg / cfg.empty_max_kg.max(1.0);
    if !manifest.goods.is_empty() {
        r.reason.push_str(&format!(" (the manifest also lists {} goods lines)", manifest.goods.len()));
    }
    r
}

fn weight(manifest: &Manifest, m: &CargoMeasures, cfg: &VerifyConfig) -> CheckResult {
    let kind = CheckKind::WeightMismatch;
    let mut declared = 0.0;
    for (i, line) in manifest.goods.iter().enumerate() {
        let Some(kg) = line.gross_mass_kg else {
            return CheckResult::skipped(kind, format!("manifest line {i} ({}) has no gross mass", line.hs_code));
        };
        if !kg.is_finite() || kg <= 0.0 {
            return CheckResult::skipped(
                kind,
                format!("manifest line {i} ({}) declares a gross mass of {kg} kg, not a positive mass", line.hs_code),
            );
        }
        if kg > MAX_DECLARED_KG {
            return CheckResult::skipped(
                kind,
                format!(
                    "manifest line {i} ({}) declares {kg:.0} kg, more than any container carries ({MAX_DECLARED_KG:.0} kg)",
                    line.hs_code
                ),
            );
        }
        declared += kg;
    }
    if declared > MAX_DECLARED_KG {
        return CheckResult::skipped(
            kind,
            format!("the manifest declares {declared:.0} kg in all, more than any container carries"),
        );
    }
    let est = m.mass_kg;
    let allowed = cfg.weight_tolerance * declared + cfg.weight_slack_kg;
    let diff = est - declared;
    let lower_bound = m.impenetrable_fraction > 0.05;
    let mut r = if diff > allowed {
        CheckResult::new(
            kind,
            Outcome::Flagged,
            format!(
                "estimated {est:.0} kg, {:.0} % above the declared {declared:.0} kg (tolerance {:.0} % + {:.0} kg)",
                100.0 * diff / declared,
                100.0 * cfg.weight_tolerance,
                cfg.weight_slack_kg
            ),
        )
    } else if -diff > allowed && !lower_bound {
        CheckResult::new(
            kind,
            Outcome::Flagged,
            format!(
                "estimated {est:.0} kg, {:.0} % below the declared {declared:.0} kg (tolerance {:.0} % + {:.0} kg)",
                -100.0 * diff / declared,
                100.0 * cfg.weight_tolerance,
                cfg.weight_slack_kg
            ),
        )
    } else {
        let note = if lower_bound && -diff > allowed {
            format!(
                "; {:.0} % of the load is impenetrable, so the estimate is a lower bound",
                100.0 * m.impenetrable_fraction
            )
        } else {
            String::new()
        };
        CheckResult::new(
            kind,
            Outcome::Passed,
            format!("estimated {est:.0} kg against the declared {declared:.0} kg, within {allowed:.0} kg{note}"),
        )
    };
    if manifest.goods.len() == 1 {
        r.declared_line = Some(0);
        r.declared_hs_code = Some(manifest.goods[0].hs_code.clone());
    }
    r.declared_kg = Some(declared);
    r.estimated_kg = Some(est);
    r.strength = diff.abs() / allowed.max(1.0);
    r
}

/// Classes and density range the declared lines allow, or why they cannot be looked up.
fn expected(
    manifest: &Manifest,
    reference: &CommodityReference,
) -> Result<(Vec<MaterialClass>, f64, [f64; 2]), String> {
    let mut classes = Vec::new();
    let mut share = 1.0f64;
    let mut range = [f64::INFINITY, 0.0f64];
    for (i, line) in manifest.goods.iter().enumerate() {
        let Some(r) = reference.lookup(&line.hs_code) else {
            return Err(format!("HS code `{}` (manifest line {i}) is not in the commodity reference", line.hs_code));
        };
        for c in &r.classes {
            if !classes.contains(c) {
                classes.push(*c);
            }
        }
        share = share.min(r.min_class_share);
        range = [range[0].min(r.density_g_cm3[0]), range[1].max(r.density_g_cm3[1])];
    }
    Ok((classes, share, range))
}

fn class_names(classes: &[MaterialClass]) -> String {
    classes.iter().map(|c| c.name()).collect::<Vec<_>>().join("/")
}

fn commodity(
    manifest: &Manifest,
    m: &CargoMeasures,
    reference: &CommodityReference,
    cfg: &VerifyConfig,
) -> CheckResult {
    let kind = CheckKind::CommodityMismatch;
    let (classes, min_share, [d0, d1]) = match expected(manifest, reference) {
        Ok(e) => e,
        Err(why) => return CheckResult::skipped(kind, why),
    };
    if m.mass_kg <= cfg.empty_max_kg {
        return CheckResult::skipped(
            kind,
            format!("too little load to judge its material ({:.0} kg estimated)", m.mass_kg),
        );
    }
    let in_class =
        |mix: &[f64; 4]| -> f64 { (0..4).filter(|&k| classes.contains(&MIX_CLASSES[k])).map(|k| mix[k]).sum() };
    // The whole load (occupancy-weighted density, mass-weighted mix): medians over slices were
    // tried and are noisier (sparse slices between coils, machinery crates).
    let (share, density) = (in_class(&m.mix_by_mass), m.density_g_cm3);
    let (lo, hi) = (d0 / cfg.density_margin, d1 * cfg.density_margin);
    let class_bad = share < min_share;
    let density_bad = !(lo..=hi).contains(&density);
    let expected_txt = format!(
        "declared goods are {} (at least {:.0} % of the mass) at {d0:.2}-{d1:.2} g/cm3",
        class_names(&classes),
        100.0 * min_share
    );
    let measured_txt = format!(
        "measured mix organic {:.0} % / mixed {:.0} % / inorganic {:.0} % / metal {:.0} % by mass, apparent density \
         {density:.2} g/cm3",
        100.0 * m.mix_by_mass[0],
        100.0 * m.mix_by_mass[1],
        100.0 * m.mix_by_mass[2],
        100.0 * m.mix_by_mass[3]
    );
    let mut r = if class_bad || density_bad {
        let mut why = Vec::new();
        if class_bad {
            why.push(format!("only {:.0} % of the mass is {}", 100.0 * share, class_names(&classes)));
        }
        if density_bad {
            why.push(format!("density {density:.2} g/cm3 outside {lo:.2}-{hi:.2}"));
        }
        let mut r =
            CheckResult::new(kind, Outcome::Flagged, format!("{}: {expected_txt}; {measured_txt}", why.join(", ")));
        r.regions = regions_where(m, |s| {
            s.occupied >= cfg.loaded_slice_occupancy
                && (!classes.contains(&s.dominant()) || !(lo..=hi).contains(&s.density_g_cm3))
        });
        r
    } else {
        CheckResult::new(kind, Outcome::Passed, format!("{expected_txt}; {measured_txt}"))
    };
    if manifest.goods.len() == 1 {
        r.declared_line = Some(0);
        r.declared_hs_code = Some(manifest.goods[0].hs_code.clone());
    }
    let class_strength = if share > 0.0 { min_share / share } else { 10.0 };
    let density_strength = if density > hi {
        density / hi
    } else if density > 0.0 {
        lo / density
    } else {
        10.0
    };
    r.strength = class_strength.max(density_strength);
    r
}

/// Mass-weighted mix and occupancy-weighted density of a run of slices.
fn features(slices: &[&Slice]) -> ([f64; 4], f64) {
    let (mut mix, total) = mass_weighted_mix(slices);
    if total > 0.0 {
        mix.iter_mut().for_each(|v| *v /= total);
    }
    (mix, occupied_density(slices))
}

/// The slices' class mixes summed with their masses as weights (negative masses count 0), and
/// the sum of those weights, kg.
fn mass_weighted_mix(slices: &[&Slice]) -> ([f64; 4], f64) {
    let mut mix = [0.0; 4];
    let mut total = 0.0;
    for s in slices {
        let w = s.mass_kg.max(0.0);
        total += w;
        for (acc, v) in mix.iter_mut().zip(&s.mix) {
            *acc += v * w;
        }
    }
    (mix, total)
}

/// Apparent density of a run of slices, each weighted by its occupied share, g/cm^3; 0 when
/// none holds load.
fn occupied_density(slices: &[&Slice]) -> f64 {
    let occ: f64 = slices.iter().map(|s| s.occupied).sum();
    if occ > 0.0 { slices.iter().map(|s| s.density_g_cm3 * s.occupied).sum::<f64>() / occ } else { 0.0 }
}

fn undeclared(
    manifest: &Manifest,
    m: &CargoMeasures,
    reference: &CommodityReference,
    cfg: &VerifyConfig,
) -> CheckResult {
    let kind = CheckKind::UndeclaredGoods;
    let loaded: Vec<&Slice> = m.slices.iter().filter(|s| s.occupied >= cfg.loaded_slice_occupancy).collect();
    let min_slices = (cfg.undeclared_min_length_m / cfg.slice_m).ceil() as usize;
    if loaded.len() < 2 * min_slices {
        return CheckResult::new(
            kind,
            Outcome::Passed,
            format!(
                "the load fills {:.1} m: too short to hold two parts of {:.1} m",
                loaded.len() as f64 * cfg.slice_m,
                cfg.undeclared_min_length_m
            ),
        );
    }
    let Some((score, split, ratio, dist)) = most_different_split(&loaded, min_slices, cfg) else {
        return CheckResult::new(kind, Outcome::Passed, "no split of the load to compare".into());
    };
    let (front, back) = (&loaded[..split], &loaded[split..]);
    let parts_txt = format!(
        "the load's two most different parts differ in density by x{ratio:.2} (threshold x{:.2}) and in material mix by \
         {:.0} % (threshold {:.0} %)",
        cfg.undeclared_density_ratio,
        100.0 * dist,
        100.0 * cfg.undeclared_mix_distance
    );
    if score < 1.0 {
        let mut r = CheckResult::new(kind, Outcome::Passed, format!("{parts_txt}: one kind of goods"));
        r.strength = score;
        return r;
    }
    let Some(odd) = undeclared_part(manifest, front, back, reference, cfg) else {
        let mut r = CheckResult::new(
            kind,
            Outcome::Passed,
            format!("{parts_txt}; each part matches one of the {} declared lines", manifest.goods.len()),
        );
        r.strength = score;
        return r;
    };
    let region = region_of(m, odd);
    let mut r = CheckResult::new(
        kind,
        Outcome::Flagged,
        match &region {
            Some(g) => format!(
                "{parts_txt}: {:.1}-{:.1} m holds {} goods at {:.2} g/cm3 ({:.0} kg) unlike the rest of the load",
                g.from_m, g.to_m, g.dominant_class, g.density_g_cm3, g.mass_kg
            ),
            None => parts_txt,
        },
    );
    if manifest.goods.len() == 1 {
        r.declared_line = Some(0);
        r.declared_hs_code = Some(manifest.goods[0].hs_code.clone());
    }
    r.regions.extend(region);
    r.strength = score;
    r
}

/// The split of the loaded slices (front part | back part, each at least `min_slices` long)
/// where the two parts differ most: its score (1 = at a threshold), index, density ratio and
/// mix distance.
fn most_different_split(loaded: &[&Slice], min_slices: usize, cfg: &VerifyConfig) -> Option<(f64, usize, f64, f64)> {
    let mut best: Option<(f64, usize, f64, f64)> = None;
    for s in min_slices..=loaded.len() - min_slices {
        let (ma, da) = features(&loaded[..s]);
        let (mb, db) = features(&loaded[s..]);
        let ratio = if da.min(db) > 0.0 { da.max(db) / da.min(db) } else { f64::INFINITY };
        let dist = 0.5 * (0..4).map(|k| (ma[k] - mb[k]).abs()).sum::<f64>();
        let score = ((ratio - 1.0) / (cfg.undeclared_density_ratio - 1.0)).max(dist / cfg.undeclared_mix_distance);
        if best.is_none_or(|b| score > b.0) {
            best = Some((score, s, ratio, dist));
        }
    }
    best
}

/// Of a load in two kinds of goods, the part the declaration does not cover. With several
/// declared lines, `None` when each part matches one of them. Otherwise the part unlike the
/// first line's reference, or, when both or neither match, the lighter part.
fn undeclared_part<'p, 's>(
    manifest: &Manifest,
    front: &'p [&'s Slice],
    back: &'p [&'s Slice],
    reference: &CommodityReference,
    cfg: &VerifyConfig,
) -> Option<&'p [&'s Slice]> {
    let matches = |part: &[&Slice], hs: &str| part_matches(part, hs, reference, cfg);
    if manifest.goods.len() >= 2 {
        let part_ok = |part: &[&Slice]| manifest.goods.iter().any(|g| matches(part, &g.hs_code) == Some(true));
        if part_ok(front) && part_ok(back) {
            return None;
        }
    }
    let hs = &manifest.goods[0].hs_code;
    Some(match (matches(front, hs), matches(back, hs)) {
        (Some(true), Some(false)) => back,
        (Some(false), Some(true)) => front,
        _ => {
            let mass = |p: &[&Slice]| p.iter().map(|s| s.mass_kg).sum::<f64>();
            if mass(front) < mass(back) { front } else { back }
        }
    })
}

/// Whether a part of the load matches the reference line of HS code `hs` (class share and
/// density, with the density margin); `None` when the code is not in the reference.
fn part_matches(part: &[&Slice], hs: &str, reference: &CommodityReference, cfg: &VerifyConfig) -> Option<bool> {
    let line = reference.lookup(hs)?;
    let (mix, density) = features(part);
    let share: f64 = (0..4).filter(|&k| line.classes.contains(&MIX_CLASSES[k])).map(|k| mix[k]).sum();
    let [d0, d1] = line.density_g_cm3;
    Some(share >= line.min_class_share && (d0 / cfg.density_margin..=d1 * cfg.density_margin).contains(&density))
}

#[cfg(test)]
mod tests {
    use super::super::measure::CargoRegion;
    use super::*;
    use crate::scan::ManifestLine;

    /// A measured load: `slices` of (mass kg, density, mix) over 0.5 m each, fully occupied.
    fn measures(slices: &[(f64, f64, [f64; 4])]) -> CargoMeasures {
        let region =
            CargoRegion { container_columns: [0, 1200], columns: [34, 1166], rows: [10, 500], floor_found: true };
        let slices: Vec<Slice> = slices
            .iter()
            .enumerate()
            .map(|(i, &(mass_kg, density_g_cm3, mix))| Slice {
                start_m: 0.5 * i as f64,
                columns: [34 + 100 * i, 134 + 100 * i],
                mass_kg,
                occupied: 0.8,
                density_g_cm3,
                mix,
            })
            .collect();
        let mass_kg = slices.iter().map(|s| s.mass_kg).sum();
        let mut mix = [0.0; 4];
        for s in &slices {
            for (acc, v) in mix.iter_mut().zip(&s.mix) {
                *acc += v * s.mass_kg / mass_kg;
            }
        }
        let density = slices.iter().map(|s| s.density_g_cm3).sum::<f64>() / slices.len().max(1) as f64;
        CargoMeasures {
            region,
            mass_kg,
            raw_mass_kg: mass_kg,
            structure_correction_kg: 0.0,
            impenetrable_fraction: 0.0,
            mix_by_mass: mix,
            fill_ratio: 0.8,
            length_fill: 1.0,
            density_g_cm3: density,
            slices,
            homogeneity: 1.0,
            repetition: 0.0,
            repetition_period_m: None,
            pattern: "clutter",
            rows_without_free_columns: 0,
        }
    }

    const ORGANIC: [f64; 4] = [1.0, 0.0, 0.0, 0.0];
    const METAL: [f64; 4] = [0.0, 0.0, 0.0, 1.0];

    fn reference() -> CommodityReference {
        let text = "schema_version = 1\n\
            [[line]]\nhs = \"61\"\ndescription = \"apparel\"\nclasses = [\"organic\"]\nmin_class_share = 0.7\ndensity_g_cm3 = [0.1, 0.3]\n\
            [[line]]\nhs = \"72\"\ndescription = \"steel\"\nclasses = [\"metal\"]\nmin_class_share = 0.7\ndensity_g_cm3 = [0.5, 3.0]\n";
        CommodityReference::parse(text, std::path::Path::new("r.toml")).unwrap()
    }

    fn manifest(lines: &[(&str, Option<f64>)]) -> Manifest {
        Manifest {
            declared_empty: false,
            goods: lines
                .iter()
                .map(|&(hs, kg)| ManifestLine {
                    hs_code: hs.into(),
                    description: String::new(),
                    packages: None,
                    gross_mass_kg: kg,
                    extra: Default::default(),
                })
                .collect(),
            extra: Default::default(),
        }
    }

    fn outcome(rs: &[CheckResult], k: CheckKind) -> &CheckResult {
        rs.iter().find(|c| c.check == k).unwrap()
    }

    #[test]
    fn a_correct_declaration_passes_every_check() {
        let m = measures(&vec![(500.0, 0.2, ORGANIC); 16]);
        let rs =
            run(Some(&manifest(&[("6109", Some(8000.0))])), Some(&m), None, &reference(), &VerifyConfig::default());
        assert_eq!(rs.len(), 4);
        for c in &rs {
            let want = if c.check == CheckKind::NotEmpty { Outcome::Skipped } else { Outcome::Passed };
            assert_eq!(c.outcome, want, "{:?}: {}", c.check, c.reason);
        }
    }

    #[test]
    fn underdeclared_mass_wrong_goods_and_undeclared_part_are_flagged_with_evidence() {
        let cfg = VerifyConfig::default();
        let m = measures(&vec![(500.0, 0.2, ORGANIC); 16]);
        // 8000 kg measured, 5000 declared: 60 % over, beyond 20 % + 300 kg.
        let rs = run(Some(&manifest(&[("6109", Some(5000.0))])), Some(&m), None, &reference(), &cfg);
        let w = outcome(&rs, CheckKind::WeightMismatch);
        assert_eq!(w.outcome, Outcome::Flagged, "{}", w.reason);
        assert_eq!((w.declared_kg, w.estimated_kg, w.declared_line), (Some(5000.0), Some(8000.0), Some(0)));
        // Declared steel, measured organic at 0.2 g/cm3: both class and density contradict.
        let rs = run(Some(&manifest(&[("7208", Some(8000.0))])), Some(&m), None, &reference(), &cfg);
        let c = outcome(&rs, CheckKind::CommodityMismatch);
        assert_eq!(c.outcome, Outcome::Flagged, "{}", c.reason);
        assert_eq!(c.declared_hs_code.as_deref(), Some("7208"));
        assert_eq!(c.regions.len(), 1, "one contiguous disagreeing region");
        // Garments in front, 2 m of dense metal behind them.
        let mut parts = vec![(500.0, 0.2, ORGANIC); 12];
        parts.extend(vec![(2000.0, 1.5, METAL); 4]);
        let m = measures(&parts);
        let rs = run(Some(&manifest(&[("6109", Some(m.mass_kg))])), Some(&m), None, &reference(), &cfg);
        let u = outcome(&rs, CheckKind::UndeclaredGoods);
        assert_eq!(u.outcome, Outcome::Flagged, "{}", u.reason);
        let g = &u.regions[0];
        assert!((g.from_m - 6.0).abs() < 1e-9 && (g.to_m - 8.0).abs() < 1e-9, "{g:?}");
        assert_eq!((g.columns, g.dominant_class), ([1234, 1634], "metal"));
        assert!((g.mass_kg - 8000.0).abs() < 1e-6);
        // Declared as two lines (garments and steel), the same load passes.
        let two = manifest(&[("6109", Some(6000.0)), ("7208", Some(8000.0))]);
        let rs = run(Some(&two), Some(&m), None, &reference(), &cfg);
        assert_eq!(outcome(&rs, CheckKind::UndeclaredGoods).outcome, Outcome::Passed);
    }

    #[test]
    fn bad_manifests_skip_with_a_reason_and_never_pass_silently() {
        let cfg = VerifyConfig::default();
        let r = reference();
        let m = measures(&vec![(500.0, 0.2, ORGANIC); 16]);
        let all_skipped = |rs: &[CheckResult], needle: &str| {
            assert_eq!(rs.len(), 4);
            for c in rs {
                assert_eq!(c.outcome, Outcome::Skipped, "{:?}", c.check);
                assert!(c.reason.contains(needle), "{}", c.reason);
            }
        };
        all_skipped(&run(None, Some(&m), None, &r, &cfg), "no manifest");
        all_skipped(
            &run(Some(&manifest(&[("6109", Some(1.0))])), None, Some("no container"), &r, &cfg),
            "no container",
        );
        let none = run(Some(&manifest(&[])), Some(&m), None, &r, &cfg);
        for k in [CheckKind::WeightMismatch, CheckKind::CommodityMismatch, CheckKind::UndeclaredGoods] {
            assert!(outcome(&none, k).reason.contains("no goods"), "{k:?}");
        }
        for (kg, needle) in [
            (Some(-5.0), "not a positive mass"),
            (Some(f64::NAN), "not a positive mass"),
            (Some(0.0), "not a positive mass"),
            (Some(1e9), "more than any container"),
            (None, "no gross mass"),
        ] {
            let rs = run(Some(&manifest(&[("6109", kg)])), Some(&m), None, &r, &cfg);
            let w = outcome(&rs, CheckKind::WeightMismatch);
            assert_eq!(w.outcome, Outcome::Skipped);
            assert!(w.reason.contains(needle), "{}", w.reason);
            // The other checks still run.
            assert_eq!(outcome(&rs, CheckKind::CommodityMismatch).outcome, Outcome::Passed);
        }
        for hs in ["9999", "ab", ""] {
            let rs = run(Some(&manifest(&[(hs, Some(8000.0))])), Some(&m), None, &r, &cfg);
            let c = outcome(&rs, CheckKind::CommodityMismatch);
            assert_eq!(c.outcome, Outcome::Skipped);
            assert!(c.reason.contains("not in the commodity reference"), "{}", c.reason);
            assert_eq!(outcome(&rs, CheckKind::WeightMismatch).outcome, Outcome::Passed);
        }
    }

    #[test]
    fn declared_empty_containers_are_checked_for_load() {
        let cfg = VerifyConfig::default();
        let empty = Manifest { declared_empty: true, ..Manifest::default() };
        let nothing = measures(&vec![(2.0, 0.0, ORGANIC); 16]);
        let rs = run(Some(&empty), Some(&nothing), None, &reference(), &cfg);
        assert_eq!(outcome(&rs, CheckKind::NotEmpty).outcome, Outcome::Passed);
        assert_eq!(outcome(&rs, CheckKind::WeightMismatch).outcome, Outcome::Skipped);
        // One pallet (600 kg) over 1 m.
        let mut one = vec![(0.0, 0.0, ORGANIC); 14];
        one.extend(vec![(300.0, 0.3, ORGANIC); 2]);
        let rs = run(Some(&empty), Some(&measures(&one)), None, &reference(), &cfg);
        let n = outcome(&rs, CheckKind::NotEmpty);
        assert_eq!(n.outcome, Outcome::Flagged, "{}", n.reason);
        assert!(n.reason.contains("600 kg"), "{}", n.reason);
    }
}
