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
# The seed corpora are made at run time into fuzz/corpus/ (ignored by git):
# a small AppDir (desktop entry with an action, a symlink into
# usr/share/applications, an icon, a script) packed here with mksquashfs
# in every compressor and with xorriso (Rock Ridge + Joliet, and zisofs),
# as bare images and as type 2 and type 1 AppImages with the stand-in
# runtime of scripts/stub-runtime.sh; plus fuzz/seeds/desktop. With
# APPIMAGEFS_FIXTURES=DIR, a folder of real-world files (the opt-in corpus
# of the tests, with its MANIFEST.tsv) is added: whole files for detect and
# appimage, bare SquashFS images and the SquashFS payloads cut out of type 2
# AppImages for squashfs, ISO images and type 1 AppImages for iso9660, and
# the desktop entries found inside them for desktop (never commit copies).
# What the fuzzer finds is kept in the corpus between runs.
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
fixtures=${APPIMAGEFS_FIXTURES:-}
# DwarFS seeds (bare images and the broken ones of bad/) for the dwarfs target:
# APPIMAGEFS_DWARFS_FIXTURES=DIR adds a real-world DwarFS corpus.
dwarfs_fixtures=${APPIMAGEFS_DWARFS_FIXTURES:-}
timeout_s=${FUZZ_TIMEOUT:-20}
rss_mb=${FUZZ_RSS_MB:-2048}
jobs=${FUZZ_JOBS:-1}
export RUSTC_BOOTSTRAP=${RUSTC_BOOTSTRAP:-1}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
  exit 2
fi
if [ -n "$fixtures" ] && [ ! -d "$fixtures" ]; then
  echo "APPIMAGEFS_FIXTURES=$fixtures is not a folder" >&2
  exit 2
fi
for tool in mksquashfs xorriso; do
  if ! command -v "$tool" >/dev/null; then
    echo "$tool is missing (bash scripts/setup.sh installs it)" >&2
    exit 2
  fi
done

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

# shellcheck source=scripts/stub-runtime.sh
. ../scripts/stub-runtime.sh

# Seeds built here.
seed=$scratch/seed
mkdir -p "$seed/usr/bin" "$seed/usr/share/applications"
printf '#!/bin/sh\nexec "$APPDIR/usr/bin/seed" "$@"\n' >"$seed/AppRun"
printf '#!/bin/sh\necho seed "$@"\n' >"$seed/usr/bin/seed"
chmod 0755 "$seed/AppRun" "$seed/usr/bin/seed"
printf '[Desktop Entry]\nType=Application\nName=Seed\nName[de]=Saat\nExec=seed %%F\nIcon=seed\nCategories=Utility;\nX-AppImage-Version=1.0\nActions=new;\n\n[Desktop Action new]\nName=New\nExec=seed --new %%u\n' \
  >"$seed/usr/share/applications/seed.desktop"
ln -s usr/share/applications/seed.desktop "$seed/seed.desktop"
printf '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"/>\n' >"$seed/seed.svg"
ln -s seed.svg "$seed/.DirIcon"
seq 1 5000 >"$seed/usr/bin/numbers.txt"
write_stub_runtime "$scratch/runtime2" 2
write_stub_runtime "$scratch/runtime1" 1
truncate -s 32768 "$scratch/runtime1"
for comp in gzip xz lzma lzo lz4 zstd; do
  if mksquashfs "$seed" "$scratch/seed-$comp.sqfs" -comp "$comp" -b 4K -all-root \
    -noappend -quiet -no-progress >/dev/null 2>&1; then
    cp -f "$scratch/seed-$comp.sqfs" "corpus/squashfs/seed-$comp.sqfs"
    cat "$scratch/runtime2" "$scratch/seed-$comp.sqfs" >"corpus/appimage/seed-$comp.AppImage"
    cp -f "corpus/appimage/seed-$comp.AppImage" corpus/detect/
  fi
done
xorriso -as mkisofs -R -J -o "$scratch/seed.iso" "$seed" >/dev/null 2>&1
xorriso -outdev "$scratch/seed-zisofs.iso" -zisofs level=6:block_size=32k -map "$seed" / \
  -set_filter_r --zisofs / -- >/dev/null 2>&1
for iso in seed seed-zisofs; do
  [ -f "$scratch/$iso.iso" ] || continue
  trimmed_copy "$scratch/$iso.iso" "corpus/iso9660/$iso.iso"
  { cat "$scratch/runtime1"; tail -c +32769 "$scratch/$iso.iso"; } >"$scratch/$iso.AppImage"
  trimmed_copy "$scratch/$iso.AppImage" "corpus/iso9660/$iso.AppImage"
  cp -f "$scratch/$iso.AppImage" corpus/detect/
  cp -f "$scratch/$iso.AppImage" corpus/appimage/
done

# The real-world corpus, when given.
for f in ${fixtures:+"$fixtures"/*}; do
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
if [ -n "$fixtures" ] && [ -f "$manifest" ]; then
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
