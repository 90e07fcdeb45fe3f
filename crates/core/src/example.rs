//! Small hand-built dual-energy scans, for the docs, the demo, benches and tests: a 20 ft
//! container, a 40 ft one, and air with rectangular blocks.
//!
//! Made by Beer-Lambert at the effective energies of a 6/4 MV linac (2.0 and 1.5 MeV) with
//! NIST XCOM coefficients, plus Gaussian photon noise: a quick, recognisable picture, not a
//! physical simulation (that is the `synth` generator's job).

use ndarray::Array2;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::scan::{
    AirRegion, CalibrationSpec, ContainerInfo, Counts, Manifest, ManifestLine, PixelPitch, PlaneCounts, PlaneFiles,
    Scan, ScanDescriptor, SourceKind, SourceSpec,
};

/// (mu/rho at 2.0 MeV, mu/rho at 1.5 MeV) in cm^2/g, NIST XCOM.
const STEEL: (f32, f32) = (0.042648, 0.048831);
const WATER: (f32, f32) = (0.049418, 0.057540);
/// Cellulose-like organics (paper, wood, cotton): carbon's coefficients scaled by the
/// electron density ratio of cellulose to carbon (~1.04), which is what matters in the Compton regime.
const CELLULOSE: (f32, f32) = (0.046200, 0.053860);
const LEAD: (f32, f32) = (0.046065, 0.052223);

/// Builds the example scan: `pitch_mm` sets the resolution (10 mm gives 336 x 690 pixels).
pub fn container_scan(pitch_mm: f32, seed: u64) -> Scan {
    let scene = Scene::twenty_foot(pitch_mm);
    let (air_h, air_l, dark) = (52_000.0f32, 38_000.0f32, 220.0f32);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let high = scene.counts(air_h, dark, |m| m.0, &mut rng);
    let low = scene.counts(air_l, dark, |m| m.1, &mut rng);
    Scan::new(example_descriptor(pitch_mm, dark), high, Some(low)).expect("planes built with one shape")
}

/// Areal density (g/cm^2) per material at each pixel, summed along the beam.
struct Scene {
    steel: Array2<f32>,
    organic: Array2<f32>,
    water: Array2<f32>,
    lead: Array2<f32>,
}

impl Scene {
    /// A loaded 20 ft container on a trailer, at `pitch_mm` per pixel.
    fn twenty_foot(pitch_mm: f32) -> Self {
        let mm = |v: f32| (v / pitch_mm).round() as usize;
        let (rows, cols) = (mm(3400.0), mm(6900.0));
        let (x0, x1) = (mm(400.0), mm(400.0 + 6058.0)); // container ends along the scan
        let (y_roof, y_floor) = (mm(500.0), mm(500.0 + 2591.0)); // roof and floor rows
        let inner = 235.0f32; // internal width in cm: the beam crosses the whole load sideways
        let mut steel = Array2::<f32>::zeros((rows, cols));
        let mut organic = Array2::<f32>::zeros((rows, cols));
        let mut water = Array2::<f32>::zeros((rows, cols));
        let mut lead = Array2::<f32>::zeros((rows, cols));
        let fill = |a: &mut Array2<f32>, r0: usize, r1: usize, c0: usize, c1: usize, g_cm2: f32| {
            for r in r0.min(rows)..r1.min(rows) {
                for c in c0.min(cols)..c1.min(cols) {
                    a[[r, c]] += g_cm2;
                }
            }
        };
        // Two corrugated side walls of 2 mm steel: the corrugation slants add path every 140 mm.
        for c in x0..x1 {
            let phase = ((c - x0) as f32 * pitch_mm / 140.0).fract();
            let wall_cm = if phase < 0.25 { 0.4 * 2.4 } else { 0.4 };
            fill(&mut steel, y_roof, y_floor, c, c + 1, wall_cm * 7.87);
        }
        // Roof and floor rails, corner posts and doors: thick steel seen edge-on.
        fill(&mut steel, y_roof, y_roof + mm(60.0), x0, x1, 4.0 * 7.87);
        fill(&mut steel, y_floor - mm(160.0), y_floor, x0, x1, 6.0 * 7.87);
        fill(&mut steel, y_roof, y_floor, x0, x0 + mm(120.0), 5.0 * 7.87);
        fill(&mut steel, y_roof, y_floor, x1 - mm(120.0), x1, 5.0 * 7.87);
        // Floor: 28 mm plywood across the full width, cross members every 300 mm.
        fill(&mut organic, y_floor - mm(190.0), y_floor - mm(160.0), x0, x1, inner * 0.7);
        let mut c = x0 + mm(150.0);
        while c < x1 {
            fill(&mut steel, y_floor - mm(160.0), y_floor, c, c + mm(45.0), 1.2 * 7.87);
            c += mm(300.0);
        }
        // Cargo: stacked cartons of garments (bulk density 0.2 g/cm3) with gaps between stacks.
        let floor_top = y_floor - mm(190.0);
        let mut c = x0 + mm(200.0);
        for stack in 0..8 {
            let height = mm(1500.0 + 200.0 * (stack % 3) as f32);
            fill(&mut organic, floor_top - height, floor_top, c, c + mm(480.0), inner * 0.2);
            c += mm(520.0);
        }
        // Bottled water in crates near the doors, a steel machine block, and a concealed pack of
        // dense organic bricks behind the garments (extra 40 cm of 1.1 g/cm3 in the beam).
        fill(&mut water, floor_top - mm(1000.0), floor_top, x1 - mm(1500.0), x1 - mm(300.0), inner * 0.3);
        fill(&mut steel, floor_top - mm(600.0), floor_top, x0 + mm(4450.0), x0 + mm(4700.0), 12.0 * 7.87);
        fill(&mut organic, floor_top - mm(900.0), floor_top - mm(500.0), x0 + mm(1300.0), x0 + mm(1700.0), 40.0 * 1.1);
        // A small lead block (shielding) inside the water load.
        fill(&mut lead, floor_top - mm(400.0), floor_top - mm(250.0), x1 - mm(900.0), x1 - mm(750.0), 8.0 * 11.35);
        Self { steel, organic, water, lead }
    }

    /// Raw counts of one beam: open beam `air` over `dark`, the beam's coefficient taken from
    /// each material's pair by `pick`, with photon and electronic noise drawn from `rng`.
    fn counts(&self, air: f32, dark: f32, pick: fn((f32, f32)) -> f32, rng: &mut ChaCha8Rng) -> Array2<u16> {
        Array2::from_shape_fn(self.steel.dim(), |(r, c)| {
            let mu_t = pick(STEEL) * self.steel[[r, c]]
                + pick(CELLULOSE) * self.organic[[r, c]]
                + pick(WATER) * self.water[[r, c]]
                + pick(LEAD) * self.lead[[r, c]];
            let mean = air * (-mu_t).exp();
            // Photon noise (Gaussian approximation of Poisson) plus 3 counts of electronic noise.
            let sigma = (mean + 9.0).sqrt();
            let z: f32 = (0..4).map(|_| rng.random::<f32>()).sum::<f32>() - 2.0;
            (dark + mean + sigma * z * 1.732).round().clamp(0.0, 65535.0) as u16
        })
    }
}

/// The example's descriptor: a 6/4 MV linac, scalar dark counts, air from the first 300 mm of
/// rows and scan lines, a 20 ft container declared as one line of T-shirts.
fn example_descriptor(pitch_mm: f32, dark: f32) -> ScanDescriptor {
    let mm = |v: f32| (v / pitch_mm).round() as usize;
    let source =
        SourceSpec { kind: SourceKind::Linac, high_energy: 6.0, low_energy: Some(4.0), extra: Default::default() };
    let mut d = ScanDescriptor::minimal(
        "example-20ft",
        source,
        PlaneFiles { high: "high.tiff".into(), low: Some("low.tiff".into()) },
    );
    d.pixel_pitch_mm = PixelPitch { along: pitch_mm, vertical: pitch_mm };
    d.calibration = CalibrationSpec {
        dark: Some(PlaneCounts { high: Counts::Scalar(dark), low: Some(Counts::Scalar(dark)) }),
        air_region: Some(AirRegion { rows: Some([0, mm(300.0)]), columns: Some([0, mm(300.0)]) }),
        ..Default::default()
    };
    d.container = Some(ContainerInfo {
        iso_type: Some("22G1".into()),
        id: Some("NIIU0000011".into()),
        extra: Default::default(),
    });
    d.manifest = Some(Manifest {
        declared_empty: false,
        goods: vec![ManifestLine {
            hs_code: "6109".into(),
            description: "T-shirts, knitted, cotton".into(),
            packages: Some(640),
            gross_mass_kg: Some(5200.0),
            extra: Default::default(),
        }],
        extra: Default::default(),
    });
    d
}

/// Two example containers back to back at 5 mm pitch: 680 x 2760 pixels, a 40 ft-long scan,
/// the size the engine's end-to-end speed target is set on.
pub fn forty_foot_scan() -> Scan {
    let a = container_scan(5.0, 1);
    let b = container_scan(5.0, 2);
    let join = |x: &Array2<u16>, y: &Array2<u16>| {
        // Row-major like a plane read from a file (`concatenate` along columns gives column-major).
        ndarray::concatenate(ndarray::Axis(1), &[x.view(), y.view()])
            .expect("same number of rows")
            .as_standard_layout()
            .into_owned()
    };
    let high = join(&a.high, &b.high);
    let low = join(a.low.as_ref().expect("dual energy"), b.low.as_ref().expect("dual energy"));
    let mut d = a.descriptor.clone();
    d.scan_id = "example-40ft".into();
    // The example estimates air from the scan lines before the vehicle: still true of the join.
    Scan::new(d, high, Some(low)).expect("planes built with one shape")
}

/// Open-beam counts of [`block_scan`].
pub const BLOCK_SCAN_AIR: f32 = 60000.0;

/// A noise-free dual-energy scan of air holding rectangular blocks `(x0, y0, x1, y1, a_high)`
/// (columns `x0..x1`, rows `y0..y1`, high-energy attenuation `a_high`; the low plane's is 1.3
/// times it), with scalar dark (0) and air ([`BLOCK_SCAN_AIR`]) counts: attenuation comes back
/// exactly, which toy-model tests and examples rely on.
pub fn block_scan(rows: usize, cols: usize, blocks: &[(usize, usize, usize, usize, f32)]) -> Scan {
    let mut a = Array2::<f32>::zeros((rows, cols));
    for &(x0, y0, x1, y1, v) in blocks {
        a.slice_mut(ndarray::s![y0.min(rows)..y1.min(rows), x0.min(cols)..x1.min(cols)]).fill(v);
    }
    let counts = |k: f32| a.mapv(|v| (BLOCK_SCAN_AIR * (-k * v).exp()).round().clamp(1.0, 65534.0) as u16);
    let source =
        SourceSpec { kind: SourceKind::Linac, high_energy: 6.0, low_energy: Some(4.0), extra: Default::default() };
    let planes = PlaneFiles { high: "high.tiff".into(), low: Some("low.tiff".into()) };
    let mut d = ScanDescriptor::minimal("synthetic", source, planes);
    d.calibration = CalibrationSpec {
        dark: Some(PlaneCounts { high: Counts::Scalar(0.0), low: Some(Counts::Scalar(0.0)) }),
        air: Some(PlaneCounts { high: Counts::Scalar(BLOCK_SCAN_AIR), low: Some(Counts::Scalar(BLOCK_SCAN_AIR)) }),
        ..Default::default()
    };
    Scan::new(d, counts(1.0), Some(counts(1.3))).expect("a block scan's planes match")
}
