//! The committed recipes parse, and their stated design holds.

use std::path::Path;

use nii_atr::synth::recipe::Recipe;

#[test]
fn committed_recipes_parse_with_their_stated_sizes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/recipes");
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
