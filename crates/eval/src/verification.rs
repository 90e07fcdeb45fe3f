//! Scores declared-cargo verification against the generator's truth (`<split>/truth.jsonl`): per-check
//! precision and recall, the mass error distribution, false flags on correctly declared
//! cargo, recall of large under-declarations and of empty-container verification.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use nii_atr_core::truth::{CaseTruth, MismatchKind};
use nii_atr_core::verify::{CargoMeasures, CheckKind, Outcome, VerificationResult};

use crate::EvalError;

/// Least load that counts as "one pallet" for empty-container verification, kg.
pub const ONE_PALLET_KG: f64 = 500.0;
/// Under-declarations at least this large (percent) must be caught (issue 7's target).
pub const LARGE_UNDERDECLARATION_PCT: f64 = 25.0;
/// Share of a load's pixels that may be impenetrable for its mass estimate to count as a
/// measurement rather than a lower bound.
pub const PENETRABLE_MAX: f64 = 0.05;
/// Concealed objects at least this heavy count as undeclared goods in `undeclared_or_concealed`.
pub const CONCEALED_GOODS_KG: f64 = 100.0;
/// Contents heavier than the declaration by this share count as a true weight mismatch.
pub const WEIGHT_TRUTH_MARGIN: f64 = 0.10;

/// Precision and recall of one check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckScore {
    /// Cases where the check ran (not skipped).
    pub evaluated: usize,
    /// Cases where the check was skipped (e.g. the load could not be measured).
    pub skipped: usize,
    /// Cases whose truth says the check should flag.
    pub positives: usize,
    /// Positives the check flagged.
    pub true_positives: usize,
    /// Cases the check flagged that the truth says it should not.
    pub false_positives: usize,
    /// Positives the check skipped (counted as misses).
    pub positives_skipped: usize,
    /// Flagged cases that are positives; `None` when nothing was flagged.
    pub precision: Option<f64>,
    /// Positives flagged; `None` without positives.
    pub recall: Option<f64>,
}

/// Distribution of the absolute percentage error of the mass estimate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MassError {
    /// Cases with an estimate.
    pub cases: usize,
    /// Median absolute error, percent of the true mass.
    pub median_abs_pct: Option<f64>,
    /// 95th percentile of the absolute error, percent.
    pub p95_abs_pct: Option<f64>,
    /// Median signed error, percent (positive: overestimate).
    pub median_signed_pct: Option<f64>,
}

impl MassError {
    fn from_errors(mut e: Vec<f64>) -> Self {
        let cases = e.len();
        if e.is_empty() {
            return Self::default();
        }
        e.sort_by(f64::total_cmp);
        let median_signed_pct = Some(percentile(&e, 0.5));
        let mut abs: Vec<f64> = e.iter().map(|v| v.abs()).collect();
        abs.sort_by(f64::total_cmp);
        Self {
            cases,
            median_abs_pct: Some(percentile(&abs, 0.5)),
            p95_abs_pct: Some(percentile(&abs, 0.95)),
            median_signed_pct,
        }
    }
}

/// Linear-interpolated percentile of sorted values (numpy's default).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos - pos.floor());
    if i + 1 < sorted.len() { sorted[i] * (1.0 - f) + sorted[i + 1] * f } else { sorted[i] }
}

/// A rate with its counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Cases that count as a hit (flagged, caught).
    pub hits: usize,
    /// Cases counted.
    pub cases: usize,
    /// `hits / cases`; `None` without cases.
    pub rate: Option<f64>,
}

impl Rate {
    fn add(&mut self, hit: bool) {
        self.cases += 1;
        self.hits += usize::from(hit);
        self.rate = Some(self.hits as f64 / self.cases as f64);
    }
}

/// Declared-cargo verification scored against the split's truth.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerificationScores {
    /// Cases scored.
    pub cases: usize,
    /// Cases whose load could not be measured.
    pub unmeasured: usize,
    /// Precision and recall of each check, by check name.
    pub checks: BTreeMap<String, CheckScore>,
    /// `undeclared_goods` scored with concealed objects of at least [`CONCEALED_GOODS_KG`] counted
    /// as undeclared goods too (they are: a region unlike the declared load).
    pub undeclared_or_concealed: CheckScore,
    /// Estimate against everything physically in the container (declared load plus concealed
    /// objects): what the scan can see.
    pub mass_error_contents: MassError,
    /// Estimate against the load only, on cases without concealed objects.
    pub mass_error_no_concealment: MassError,
    /// Per loaded commodity (single-commodity cases without concealed objects).
    pub mass_error_by_commodity: BTreeMap<String, MassError>,
    /// Correctly declared loaded cases with any check flagged.
    pub false_flags_correct: Rate,
    /// The same on those with nothing concealed.
    pub false_flags_correct_no_concealment: Rate,
    /// Per check, on correctly declared loaded cases.
    pub false_flags_by_check: BTreeMap<String, Rate>,
    /// Per check, on correctly declared loaded cases with nothing concealed.
    pub false_flags_by_check_no_concealment: BTreeMap<String, Rate>,
    /// Under-declarations of at least 25 % flagged by the weight check.
    pub underdeclared_large_recall: Rate,
    /// The same on loads the beam penetrates (under [`PENETRABLE_MAX`] of the load's pixels
    /// impenetrable): where the estimate is not a lower bound.
    pub underdeclared_large_recall_penetrable: Rate,
    /// Mass error on those loads (load only, nothing concealed).
    pub mass_error_penetrable: MassError,
    /// All under-declarations (10-50 %).
    pub underdeclared_recall: Rate,
    /// Declared empty but loaded with at least one pallet's mass: flagged by not_empty.
    pub empty_recall: Rate,
    /// Truly empty containers (nothing concealed either) flagged by not_empty.
    pub empty_false_flags: Rate,
    /// Empty containers holding a concealed object flagged by not_empty (a correct flag).
    pub empty_with_concealment_flagged: Rate,
}

fn outcome(r: &VerificationResult, k: CheckKind) -> Outcome {
    r.check(k).map_or(Outcome::Skipped, |c| c.outcome)
}

impl CheckScore {
    /// Counts one case: `positive` is what the truth says, `outcome` what the check did (a
    /// skipped positive counts as a miss).
    fn add(&mut self, positive: bool, outcome: Outcome) {
        self.positives += usize::from(positive);
        match outcome {
            Outcome::Skipped => {
                self.skipped += 1;
                self.positives_skipped += usize::from(positive);
            }
            o => {
                self.evaluated += 1;
                let flagged = o == Outcome::Flagged;
                self.true_positives += usize::from(flagged && positive);
                self.false_positives += usize::from(flagged && !positive);
            }
        }
    }

    /// Precision and recall from the counts.
    fn finish(&mut self) {
        let flagged = self.true_positives + self.false_positives;
        self.precision = (flagged > 0).then(|| self.true_positives as f64 / flagged as f64);
        self.recall = (self.positives > 0).then(|| self.true_positives as f64 / self.positives as f64);
    }
}

/// The masses of one case's truth, kg.
struct CaseMasses {
    /// The loaded goods.
    load_kg: f64,
    /// The concealed objects.
    concealed_kg: f64,
    /// The declaration's gross mass.
    declared_kg: f64,
}

impl CaseMasses {
    fn of(t: &CaseTruth) -> Self {
        Self {
            load_kg: t.load.iter().map(|l| l.mass_kg).sum(),
            concealed_kg: t.threats.iter().map(|x| x.mass_kg).sum(),
            declared_kg: t.declared.goods.iter().map(|g| g.gross_mass_kg).sum(),
        }
    }
}

/// Signed mass errors (percent) collected over the cases, before their distributions.
#[derive(Default)]
struct MassErrors {
    contents: Vec<f64>,
    load: Vec<f64>,
    penetrable: Vec<f64>,
    by_commodity: BTreeMap<String, Vec<f64>>,
}

impl MassErrors {
    /// Adds one measured, loaded case: against the contents, and against the load when
    /// nothing is concealed.
    fn add(&mut self, t: &CaseTruth, m: &CargoMeasures, masses: &CaseMasses) {
        let contents = masses.load_kg + masses.concealed_kg;
        self.contents.push(100.0 * (m.mass_kg - contents) / contents);
        if t.threats.is_empty() {
            let e = 100.0 * (m.mass_kg - masses.load_kg) / masses.load_kg;
            self.load.push(e);
            if m.impenetrable_fraction < PENETRABLE_MAX {
                self.penetrable.push(e);
            }
            if t.load.len() == 1 {
                self.by_commodity.entry(t.load[0].commodity.clone()).or_default().push(e);
            }
        }
    }
}

impl VerificationScores {
    /// Scores each case's verification result against its truth.
    pub fn from_cases<'a>(cases: impl IntoIterator<Item = (&'a CaseTruth, &'a VerificationResult)>) -> Self {
        let mut s = Self::default();
        for k in CheckKind::ALL {
            s.checks.insert(k.name().to_string(), CheckScore::default());
            s.false_flags_by_check.insert(k.name().to_string(), Rate::default());
            s.false_flags_by_check_no_concealment.insert(k.name().to_string(), Rate::default());
        }
        let mut errors = MassErrors::default();
        for (t, r) in cases {
            s.cases += 1;
            let masses = CaseMasses::of(t);
            match &r.measures {
                None => s.unmeasured += 1,
                Some(m) if !t.empty && masses.load_kg > 0.0 => errors.add(t, m, &masses),
                Some(_) => {}
            }
            s.score_checks(t, r, &masses);
            s.score_false_flags(t, r);
            s.score_underdeclared(t, r);
            s.score_empty(t, r, &masses);
        }
        for c in s.checks.values_mut().chain([&mut s.undeclared_or_concealed]) {
            c.finish();
        }
        s.mass_error_contents = MassError::from_errors(errors.contents);
        s.mass_error_no_concealment = MassError::from_errors(errors.load);
        s.mass_error_penetrable = MassError::from_errors(errors.penetrable);
        s.mass_error_by_commodity =
            errors.by_commodity.into_iter().map(|(k, v)| (k, MassError::from_errors(v))).collect();
        s
    }

    /// Scores the verification results of a run over `split` (`(scan id, result)` pairs)
    /// against the generator's `<split>/truth.jsonl`, which records what was really loaded;
    /// `None` when the split has no truth file or no result has a truth. A truth file that is
    /// not a regular file (a FIFO would block the reader) or is over
    /// [`crate::dataset::MAX_INPUT_BYTES`] is an error, checked before it is read.
    pub fn from_split(split: &Path, results: &[(String, VerificationResult)]) -> Result<Option<Self>, EvalError> {
        let truth_file = split.join("truth.jsonl");
        if results.is_empty() {
            return Ok(None);
        }
        match nii_atr_core::io::open_capped(&truth_file, crate::dataset::MAX_INPUT_BYTES) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let truth = nii_atr_core::truth::read_truth(split)
            .map_err(|e| EvalError::Report { path: truth_file, reason: nii_atr_core::error_chain(&e) })?;
        let by_case: HashMap<&str, &CaseTruth> = truth.iter().map(|t| (t.case_id.as_str(), t)).collect();
        let cases: Vec<_> = results.iter().filter_map(|(id, v)| by_case.get(id.as_str()).map(|t| (*t, v))).collect();
        Ok((!cases.is_empty()).then(|| Self::from_cases(cases)))
    }

    /// Each check against what the truth says it should flag, and `undeclared_goods` again
    /// with heavy concealed objects counted as undeclared goods.
    fn score_checks(&mut self, t: &CaseTruth, r: &VerificationResult, masses: &CaseMasses) {
        let kind = t.mismatch.kind;
        for k in CheckKind::ALL {
            let positive = match k {
                // What the container holds (declared load, undeclared goods and concealed
                // objects) against what was declared.
                CheckKind::WeightMismatch => {
                    !t.declared.declared_empty
                        && masses.load_kg + masses.concealed_kg > masses.declared_kg * (1.0 + WEIGHT_TRUTH_MARGIN)
                }
                CheckKind::CommodityMismatch => kind == MismatchKind::Misdeclared,
                CheckKind::UndeclaredGoods => kind == MismatchKind::UndeclaredGoods,
                CheckKind::NotEmpty => kind == MismatchKind::DeclaredEmptyButLoaded,
            };
            self.checks.get_mut(k.name()).expect("every check has a score").add(positive, outcome(r, k));
        }
        let positive = kind == MismatchKind::UndeclaredGoods || masses.concealed_kg >= CONCEALED_GOODS_KG;
        self.undeclared_or_concealed.add(positive, outcome(r, CheckKind::UndeclaredGoods));
    }

    /// Flags on correctly declared loaded cases: any check, and each check.
    fn score_false_flags(&mut self, t: &CaseTruth, r: &VerificationResult) {
        if t.mismatch.kind != MismatchKind::None || t.empty {
            return;
        }
        let concealment = !t.threats.is_empty();
        let any_flag = r.flagged().next().is_some();
        self.false_flags_correct.add(any_flag);
        if !concealment {
            self.false_flags_correct_no_concealment.add(any_flag);
        }
        for k in CheckKind::ALL {
            let flagged = outcome(r, k) == Outcome::Flagged;
            self.false_flags_by_check.get_mut(k.name()).expect("every check has a rate").add(flagged);
            if !concealment {
                let rate = self.false_flags_by_check_no_concealment.get_mut(k.name()).expect("every check has a rate");
                rate.add(flagged);
            }
        }
    }

    /// Whether the weight check caught a mass under-declaration (all, large, large on
    /// penetrable loads).
    fn score_underdeclared(&mut self, t: &CaseTruth, r: &VerificationResult) {
        if t.mismatch.kind != MismatchKind::MassUnderdeclared {
            return;
        }
        let weight_flag = outcome(r, CheckKind::WeightMismatch) == Outcome::Flagged;
        self.underdeclared_recall.add(weight_flag);
        if t.mismatch.underdeclared_pct.is_some_and(|p| p >= LARGE_UNDERDECLARATION_PCT) {
            self.underdeclared_large_recall.add(weight_flag);
            if r.measures.as_ref().is_some_and(|m| m.impenetrable_fraction < PENETRABLE_MAX) {
                self.underdeclared_large_recall_penetrable.add(weight_flag);
            }
        }
    }

    /// Empty-container verification: loaded containers declared empty, and truly empty ones
    /// (with or without a concealed object).
    fn score_empty(&mut self, t: &CaseTruth, r: &VerificationResult, masses: &CaseMasses) {
        let empty_flag = outcome(r, CheckKind::NotEmpty) == Outcome::Flagged;
        if t.mismatch.kind == MismatchKind::DeclaredEmptyButLoaded && masses.load_kg >= ONE_PALLET_KG {
            self.empty_recall.add(empty_flag);
        }
        if t.empty && t.declared.declared_empty {
            if t.threats.is_empty() {
                self.empty_false_flags.add(empty_flag);
            } else {
                self.empty_with_concealment_flagged.add(empty_flag);
            }
        }
    }

    /// A Markdown section (for `nii-atr verify --report` and `nii-atr eval`).
    pub fn markdown(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1} %", 100.0 * v));
        let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} %"));
        let rate = |r: &Rate| format!("{} ({}/{})", pct(r.rate), r.hits, r.cases);
        let mut md = String::new();
        md.push_str("## Declared-cargo verification\n\n");
        md.push_str(&format!("{} cases, {} not measurable.\n\n", self.cases, self.unmeasured));
        md.push_str("| check | evaluated | skipped | positives | TP | FP | precision | recall |\n");
        md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        let concealed = ("undeclared_goods incl. concealed objects", &self.undeclared_or_concealed);
        for (name, c) in self.checks.iter().map(|(k, v)| (k.as_str(), v)).chain([concealed]) {
            md.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} |\n",
                c.evaluated,
                c.skipped,
                c.positives,
                c.true_positives,
                c.false_positives,
                pct(c.precision),
                pct(c.recall)
            ));
        }
        md.push_str("\n| mass error | cases | median abs | p95 abs | median signed |\n|---|---:|---:|---:|---:|\n");
        let mut rows = vec![
            ("contents (load + concealed objects)".to_string(), &self.mass_error_contents),
            ("load, cases without concealed objects".to_string(), &self.mass_error_no_concealment),
            ("  ... penetrable loads (< 5 % impenetrable pixels)".to_string(), &self.mass_error_penetrable),
        ];
        for (k, v) in &self.mass_error_by_commodity {
            rows.push((format!("  {k}"), v));
        }
        for (name, e) in rows {
            md.push_str(&format!(
                "| {name} | {} | {} | {} | {} |\n",
                e.cases,
                num(e.median_abs_pct),
                num(e.p95_abs_pct),
                num(e.median_signed_pct)
            ));
        }
        md.push_str("\n| operating point | rate |\n|---|---:|\n");
        for (name, r) in [
            ("under-declarations >= 25 % caught (weight_mismatch)", &self.underdeclared_large_recall),
            ("  ... on penetrable loads", &self.underdeclared_large_recall_penetrable),
            ("all under-declarations (10-50 %) caught", &self.underdeclared_recall),
            ("false flags, correctly declared cargo (any check)", &self.false_flags_correct),
            ("false flags, correctly declared, nothing concealed", &self.false_flags_correct_no_concealment),
            ("declared empty but loaded (>= 1 pallet) caught", &self.empty_recall),
            ("false flags, truly empty containers", &self.empty_false_flags),
            ("empty containers with a concealed object flagged", &self.empty_with_concealment_flagged),
        ] {
            md.push_str(&format!("| {name} | {} |\n", rate(r)));
        }
        md.push_str("\n| check | false flags, correctly declared cargo | ... nothing concealed |\n|---|---:|---:|\n");
        for (name, r) in &self.false_flags_by_check {
            let clean = &self.false_flags_by_check_no_concealment[name];
            md.push_str(&format!("| {name} | {} | {} |\n", rate(r), rate(clean)));
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nii_atr_core::verify::checks::CheckResult;
    use nii_atr_core::verify::measure::{CargoMeasures, CargoRegion};

    fn truth(
        kind: &str,
        load_kg: f64,
        declared_kg: f64,
        declared_empty: bool,
        pct: Option<f64>,
        threat_kg: f64,
    ) -> CaseTruth {
        let load = if load_kg > 0.0 {
            serde_json::json!([{"commodity": "garments", "hs_code": "6109", "packages": 10, "mass_kg": load_kg}])
        } else {
            serde_json::json!([])
        };
        let goods = if declared_empty {
            serde_json::json!([])
        } else {
            serde_json::json!([{"hs_code": "6109", "description": "", "packages": 10, "gross_mass_kg": declared_kg}])
        };
        let threats = if threat_kg > 0.0 {
            serde_json::json!([{"category": "vehicle", "bbox": [0, 0, 1, 1], "footprint_pixels": 1, "cnr": 1.0,
                "contrast": 1.0, "difficulty": "hard", "hard_mode": false, "depth_m": 0.0, "occlusion_g_cm2": 0.0,
                "mass_kg": threat_kg, "material": "steel", "yaw_deg": 0.0, "concealment": "x"}])
        } else {
            serde_json::json!([])
        };
        let mut mismatch = serde_json::json!({"kind": kind, "detail": ""});
        if let Some(p) = pct {
            mismatch["underdeclared_pct"] = serde_json::json!(p);
        }
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "case_id": "c", "split": "test", "index": 0, "seed": 1, "scan": "c/scan.json",
            "width": 10, "height": 10, "container": "22G1",
            "declared": {"declared_empty": declared_empty, "goods": goods},
            "load": load, "empty": load_kg == 0.0, "mismatch": mismatch, "threats": threats, "artefacts": []
        }))
        .unwrap()
    }

    fn result(mass_kg: f64, flagged: &[CheckKind]) -> VerificationResult {
        let region = CargoRegion { container_columns: [0, 10], columns: [1, 9], rows: [0, 10], floor_found: true };
        let measures = CargoMeasures {
            region,
            mass_kg,
            raw_mass_kg: mass_kg,
            structure_correction_kg: 0.0,
            impenetrable_fraction: 0.0,
            mix_by_mass: [1.0, 0.0, 0.0, 0.0],
            fill_ratio: 0.5,
            length_fill: 0.5,
            density_g_cm3: 0.2,
            slices: vec![],
            homogeneity: 1.0,
            repetition: 0.0,
            repetition_period_m: None,
            pattern: "clutter",
            rows_without_free_columns: 0,
        };
        let checks = CheckKind::ALL
            .map(|k| {
                let o = if flagged.contains(&k) { Outcome::Flagged } else { Outcome::Passed };
                let mut c = CheckResult::skipped(k, "");
                c.outcome = o;
                c
            })
            .to_vec();
        VerificationResult { measures: Some(measures), measure_error: None, checks }
    }

    #[test]
    fn scores_match_hand_counted_reference() {
        use CheckKind::*;
        let cases = vec![
            // Correctly declared: estimates 900, 1050, 1200 and 1000 kg of 1000 kg.
            (truth("none", 1000.0, 1000.0, false, None, 0.0), result(900.0, &[])),
            (truth("none", 1000.0, 1000.0, false, None, 0.0), result(1050.0, &[])),
            (truth("none", 1000.0, 1000.0, false, None, 0.0), result(1200.0, &[WeightMismatch])),
            (truth("none", 1000.0, 1000.0, false, None, 0.0), result(1000.0, &[])),
            // Under-declared by 30 % (caught) and 12 % (missed).
            (truth("mass_underdeclared", 1000.0, 700.0, false, Some(30.0), 0.0), result(1000.0, &[WeightMismatch])),
            (truth("mass_underdeclared", 1000.0, 880.0, false, Some(12.0), 0.0), result(1000.0, &[])),
            // Declared empty but loaded (caught); truly empty (one false flag, one pass).
            (truth("declared_empty_but_loaded", 2000.0, 0.0, true, None, 0.0), result(2000.0, &[NotEmpty])),
            (truth("none", 0.0, 0.0, true, None, 0.0), result(10.0, &[NotEmpty])),
            (truth("none", 0.0, 0.0, true, None, 0.0), result(0.0, &[])),
            // An empty container with a 1 t object concealed: flagged, a correct flag.
            (truth("none", 0.0, 0.0, true, None, 1000.0), result(1000.0, &[NotEmpty])),
        ];
        let s = VerificationScores::from_cases(cases.iter().map(|(t, r)| (t, r)));
        assert_eq!(s.cases, 10);
        // Weight: positives = loads over declared by > 10 %: the two under-declarations and the
        // declared-empty-but-loaded case is not a goods declaration (declared empty).
        let w = &s.checks["weight_mismatch"];
        assert_eq!((w.positives, w.true_positives, w.false_positives), (2, 1, 1));
        assert_eq!((w.precision, w.recall), (Some(0.5), Some(0.5)));
        let e = &s.checks["not_empty"];
        assert_eq!((e.positives, e.true_positives, e.false_positives), (1, 1, 2));
        // Loaded cases: errors -10, 5, 20, 0 (correct), 0, 0 (under-declared), 0 (loaded).
        // |e| sorted 0 0 0 0 5 10 20: median 0, p95 at position 5.7 -> 10 + 0.7 * 10 = 17.
        let m = &s.mass_error_no_concealment;
        assert_eq!(m.cases, 7);
        assert_eq!(m.median_abs_pct, Some(0.0));
        assert!((m.p95_abs_pct.unwrap() - 17.0).abs() < 1e-9, "{:?}", m.p95_abs_pct);
        assert_eq!((s.false_flags_correct.hits, s.false_flags_correct.cases), (1, 4));
        assert_eq!(s.false_flags_correct.rate, Some(0.25));
        assert_eq!((s.underdeclared_large_recall.hits, s.underdeclared_large_recall.cases), (1, 1));
        assert_eq!((s.underdeclared_recall.hits, s.underdeclared_recall.cases), (1, 2));
        assert_eq!((s.empty_recall.hits, s.empty_recall.cases), (1, 1));
        assert_eq!((s.empty_false_flags.hits, s.empty_false_flags.cases), (1, 2));
        assert_eq!((s.empty_with_concealment_flagged.hits, s.empty_with_concealment_flagged.cases), (1, 1));
        let md = s.markdown();
        assert!(md.contains("| weight_mismatch | 10 | 0 | 2 | 1 | 1 | 50.0 % | 50.0 % |"), "{md}");
    }

    #[test]
    fn percentiles_follow_numpy_linear_interpolation() {
        // numpy.percentile([1, 2, 3, 4], [50, 95]) = [2.5, 3.85]
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!((percentile(&v, 0.5) - 2.5).abs() < 1e-12);
        assert!((percentile(&v, 0.95) - 3.85).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
    }
}
