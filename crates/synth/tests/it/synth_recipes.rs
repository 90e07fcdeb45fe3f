//! The committed recipes parse, and their stated design holds.

use std::path::Path;

use nii_atr_synth::recipe::Recipe;

#[test]
fn committed_recipes_parse_with_their_stated_sizes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join("datasets/recipes");
    let tiny = Recipe::load(&root.join("tiny.toml")).unwrap();
    assert!(tiny.splits.train + tiny.splits.val + tiny.splits.test <= 10);
    let dev = Recipe::load(&root.join("cargo-dev.toml")).unwrap();
    assert_eq!((dev.splits.train, dev.splits.val, dev.splits.test), (240, 60, 60));
    let bench = Recipe::load(&root.join("cargo-bench.toml")).unwrap();
    assert_eq!((bench.splits.train, bench.splits.val, bench.splits.test), (1600, 200, 800));
    assert_eq!(bench.mix.hard_share, 0.35);
    assert_eq!(bench.scanner.pitch_mm, 5.0);
    // Fixed, distinct seeds.
    assert!(tiny.seed != dev.seed && dev.seed != bench.seed);
}

#[test]
fn cargo_bench_v2_is_the_v1_scenes_rendered_with_four_rays_per_column() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join("datasets/recipes");
    let v1 = Recipe::load(&root.join("cargo-bench.toml")).unwrap();
    let v2 = Recipe::load(&root.join("cargo-bench-v2.toml")).unwrap();
    // Case N of a split is built from (seed, split, N) only, so an equal seed, mix and scanner
    // give the same containers, loads and threats: only the rendering differs.
    assert_eq!(v2.seed, v1.seed);
    assert_eq!(v2.mix, v1.mix);
    assert_eq!(v2.scanner, v1.scanner);
    assert_eq!((v2.splits.train, v2.splits.val, v2.splits.test), (v1.splits.train, v1.splits.val, v1.splits.test));
    assert_eq!((v1.noise.aperture_samples, v2.noise.aperture_samples), (1, 4));
    // Every other noise parameter is v1's.
    let v2_at_one_ray = nii_atr_synth::render::NoiseModel { aperture_samples: 1, ..v2.noise.clone() };
    assert_eq!(v2_at_one_ray, v1.noise);
    assert_ne!(v2.name, v1.name);
}

#[test]
fn the_demo_scans_come_from_the_scanner_the_shipped_models_were_trained_for() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join("datasets/recipes");
    let demo = Recipe::load(&root.join("demo.toml")).unwrap();
    let v2 = Recipe::load(&root.join("cargo-bench-v2.toml")).unwrap();
    // Same scanner, scene mix and rendering as the training bench: the demo shows the models on
    // scans they are meant for (docs/synthetic-data.md, the model cards).
    assert_eq!(demo.scanner, v2.scanner);
    assert_eq!(demo.mix, v2.mix);
    assert_eq!(demo.noise, v2.noise);
    assert_eq!(demo.scanner.pitch_mm, 5.0);
    // Other scenes than the benchmark's, and only test scans.
    assert_ne!(demo.seed, v2.seed);
    assert_eq!((demo.splits.train, demo.splits.val), (0, 0));
    assert!((1..=10).contains(&demo.splits.test));
}
