#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo fuzz, libFuzzer) for SECONDS each
# (default 60), or only the targets named after it:
#
#     scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Targets: detect appimage squashfs squashfs-small iso9660 desktop dwarfs.
# squashfs-small is the squashfs target on the seeds under 32 KiB with
# inputs capped there: ten times the executions per second of the full
# corpus, whose 100-400 KB payloads mostly cost decompression time.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). libFuzzer needs nightly
# compiler flags; on a stable toolchain they are enabled with
# RUSTC_BOOTSTRAP=1 (set here unless already set), which works with the one
# stable toolchain this project is built with.
#
# The seed corpora are made at run time from the shared fixtures
# ($APPIMAGEFS_FIXTURES, default ../shared/fixtures) into fuzz/corpus/
# (ignored by git; never commit fixture copies): whole files for detect and
# appimage, bare SquashFS images and the SquashFS payloads cut out of type 2
# AppImages for squashfs, ISO images and type 1 AppImages for iso9660, and
# the desktop entries found inside the fixtures (plus fuzz/seeds/desktop)
# for desktop. What the fuzzer finds is kept in the corpus between runs.
#
# Crashes, hangs (a run over FUZZ_TIMEOUT seconds, default 20) and inputs
# that need more than FUZZ_RSS_MB of memory (default 2048) are saved under
# fuzz/artifacts/<target>/; the script exits 1 if any target found one.
# Reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <artifact>
# (from fuzz/), minimize with `cargo fuzz tmin <target> <artifact>`.
# FUZZ_JOBS=N runs N fuzzing processes per target (default 1).
set -uo pipefail

cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(detect appimage squashfs squashfs-small iso9660 desktop dwarfs)
fi
fixtures=${APPIMAGEFS_FIXTURES:-../../shared/fixtures}
# DwarFS seeds (bare images and the broken ones of bad/) for the dwarfs target.
dwarfs_fixtures=${APPIMAGEFS_DWARFS_FIXTURES:-../../shared/fixtures-dwarfs}
timeout_s=${FUZZ_TIMEOUT:-20}
rss_mb=${FUZZ_RSS_MB:-2048}
jobs=${FUZZ_JOBS:-1}
export RUSTC_BOOTSTRAP=${RUSTC_BOOTSTRAP:-1}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
  exit 2
fi
if [ ! -d "$fixtures" ]; then
  echo "no fixtures at $fixtures (set APPIMAGEFS_FIXTURES)" >&2
  exit 2
fi

# ---------------------------------------------------------------- corpora
mkdir -p corpus/{detect,appimage,squashfs,squashfs-small,iso9660,desktop,dwarfs} artifacts logs
manifest="$fixtures/MANIFEST.tsv"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# ISO seeds without their trailing zeros (padding, often most of the file):
# the iso9660 target pads an input back to its declared volume size.
trimmed_copy() {
  if command -v perl >/dev/null; then
    perl -0777 -pe 's/\x00+\z//' <"$1" >"$2"
  else
    cp -f "$1" "$2"
  fi
}

for f in "$fixtures"/*; do
  name=$(basename "$f")
  [ "$name" = MANIFEST.tsv ] && continue
  cp -f "$f" "corpus/detect/$name"
  cp -f "$f" "corpus/appimage/$name"
  case "$name" in
    *.sqfs | *.squashfs | *.sqs) cp -f "$f" "corpus/squashfs/$name" ;;
    *.iso) trimmed_copy "$f" "corpus/iso9660/$name" ;;
  esac
done

# Type 2 payloads (offset from the manifest) and type 1 images.
if [ -f "$manifest" ]; then
  while IFS=$'\t' read -r file _ _ _ _ _ kind details; do
    case "$kind" in
      appimage-type2)
        offset=$(printf '%s\n' "$details" | sed -n 's/.*sqfs_offset=\([0-9]*\).*/\1/p')
        if [ -n "$offset" ]; then
          tail -c +"$((offset + 1))" "$fixtures/$file" >"corpus/squashfs/payload-$file"
          if command -v unsquashfs >/dev/null; then
            unsquashfs -q -n -o "$offset" -d "$scratch/$file" "$fixtures/$file" \
              >/dev/null 2>&1 || true
          fi
        fi
        ;;
      appimage-type1)
        trimmed_copy "$fixtures/$file" "corpus/iso9660/$file"
        if command -v osirrox >/dev/null; then
          osirrox -indev "$fixtures/$file" -extract / "$scratch/$file" >/dev/null 2>&1 || true
        fi
        ;;
    esac
  done < <(tail -n +2 "$manifest")
fi
find "$scratch" -name '*.desktop' -type f -size -64k 2>/dev/null | while read -r d; do
  cp -f "$d" "corpus/desktop/$(echo "$d" | md5sum | cut -c1-12)-$(basename "$d")"
done
cp -f seeds/desktop/* corpus/desktop/ 2>/dev/null || true
if [ -d "$dwarfs_fixtures" ]; then
  cp -f "$dwarfs_fixtures"/*.dwarfs "$dwarfs_fixtures"/bad/*.dwarfs corpus/dwarfs/ 2>/dev/null || true
fi
find corpus/squashfs -maxdepth 1 -type f -size -33k -exec cp -f {} corpus/squashfs-small/ \;
chmod -R u+w corpus

# ----------------------------------------------------------------- build
# Default cargo-fuzz build: optimized, with debug assertions, overflow
# checks and AddressSanitizer.
if ! cargo fuzz build >/dev/null 2>&1; then
  cargo fuzz build
  echo "cargo fuzz build failed" >&2
  exit 2
fi

# ------------------------------------------------------------------- run
status=0
for t in "${targets[@]}"; do
  bin=${t%-small}
  dict=()
  case "$bin" in
    desktop) dict=(-dict=dicts/desktop.dict) ;;
    iso9660) dict=(-dict=dicts/iso9660.dict) ;;
    squashfs) dict=(-dict=dicts/squashfs.dict) ;;
  esac
  # Larger inputs are cut to this length: desktop entries are refused
  # above 64 KiB, ISO inputs are padded back (see above), the largest
  # SquashFS payload is 372 KB, the largest AppImage 1.3 MB.
  case "$t" in
    desktop) max_len=70000 ;;
    iso9660) max_len=262144 ;;
    squashfs) max_len=400000 ;;
    squashfs-small) max_len=32768 ;;
    dwarfs) max_len=262144 ;;
    *) max_len=1400000 ;;
  esac
  parallel=()
  if [ "$jobs" -gt 1 ]; then
    parallel=(-jobs="$jobs" -workers="$jobs")
  fi
  mkdir -p "artifacts/$bin"
  before=$(ls "artifacts/$bin" | wc -l)
  echo "== $t: ${seconds}s"
  cargo fuzz run "$bin" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" \
    -malloc_limit_mb="$rss_mb" "${parallel[@]}" \
    -print_final_stats=1 -max_len="$max_len" "${dict[@]}" \
    >"logs/$t.log" 2>&1
  rc=$?
  after=$(ls "artifacts/$bin" | wc -l)
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ *DONE)' "logs/$t.log" | tail -n 3
  if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
    echo "!! $t: exit $rc, $((after - before)) new artifact(s) in fuzz/artifacts/$bin (log: fuzz/logs/$t.log)"
    status=1
  else
    echo "ok $t: $(ls "corpus/$t" | wc -l) corpus entries"
  fi
done
exit $status
