#!/usr/bin/env bash
# Seeds each fuzz target's corpus with the project's own fixtures (fuzz/corpus/<target>/,
# ignored by git): real descriptors, planes, configs, specs, COCO and YOLO files, truth,
# recipes, profiles and references. Called by `make fuzz`; takes the nii-atr binary to use.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: fuzz/seed.sh path/to/nii-atr}
c=fuzz/corpus
gen=fuzz/corpus/.generated
mkdir -p "$c"/{scan_descriptor,scan_image,pipeline_config,model_spec,coco,yolo,truth,recipe,profile,hs_reference}
if [ ! -f "$gen/test/truth.jsonl" ]; then
  "$bin" synth --recipe datasets/recipes/tiny.toml --split test --cases 1 --plane-format tiff --no-preview -o "$gen" >/dev/null
fi
case_dir=$(dirname "$(ls "$gen"/test/*/scan.json | head -1)")
cp "$case_dir/scan.json" "$c/scan_descriptor/tiny.json"
# scan_image and model_spec take a first byte that picks the file type.
prefixed() { { printf "\\x$(printf %02x "$2")"; cat "$1"; } > "$3"; }
prefixed "$case_dir/high.tiff" 0 "$c/scan_image/tiny-high.tiff"
for f in datasets/previews/*.jpg; do prefixed "$f" 2 "$c/scan_image/$(basename "$f")"; done
cp models/pipeline.default.toml benches/pipeline.bench.toml eval/suites/*.pipeline.toml "$c/pipeline_config/"
for f in models/*/model.toml models/fixtures/*.toml; do prefixed "$f" 0 "$c/model_spec/$(basename "$(dirname "$f")")-$(basename "$f")"; done
for f in tests/fixtures/coco/*.gt.json; do
  r=${f%.gt.json}.results.json
  { cat "$f"; printf '\0'; cat "$r"; } > "$c/coco/$(basename "${f%.gt.json}")"
done
printf 'a.png 100 80\n\0%s\n' '0 0.5 0.5 0.2 0.3 0.9' > "$c/yolo/one-box"
cp "$gen/test/truth.jsonl" "$c/truth/tiny.jsonl"
cp datasets/recipes/*.toml "$c/recipe/"
cp "$gen/profile.json" "$c/profile/synth-linac-6-4.json"
cp datasets/hs_reference.toml "$c/hs_reference/"
echo "fuzz corpora seeded in $c"
