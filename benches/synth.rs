//! Catches slow-downs of the generator: one 40 ft container with cargo and a concealment,
//! 5 mm pitch, 6/4 MV dual energy (issue target: under 1 s on 2 cores). The baseline is
//! filling two planes of the same size with a constant, measured in the same run.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use nii_atr_core::physics::AttenuationTable;
use nii_atr_synth::case::build_case;
use nii_atr_synth::catalogue::Catalogue;
use nii_atr_synth::recipe::{Recipe, Split};
use nii_atr_synth::render::{ScannerPhysics, render};

const RECIPE: &str = r#"
schema_version = 1
name = "bench"
seed = 7
[splits]
test = 1
[scanner]
pitch_mm = 5.0
energy_bins = 32
[mix]
container_types = { iso40 = 1.0 }
empty_share = 0.0
threat_share = 1.0
max_threats = 1
commodities = ["garments"]
"#;

fn bench(c: &mut Criterion) {
    let recipe = Recipe::parse(RECIPE, Path::new("bench.toml")).expect("bench recipe");
    let table = AttenuationTable::embedded().expect("table");
    let catalogue = Catalogue::embedded(table).expect("catalogue");
    let physics =
        ScannerPhysics::new(&recipe.scanner.source_pair(), &recipe.scanner.detector, true, recipe.scanner.energy_bins)
            .expect("physics");
    let fan = recipe.scanner.fan();
    let case = build_case(&recipe, &catalogue, Split::Test, 0).expect("case");
    let probe = render(&case.scene, &fan, &physics, &case.noise, case.seed).expect("render");
    let dim = probe.high.dim();
    println!(
        "synth bench: 40 ft container, {} x {} px (rows x columns), {} solids, {} threads",
        dim.0,
        dim.1,
        case.scene.objects.len(),
        rayon::current_num_threads()
    );

    let mut group = c.benchmark_group("synth");
    group.sample_size(10);
    group.bench_function("baseline_fill_two_planes", |b| {
        b.iter(|| {
            let h = Array2::<u16>::from_elem(dim, 1000);
            let l = Array2::<u16>::from_elem(dim, 1000);
            black_box((h, l))
        })
    });
    group.bench_function("render_40ft_5mm_dual", |b| {
        b.iter(|| black_box(render(&case.scene, &fan, &physics, &case.noise, case.seed).expect("render")))
    });
    group.bench_function("case_and_render_40ft_5mm_dual", |b| {
        b.iter(|| {
            let case = build_case(&recipe, &catalogue, Split::Test, 0).expect("case");
            black_box(render(&case.scene, &fan, &physics, &case.noise, case.seed).expect("render"))
        })
    });
    group.finish();

    // Plain ratio printout, same run, so the numbers stand without criterion's reports.
    let time = |f: &mut dyn FnMut()| {
        let n = 5;
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed().as_secs_f64() / n as f64
    };
    let base = time(&mut || {
        black_box((Array2::<u16>::from_elem(dim, 1000), Array2::<u16>::from_elem(dim, 1000)));
    });
    let full = time(&mut || {
        let case = build_case(&recipe, &catalogue, Split::Test, 0).expect("case");
        black_box(render(&case.scene, &fan, &physics, &case.noise, case.seed).expect("render"));
    });
    println!(
        "synth: case+render {:.3} s per 40 ft container ({:.2} cases/s), {:.0}x the plane fill baseline ({:.4} s); target < 1 s",
        full,
        1.0 / full,
        full / base,
        base
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
