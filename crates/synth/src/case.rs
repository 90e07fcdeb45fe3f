//! One case of a dataset: container, load, concealments, declared manifest and the truth
//! behind them, all drawn from a per-case random stream.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::SynthError;
use super::catalogue::{Catalogue, Commodity, Package, pack, uniform};
use super::container::{ContainerType, LoadSpace, build_container};
use super::recipe::{Recipe, container_type};
use super::render::{NoiseModel, mix};
use super::scene::Scene;
use super::threats::{Hide, ThreatKind, conceal};
use nii_atr_core::physics::AttenuationTable;
pub use nii_atr_core::truth::{Declared, DeclaredLine, LoadLine, Mismatch, MismatchKind, Split};

/// A case before rendering.
#[derive(Debug, Clone)]
pub struct Case {
    /// Case id, `<recipe>-<split>-<index:06>`: the scan's id and its folder's name.
    pub id: String,
    /// The split the case belongs to.
    pub split: Split,
    /// Index of the case within its split.
    pub index: usize,
    /// The per-case seed (from recipe seed, split and index).
    pub seed: u64,
    /// The container's ISO size-type.
    pub container: ContainerType,
    /// Every solid of the case (container, trailer, cargo, threats) and the image window.
    pub scene: Scene,
    /// The manifest as declared, which may lie (see `mismatch`).
    pub declared: Declared,
    /// What is really loaded, one line per commodity.
    pub load: Vec<LoadLine>,
    /// No cargo at all (threats may still be there).
    pub empty: bool,
    /// How the declared manifest differs from the load, if it does.
    pub mismatch: Mismatch,
    /// Threats built in hard mode, by index into `scene.threats`.
    pub hard: Vec<bool>,
    /// The detector noise this case is rendered with (the recipe's, plus its artefacts).
    pub noise: NoiseModel,
    /// Scanner artefacts drawn for this case (`interlace_offset`, `dead_rows:N`, `beam_wobble`).
    pub artefacts: Vec<String>,
}

fn pick_weighted<'a, T>(rng: &mut ChaCha8Rng, items: &'a [(T, f64)]) -> &'a T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut u = rng.random::<f64>() * total;
    for (item, w) in items {
        if u < *w {
            return item;
        }
        u -= w;
    }
    &items[items.len() - 1].0
}

fn split_tag(split: Split) -> u64 {
    match split {
        Split::Train => 0x7261_696E,
        Split::Val => 0x7661_6C00,
        Split::Test => 0x7465_7374,
    }
}

/// Builds case `index` of `split`: deterministic in (recipe seed, split, index) only.
///
/// Every draw comes from one per-case stream, in this order: container type, empty, mismatch,
/// the load, the concealments, the declared manifest, the scanner artefacts.
pub fn build_case(recipe: &Recipe, catalogue: &Catalogue, split: Split, index: usize) -> Result<Case, SynthError> {
    let table = AttenuationTable::embedded()?;
    let seed = mix(recipe.seed, split_tag(split), index as u64);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let m = &recipe.mix;

    let types: Vec<(ContainerType, f64)> =
        m.container_types.iter().filter_map(|(k, w)| container_type(k).map(|t| (t, *w))).collect();
    let container = *pick_weighted(&mut rng, &types);
    let mut scene = Scene::default();
    let space = build_container(&mut scene, container, &recipe.scanner.fan(), table)?;
    let dims = container.dims();
    let payload = dims.max_gross_kg - dims.tare_kg;
    let pool = commodity_pool(recipe, catalogue)?;

    let empty = rng.random::<f64>() < m.empty_share;
    let mismatch_kind = draw_mismatch(&mut rng, empty, m.mismatch_share);
    let (mut packages, loaded) = if empty {
        (Vec::new(), Vec::new())
    } else {
        load_cargo(&mut rng, &pool, &space, payload, mismatch_kind, table)?
    };
    // Concealments go in before the packages are fixed, so they can make room.
    let hard = conceal_threats(&mut rng, recipe, &mut scene, &mut packages, space, table)?;
    let load = load_lines(&loaded, &packages);
    for p in packages.drain(..) {
        scene.objects.extend(p.objects);
    }
    let (declared, mismatch) = declare(&mut rng, catalogue, &pool, mismatch_kind, &load);
    let (noise, artefacts) = scanner_artefacts(&mut rng, recipe);

    Ok(Case {
        id: format!("{}-{}-{:06}", recipe.name, split.name(), index),
        split,
        index,
        seed,
        container,
        scene,
        declared,
        empty: load.is_empty(),
        load,
        mismatch,
        hard,
        noise,
        artefacts,
    })
}

/// The commodities a case may carry: the recipe's list, or the whole catalogue.
fn commodity_pool<'a>(recipe: &Recipe, catalogue: &'a Catalogue) -> Result<Vec<&'a Commodity>, SynthError> {
    if recipe.mix.commodities.is_empty() {
        return Ok(catalogue.commodities.iter().collect());
    }
    recipe
        .mix
        .commodities
        .iter()
        .map(|n| {
            catalogue.get(n).ok_or_else(|| SynthError::Parameter {
                name: "mix.commodities",
                reason: format!("`{n}` is not in the catalogue"),
            })
        })
        .collect()
}

/// One commodity of the pool, uniformly.
fn draw<'a>(rng: &mut ChaCha8Rng, pool: &[&'a Commodity]) -> &'a Commodity {
    pool[rng.random_range(0..pool.len())]
}

/// A commodity other than `name` when the pool allows (up to nine draws, then the last one).
fn draw_other<'a>(rng: &mut ChaCha8Rng, pool: &[&'a Commodity], name: &str) -> &'a Commodity {
    let mut other = draw(rng, pool);
    for _ in 0..8 {
        if other.name != name {
            break;
        }
        other = draw(rng, pool);
    }
    other
}

/// How the manifest will lie about the load, if it does (never for an empty container).
fn draw_mismatch(rng: &mut ChaCha8Rng, empty: bool, mismatch_share: f64) -> MismatchKind {
    if empty || rng.random::<f64>() >= mismatch_share {
        return MismatchKind::None;
    }
    *pick_weighted(
        rng,
        &[
            (MismatchKind::Misdeclared, 0.35),
            (MismatchKind::MassUnderdeclared, 0.3),
            (MismatchKind::UndeclaredGoods, 0.2),
            (MismatchKind::DeclaredEmptyButLoaded, 0.15),
        ],
    )
}

/// Packs the main commodity up to `payload_kg`; for undeclared goods it fills only the front
/// 40-70 % of the length and a second commodity (tag 1) the rest. Returns the packages and
/// the commodities loaded, by tag.
fn load_cargo<'a>(
    rng: &mut ChaCha8Rng,
    pool: &[&'a Commodity],
    space: &LoadSpace,
    payload_kg: f64,
    mismatch_kind: MismatchKind,
    table: &AttenuationTable,
) -> Result<(Vec<Package>, Vec<&'a Commodity>), SynthError> {
    let main = draw(rng, pool);
    let undeclared = mismatch_kind == MismatchKind::UndeclaredGoods;
    let split_x = if undeclared { space.x0 + (space.x1 - space.x0) * uniform(rng, [0.4, 0.7]) } else { space.x1 };
    let mut packages = pack(main, space, (space.x0, split_x), payload_kg, rng, table)?;
    let mut loaded = vec![main];
    if undeclared {
        let other = draw_other(rng, pool, &main.name);
        let used: f64 = packages.iter().map(Package::mass_kg).sum();
        let p = pack(other, space, (split_x + 0.05, space.x1), payload_kg - used, rng, table)?;
        packages.extend(p.into_iter().map(|mut p| {
            p.tag = 1;
            p
        }));
        loaded.push(other);
    }
    Ok((packages, loaded))
}

/// With the recipe's threat share, 1..=`max_threats` concealments of weighted kinds, each in
/// hard mode with the hard share. Returns, per threat added to the scene, whether it is hard.
fn conceal_threats(
    rng: &mut ChaCha8Rng,
    recipe: &Recipe,
    scene: &mut Scene,
    packages: &mut Vec<Package>,
    space: LoadSpace,
    table: &AttenuationTable,
) -> Result<Vec<bool>, SynthError> {
    let m = &recipe.mix;
    let mut hard = Vec::new();
    if rng.random::<f64>() >= m.threat_share {
        return Ok(hard);
    }
    let weights: Vec<(ThreatKind, f64)> = m.threat_weights.iter().map(|(k, w)| (*k, *w)).collect();
    let n = rng.random_range(1..=m.max_threats);
    for _ in 0..n {
        let kind = *pick_weighted(rng, &weights);
        let is_hard = rng.random::<f64>() < m.hard_share;
        let before = scene.threats.len();
        let mut hide =
            Hide { scene: &mut *scene, packages: &mut *packages, space, rng: &mut *rng, table, hard: is_hard };
        conceal(kind, &mut hide)?;
        hard.extend(std::iter::repeat_n(is_hard, scene.threats.len() - before));
    }
    Ok(hard)
}

/// The load as truth records it: one line per commodity that kept at least one package, its
/// mass rounded to 1 kg.
fn load_lines(loaded: &[&Commodity], packages: &[Package]) -> Vec<LoadLine> {
    loaded
        .iter()
        .enumerate()
        .map(|(tag, c)| {
            let mine = packages.iter().filter(|p| p.tag == tag);
            LoadLine {
                commodity: c.name.clone(),
                hs_code: c.hs_code.clone(),
                packages: mine.clone().count() as u32,
                mass_kg: mine.map(Package::mass_kg).sum::<f64>().round(),
            }
        })
        .filter(|l| l.packages > 0)
        .collect()
}

/// The declared manifest for `load`, lying as `mismatch_kind` says, and the mismatch truth.
/// Undeclared goods that did not fit leave no mismatch.
fn declare(
    rng: &mut ChaCha8Rng,
    catalogue: &Catalogue,
    pool: &[&Commodity],
    mismatch_kind: MismatchKind,
    load: &[LoadLine],
) -> (Declared, Mismatch) {
    let mut declared = Declared::default();
    let mut detail = String::new();
    let mut underdeclared_pct = None;
    let line = |c: &Commodity, l: &LoadLine| DeclaredLine {
        hs_code: c.hs_code.clone(),
        description: c.description.clone(),
        packages: l.packages,
        gross_mass_kg: (l.mass_kg / 10.0).round() * 10.0,
    };
    match (mismatch_kind, load.first()) {
        (_, None) => declared.declared_empty = true,
        (MismatchKind::DeclaredEmptyButLoaded, Some(l)) => {
            declared.declared_empty = true;
            detail = format!("declared empty, loaded with {} ({} kg)", l.commodity, l.mass_kg);
        }
        (MismatchKind::Misdeclared, Some(l)) => {
            let decoy = draw_other(rng, pool, &l.commodity);
            declared.goods.push(line(decoy, l));
            detail = format!("declared {}, loaded with {}", decoy.name, l.commodity);
        }
        (MismatchKind::MassUnderdeclared, Some(l)) => {
            let pct = (uniform(rng, [10.0, 50.0]) * 10.0).round() / 10.0;
            let c = catalogue.get(&l.commodity).unwrap_or(pool[0]);
            let mut d = line(c, l);
            d.gross_mass_kg = ((l.mass_kg * (1.0 - pct / 100.0)) / 10.0).round() * 10.0;
            declared.goods.push(d);
            underdeclared_pct = Some(pct);
            detail = format!("gross mass declared {pct} % below the real {} kg", l.mass_kg);
        }
        (_, Some(l)) => {
            let c = catalogue.get(&l.commodity).unwrap_or(pool[0]);
            declared.goods.push(line(c, l));
            if mismatch_kind == MismatchKind::UndeclaredGoods {
                match load.get(1) {
                    Some(extra) => {
                        detail =
                            format!("undeclared {} ({} kg) behind the declared load", extra.commodity, extra.mass_kg)
                    }
                    None => detail = "undeclared goods did not fit".into(),
                }
            }
        }
    }
    let kind = if mismatch_kind == MismatchKind::UndeclaredGoods && load.len() < 2 {
        MismatchKind::None
    } else {
        mismatch_kind
    };
    (declared, Mismatch { kind, detail, underdeclared_pct })
}

/// The recipe's noise model, with scanner artefacts at the recipe's artefact share:
/// interlace offset (dual energy only), dead rows, and a stronger beam wobble. Returns the
/// noise model and the artefacts' names.
fn scanner_artefacts(rng: &mut ChaCha8Rng, recipe: &Recipe) -> (NoiseModel, Vec<String>) {
    let mut noise = recipe.noise.clone();
    let mut artefacts = Vec::new();
    if rng.random::<f64>() < recipe.mix.artefact_share {
        if recipe.scanner.dual_energy && rng.random::<bool>() {
            noise.interlace_offset = true;
            artefacts.push("interlace_offset".to_string());
        }
        if rng.random::<bool>() {
            noise.dead_rows = rng.random_range(1..4);
            artefacts.push(format!("dead_rows:{}", noise.dead_rows));
        }
        noise.beam_wobble = (noise.beam_wobble * 3.0).min(0.1);
        artefacts.push("beam_wobble".to_string());
    }
    (noise, artefacts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn recipe(extra: &str) -> Recipe {
        let text = format!("schema_version = 1\nname = \"c\"\nseed = 5\n[splits]\ntrain = 1\n[mix]\n{extra}");
        Recipe::parse(&text, Path::new("c.toml")).unwrap()
    }

    #[test]
    fn manifests_carry_the_mismatch_they_claim() {
        let r = recipe("mismatch_share = 1.0\nempty_share = 0.0\nthreat_share = 0.0\n");
        let cat = Catalogue::embedded(AttenuationTable::embedded().unwrap()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for i in 0..40 {
            let c = build_case(&r, &cat, Split::Train, i).unwrap();
            seen.insert(c.mismatch.kind);
            let real: f64 = c.load.iter().map(|l| l.mass_kg).sum();
            match c.mismatch.kind {
                MismatchKind::Misdeclared => {
                    assert_ne!(c.declared.goods[0].hs_code, c.load[0].hs_code, "case {i}");
                }
                MismatchKind::MassUnderdeclared => {
                    let pct = c.mismatch.underdeclared_pct.unwrap();
                    let declared = c.declared.goods[0].gross_mass_kg;
                    assert!((declared - real * (1.0 - pct / 100.0)).abs() <= 10.0, "case {i}");
                }
                MismatchKind::UndeclaredGoods => {
                    assert_eq!((c.load.len(), c.declared.goods.len()), (2, 1), "case {i}");
                }
                MismatchKind::DeclaredEmptyButLoaded => {
                    assert!(c.declared.declared_empty && real > 0.0, "case {i}");
                }
                MismatchKind::None => {}
            }
            let dims = c.container.dims();
            assert!(real <= dims.max_gross_kg - dims.tare_kg, "case {i}: {real} kg over payload");
        }
        assert!(seen.len() >= 4, "{seen:?}");
    }

    #[test]
    fn empty_containers_are_declared_empty_and_cases_are_reproducible() {
        let r = recipe("empty_share = 1.0\nthreat_share = 0.0\n");
        let cat = Catalogue::embedded(AttenuationTable::embedded().unwrap()).unwrap();
        let a = build_case(&r, &cat, Split::Val, 3).unwrap();
        assert!(a.empty && a.declared.declared_empty && a.load.is_empty());
        let b = build_case(&r, &cat, Split::Val, 3).unwrap();
        assert_eq!(a.scene.objects, b.scene.objects);
        let other = build_case(&r, &cat, Split::Test, 3).unwrap();
        assert_ne!(a.seed, other.seed);
    }
}
