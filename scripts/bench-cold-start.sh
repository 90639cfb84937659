#!/usr/bin/env bash
# Cold start, second launch, metadata walk, reading every byte, mount
# readiness and peak memory of appimagefs, side by side with a plain
# directory (the limit), the kernel's squashfs, squashfuse_ll,
# extract-then-run and the AppImage's own runtime.
#
#   bash scripts/bench-cold-start.sh            # full run: Chromium, Python, 5 reps
#   bash scripts/bench-cold-start.sh --quick    # smoke check: Python only, 3 reps
#   bash scripts/bench-cold-start.sh --reps 9   # more repetitions
#   bash scripts/bench-cold-start.sh --cache-dir-only  # only the --cache-dir rows
#   bash scripts/bench-cold-start.sh --ipython-only    # only the IPython-sized rows
#   bash scripts/bench-cold-start.sh --dwarfs-only     # only the DwarFS rows
#
# Runs as root on Debian: installs what it needs with apt, builds appimagefs
# with `cargo build --release`, builds the benchmark AppImages once (kept in
# the work folder, default /var/tmp/appimagefs-bench, rebuilt with
# --rebuild or when the Debian package versions change), then measures
# every tool interleaved (the order of the tools rotates from one
# repetition to the next) and prints medians and ratios to the plain
# directory. Raw numbers: WORK/results.tsv; report: WORK/report.md.
#
# It needs nothing beside this checkout. Every benchmark AppImage starts
# with a stand-in runtime (scripts/stub-runtime.sh: a 128-byte ELF header
# with the type 2 magic): appimagefs, the kernel's squashfs, squashfuse_ll and unsquashfs
# only read the payload after it. The "AppImage runtime" column (the
# AppImage mounting itself) needs a real runtime: point BENCH_RUNTIME at one
# (for example runtime-x86_64 from github.com/AppImage/type2-runtime
# releases) to add it; without it that column is left out.
#
# Between cold runs only the FUSE/squashfs caches are dropped, by
# unmounting; the AppImage file itself is read once beforehand
# (cat > /dev/null) so it is in the page cache for every tool alike.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPERS=$ROOT/scripts/bench
WORK=${BENCH_WORK:-/var/tmp/appimagefs-bench}
MANYFILES=40000
APP_TIMEOUT=180
# A measurement slower than this (seconds) in the first repetition is not
# repeated (squashfuse_ll starting Chromium from 1 MiB xz blocks takes
# minutes); the report marks such cells with n=1.
SLOW_LIMIT=${BENCH_SLOW_LIMIT:-30}

REPS=
QUICK=0
REBUILD=0
ONLY_BUILD=0
CACHE_DIR_ONLY=0
IPYTHON_ONLY=0
DWARFS_ONLY=0
usage() {
    sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    cat <<EOF
Options:
  --reps N     repetitions (default 5, with --quick 3)
  --quick      Python app only, 3 repetitions (smoke check)
  --rebuild    rebuild the benchmark AppImages
  --build-only build everything, measure nothing
  --cache-dir-only
               measure only first launches: plain directory, appimagefs, and
               appimagefs with a warm --cache-dir folder (fresh daemon)
  --ipython-only
               measure only the IPython-sized Python (about 55,000 files,
               zstd 128K): its metadata walk, cold start and second launch
  --dwarfs-only
               measure only the apps packed as DwarFS (appimagefs) beside
               the plain directory and appimagefs on the SquashFS xz and zstd
               images: cold start, second launch, read every byte
  --work DIR   work folder (default \$BENCH_WORK or /var/tmp/appimagefs-bench)
EOF
}
while [[ $# -gt 0 ]]; do
    case $1 in
    --reps) REPS=$2; shift ;;
    --reps=*) REPS=${1#*=} ;;
    --quick) QUICK=1 ;;
    --rebuild) REBUILD=1 ;;
    --build-only) ONLY_BUILD=1 ;;
    --cache-dir-only) CACHE_DIR_ONLY=1 ;;
    --ipython-only) IPYTHON_ONLY=1 ;;
    --dwarfs-only) DWARFS_ONLY=1 ;;
    --work) WORK=$2; shift ;;
    --work=*) WORK=${1#*=} ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [[ $QUICK == 1 ]]; then
    REPS=${REPS:-3}
    APPS=(python)
    READ_APP=python
else
    REPS=${REPS:-5}
    APPS=(chromium python)
    READ_APP=chromium
fi
# The IPython-sized Python (issue 18): one image (zstd 128K) measured in the
# full run and alone with --ipython-only; see its section below.
IPY_APPS=(ipython)
[[ $QUICK == 0 && $CACHE_DIR_ONLY == 0 && $DWARFS_ONLY == 0 ]] || IPY_APPS=()
if [[ $IPYTHON_ONLY == 1 ]]; then
    APPS=()
    IPY_APPS=(ipython)
fi
[[ $REPS =~ ^[1-9][0-9]*$ ]] || { echo "--reps needs a positive number" >&2; exit 2; }
COMPS=(xz zstd gzip)
# Cold starts also run from an uncompressed image: what a FUSE filesystem
# costs on this machine with no decompression at all (the floor under the
# compressed rows).
COLD_COMPS=("${COMPS[@]}" none)
[[ $WORK == /* && $WORK != *[[:space:]]* ]] || { echo "the work folder must be an absolute path without spaces" >&2; exit 2; }

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (kernel squashfs loop mounts, apt-get)"

# ---------------------------------------------------------------------------
# Cleanup: every mount and loop device under WORK, every process we started.

BG_PIDS=()
cleanup() {
    set +e
    for pid in "${BG_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    sleep 0.2
    local m
    # Deepest first; /proc/mounts escapes nothing here (WORK has no spaces).
    awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do
            umount "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
        done
    losetup -nO NAME,BACK-FILE 2>/dev/null | awk -v w="$WORK/" 'index($2, w) == 1 { print $1 }' |
        while read -r m; do losetup -d "$m" 2>/dev/null; done
    for pid in "${BG_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null
    done
    rm -rf "$WORK/run"
    [[ -z ${APP_CG:-} ]] || rmdir "$APP_CG" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---------------------------------------------------------------------------
# Packages and the appimagefs build.

need_pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || need_pkgs+=("$2"); }
need mksquashfs squashfs-tools
need unsquashfs squashfs-tools
need squashfuse_ll squashfuse
need fusermount3 fuse3
need pgrep procps
need losetup mount
need tar tar
[[ -x /usr/lib/chromium/chromium ]] || need_pkgs+=(chromium)
[[ -x /usr/bin/python3.11 && -d /usr/lib/python3.11/encodings ]] || need_pkgs+=(python3.11)
[[ -x /usr/bin/python3 ]] || need_pkgs+=(python3)
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${need_pkgs[@]}" >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${need_pkgs[@]}" >/dev/null; } ||
        die "apt-get install ${need_pkgs[*]} failed"
fi
PY=/usr/bin/python3

if [[ -n ${APPIMAGEFS_BIN:-} ]]; then
    BIN=$APPIMAGEFS_BIN
else
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
    BIN=$ROOT/target/release/appimagefs
fi
[[ -x $BIN ]] || die "$BIN is missing"

# ---------------------------------------------------------------------------
# Building the benchmark AppImages.

APPDIRS=$WORK/appdirs
IMAGES=$WORK/images
RUN=$WORK/run
mkdir -p "$APPDIRS" "$IMAGES" "$WORK/sqfs"
rm -rf "$RUN"
mkdir -p "$RUN/mnt" "$RUN/tmp" "$RUN/hundred"

# shellcheck source=scripts/stub-runtime.sh
. "$ROOT/scripts/stub-runtime.sh"

RUNTIME=$WORK/runtime-type2
if [[ -n ${BENCH_RUNTIME:-} ]]; then
    [[ -f $BENCH_RUNTIME ]] || die "BENCH_RUNTIME=$BENCH_RUNTIME is not a file"
    cp "$BENCH_RUNTIME" "$RUNTIME.new"
    chmod 0755 "$RUNTIME.new"
    RUNTIME_TOOL=(runtime)
else
    write_stub_runtime "$RUNTIME.new" 2
    RUNTIME_TOOL=()
fi
[[ $(head -c 4 "$RUNTIME.new") == $'\177ELF' ]] || die "$RUNTIME.new is not an ELF file"
# Replaced only when it changed, so that the images are rebuilt only then.
if cmp -s "$RUNTIME.new" "$RUNTIME"; then
    rm "$RUNTIME.new"
else
    mv "$RUNTIME.new" "$RUNTIME"
fi
OFFSET=$(stat -c %s "$RUNTIME")

pkg_version() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo unknown; }

stamp_of() {
    case $1 in
    chromium) echo "chromium $(pkg_version chromium)" ;;
    python) echo "python3.11 $(pkg_version libpython3.11-stdlib) $(pkg_version python3.11-minimal)" ;;
    manyfiles) echo "manyfiles $MANYFILES $(md5sum <"$HELPERS/gen_manyfiles.py")" ;;
    ipython) echo "ipython $(stamp_of python) $(md5sum <"$IPY_REQUIREMENTS")" ;;
    esac
}

write_apprun_header() {
    cat <<'EOF'
#!/bin/sh
HERE="$(dirname "$(readlink -f "$0")")"
APPDIR="${APPDIR:-$HERE}"
EOF
}

build_appdir() {
    local app=$1 d=$APPDIRS/$1
    rm -rf "$d"
    mkdir -p "$d"
    case $app in
    chromium)
        mkdir -p "$d/usr/lib" "$d/usr/share/bench"
        cp -a /usr/lib/chromium "$d/usr/lib/"
        cp "$HELPERS/page.html" "$d/usr/share/bench/page.html"
        {
            write_apprun_header
            cat <<'EOF'
profile="$(mktemp -d)"
"$APPDIR/usr/lib/chromium/chromium" --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --dump-dom "file://$APPDIR/usr/share/bench/page.html"
rc=$?
rm -rf "$profile"
exit $rc
EOF
        } >"$d/AppRun"
        printf '[Desktop Entry]\nType=Application\nName=Chromium bench\nExec=chromium\nIcon=chromium\nCategories=Network;\n' >"$d/chromium.desktop"
        cp /usr/share/icons/hicolor/256x256/apps/chromium.png "$d/chromium.png" 2>/dev/null ||
            printf '\x89PNG\r\n\x1a\n' >"$d/chromium.png"
        ;;
    python)
        mkdir -p "$d/usr/bin" "$d/usr/lib"
        cp -a /usr/bin/python3.11 "$d/usr/bin/"
        cp -a /usr/lib/python3.11 "$d/usr/lib/"
        rm -rf "$d/usr/lib/python3.11/site-packages" "$d/usr/lib/python3.11/dist-packages"
        {
            write_apprun_header
            cat <<'EOF'
export PYTHONHOME="$APPDIR/usr" PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1
exec "$APPDIR/usr/bin/python3.11" -c '
import json, email, email.mime.text, email.parser, http.client, http.server
import urllib.request, urllib.parse, xml.etree.ElementTree, xml.dom.minidom
import sqlite3, decimal, fractions, statistics, asyncio, concurrent.futures
import subprocess, argparse, logging, logging.handlers, unittest, csv
import zipfile, tarfile, gzip, bz2, lzma, hashlib, hmac, ssl, socket
import uuid, datetime, calendar, pathlib, shutil, tempfile, textwrap, difflib
import pprint, dataclasses, typing, random, pickle, inspect, ast, tokenize
import configparser, plistlib, html.parser, mimetypes, ipaddress, smtplib
import xmlrpc.client, multiprocessing, queue, ctypes, platform, sysconfig
print("appimagefs-bench-ok", len(json.dumps(sorted(__import__("sys").modules))))
'
EOF
        } >"$d/AppRun"
        printf '[Desktop Entry]\nType=Application\nName=Python bench\nExec=python\nIcon=python\nCategories=Development;\n' >"$d/python.desktop"
        printf '\x89PNG\r\n\x1a\n' >"$d/python.png"
        ;;
    manyfiles)
        "$PY" "$HELPERS/gen_manyfiles.py" "$d" "$MANYFILES"
        ;;
    ipython) build_ipython_appdir "$d" ;;
    esac
    chmod 755 "$d/AppRun"
}

# ---------------------------------------------------------------------------
# The IPython-sized Python (issue 18): the Python app's interpreter and
# standard library plus IPython, its dependencies and a few packages with
# many files (scripts/bench/ipython-requirements.txt, every version pinned)
# in its site directory: about 55,000 files in many small folders, packed
# zstd/128K only. Its rows: the metadata walk (appimagefs, kernel squashfs,
# squashfuse_ll) and a cold start and second launch that start IPython
# non-interactively, against the plain folder.

IPY_COMP=zstd
IPY_REQUIREMENTS=$HELPERS/ipython-requirements.txt

# A pip that can install wheels for another folder (--target skips the
# externally-managed check of PEP 668).
pip_for_ipython() {
    if "$PY" -m pip --version >/dev/null 2>&1; then
        "$PY" -m pip "$@"
    elif command -v pip3 >/dev/null 2>&1; then
        pip3 "$@"
    else
        log "installing python3-pip"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-pip >/dev/null ||
            die "apt-get install python3-pip failed"
        "$PY" -m pip "$@"
    fi
}

build_ipython_appdir() {
    local d=$1
    # Debian's Python looks for packages in lib/python3.11/dist-packages
    # under its prefix (its name for site-packages).
    local site=$d/usr/lib/python3.11/dist-packages
    mkdir -p "$d/usr/bin" "$d/usr/lib"
    cp -a /usr/bin/python3.11 "$d/usr/bin/"
    cp -a /usr/lib/python3.11 "$d/usr/lib/"
    rm -rf "$d/usr/lib/python3.11/site-packages" "$site"
    # Wheels for CPython 3.11 on x86-64 whatever Python runs pip; the
    # bytecode is compiled afterwards by the app's own interpreter.
    pip_for_ipython install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --no-compile \
        --only-binary=:all: --implementation cp --python-version 3.11 \
        --platform manylinux2014_x86_64 --target "$site" -r "$IPY_REQUIREMENTS" ||
        die "pip install of $IPY_REQUIREMENTS failed"
    # A few test files of these packages do not compile on purpose.
    PYTHONHOME=$d/usr "$d/usr/bin/python3.11" -m compileall -q -j0 "$site" >/dev/null 2>&1 || true
    {
        write_apprun_header
        cat <<'EOF'
export PYTHONHOME="$APPDIR/usr" PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1
export IPYTHONDIR="${TMPDIR:-/tmp}/appimagefs-bench-ipython"
exec "$APPDIR/usr/bin/python3.11" -m IPython --quick --no-banner --colors=NoColor \
    --HistoryManager.enabled=False -c '
import sys
print("appimagefs-bench-ok", len(sys.modules))
'
EOF
    } >"$d/AppRun"
    printf '[Desktop Entry]\nType=Application\nName=IPython bench\nExec=ipython\nIcon=ipython\nCategories=Development;\n' >"$d/ipython.desktop"
    printf '\x89PNG\r\n\x1a\n' >"$d/ipython.png"
}

# One repetition of the IPython rows.
ipython_rows() {
    local rep=$1 app tool
    for app in "${IPY_APPS[@]}"; do
        for tool in $(rotate "$rep" plain appimagefs kernel squashfuse); do
            cold_start "$tool" "$app" "$IPY_COMP" "$rep"
        done
        for tool in $(rotate "$rep" plain appimagefs kernel squashfuse); do
            walk_or_read walk "$tool" "$app" "$IPY_COMP" "$rep"
        done
    done
}

comp_opts() {
    case $1 in
    xz) echo "-comp xz -b 1M" ;;
    zstd) echo "-comp zstd -b 128K" ;;
    gzip) echo "-comp gzip -b 128K" ;;
    none) echo "-noI -noD -noF -noX -b 128K" ;;
    esac
}

ALL_APPS=("${APPS[@]}" manyfiles)
# The --cache-dir rows need no metadata-walk image.
[[ $CACHE_DIR_ONLY == 0 && $IPYTHON_ONLY == 0 && $DWARFS_ONLY == 0 ]] || ALL_APPS=("${APPS[@]}")
for app in "${ALL_APPS[@]}" "${IPY_APPS[@]}"; do
    stamp=$(stamp_of "$app")
    fresh=1
    if [[ $REBUILD == 1 || ! -d $APPDIRS/$app || $(cat "$APPDIRS/$app.stamp" 2>/dev/null) != "$stamp" ]]; then
        log "building the $app AppDir"
        build_appdir "$app"
        echo "$stamp" >"$APPDIRS/$app.stamp"
        fresh=0
    fi
    comps=("${COMPS[@]}")
    [[ $app == manyfiles ]] || comps=("${COLD_COMPS[@]}")
    [[ $app != ipython ]] || comps=("$IPY_COMP")
    for comp in "${comps[@]}"; do
        img=$IMAGES/$app-$comp.AppImage
        if [[ $fresh == 0 || ! -s $img || $img -ot $APPDIRS/$app.stamp || $img -ot $RUNTIME ]]; then
            log "packing $app as $comp ($(comp_opts "$comp"))"
            # shellcheck disable=SC2046
            mksquashfs "$APPDIRS/$app" "$WORK/sqfs/$app-$comp.sqfs" $(comp_opts "$comp") \
                -noappend -no-progress -quiet -all-root >/dev/null
            cat "$RUNTIME" "$WORK/sqfs/$app-$comp.sqfs" >"$img.new"
            chmod 755 "$img.new"
            mv "$img.new" "$img"
            rm -f "$WORK/sqfs/$app-$comp.sqfs"
        fi
    done
done
# ---------------------------------------------------------------------------
# DwarFS rows (issue 16): the apps packed as DwarFS behind the same stand-in
# runtime, read by appimagefs, beside the plain directory (and, with
# --dwarfs-only, appimagefs on the SquashFS xz and zstd images) in the same
# run. mkdwarfs and the dwarfs FUSE driver are not packaged for Debian, so
# the images are written by examples/pack-dwarfs.rs (on the dwarfs-enc
# crate) with mkdwarfs's block size, 16 MiB, but lower levels than its
# defaults (zstd 22, xz 9): zstd 15 (mksquashfs's default) and xz 1, which
# pack Chromium in minutes rather than an hour on two loaded cores (the
# decoders' speed depends far less on the level). There is no other DwarFS
# reader here to compare with.
# The comps are named so that the mount100 folder's globs skip them.

DWARFS_COMPS=(dwarfs_zstd dwarfs_lzma)
declare -A DWARFS_LEVEL=([zstd]=15 [lzma]=1)

# Packs the DwarFS images that are missing or older than their AppDir or
# the runtime, and links them into the folder appimagefs mounts.
dwarfs_build() {
    local app comp c img raw built=0
    for app in "${APPS[@]}"; do
        for comp in "${DWARFS_COMPS[@]}"; do
            img=$IMAGES/$app-$comp.AppImage
            raw=$WORK/sqfs/$app-$comp.dwarfs
            if [[ $REBUILD == 1 || ! -s $img || $img -ot $APPDIRS/$app.stamp || $img -ot $RUNTIME ]]; then
                if [[ $built == 0 ]]; then
                    log "cargo build --release --example pack-dwarfs"
                    (cd "$ROOT" && cargo build --release --quiet --example pack-dwarfs) ||
                        die "cargo build --example pack-dwarfs failed"
                    built=1
                fi
                c=${comp#dwarfs_}
                log "packing $app as DwarFS $c level ${DWARFS_LEVEL[$c]} (16 MiB blocks)"
                "$ROOT/target/release/examples/pack-dwarfs" "$APPDIRS/$app" "$raw" \
                    --compression "$c" --level "${DWARFS_LEVEL[$c]}" 2>>"$WORK/pack-dwarfs.log" ||
                    die "pack-dwarfs failed (see $WORK/pack-dwarfs.log)"
                cat "$RUNTIME" "$raw" >"$img.new"
                chmod 755 "$img.new"
                mv "$img.new" "$img"
                rm -f "$raw"
            fi
            ln "$img" "$APPS_DIR/"
        done
    done
}

dwarfs_info() {
    echo "DwarFS images: examples/pack-dwarfs.rs (dwarfs-enc), 16 MiB blocks, zstd level ${DWARFS_LEVEL[zstd]} / xz level ${DWARFS_LEVEL[lzma]}; no other DwarFS reader here (mkdwarfs and the dwarfs FUSE driver are not packaged for Debian)"
}

# One repetition of the DwarFS rows: cold start and second launch of each
# app and reading every byte of READ_APP, from the plain directory and
# appimagefs; with --dwarfs-only also appimagefs on SquashFS xz and zstd.
dwarfs_measure() {
    local rep=$1 app comp tool comps=("${DWARFS_COMPS[@]}")
    [[ $DWARFS_ONLY == 0 ]] || comps=(xz zstd "${DWARFS_COMPS[@]}")
    for app in "${APPS[@]}"; do
        for comp in "${comps[@]}"; do
            for tool in $(rotate "$rep" plain appimagefs); do
                cold_start "$tool" "$app" "$comp" "$rep"
            done
        done
    done
    for comp in "${comps[@]}"; do
        for tool in $(rotate "$rep" plain appimagefs); do
            walk_or_read read "$tool" "$READ_APP" "$comp" "$rep"
        done
    done
}

# The folder appimagefs mounts: this run's images (hard links), and one
# with 100 AppImages (hard links to them, round robin).
APPS_DIR=$RUN/apps
mkdir -p "$APPS_DIR"
for app in "${APPS[@]}"; do
    ln "$IMAGES/$app-none.AppImage" "$APPS_DIR/"
done
for app in "${ALL_APPS[@]}"; do
    for comp in "${COMPS[@]}"; do ln "$IMAGES/$app-$comp.AppImage" "$APPS_DIR/"; done
done
n=0
while [[ $IPYTHON_ONLY == 0 && $n -lt 100 ]]; do
    for f in "$APPS_DIR"/*-{xz,zstd,gzip}.AppImage; do
        [[ $n -lt 100 ]] || break
        ln "$f" "$RUN/hundred/$(printf 'app%03d-' "$n")$(basename "$f")"
        n=$((n + 1))
    done
done
for app in "${IPY_APPS[@]}"; do
    ln "$IMAGES/$app-$IPY_COMP.AppImage" "$APPS_DIR/"
done
[[ $CACHE_DIR_ONLY == 1 || $IPYTHON_ONLY == 1 ]] || dwarfs_build
log "images: $(cd "$APPS_DIR" && du -sh --apparent-size ./*.AppImage | tr '\n\t' ', ')"
[[ $ONLY_BUILD == 1 ]] && exit 0

# ---------------------------------------------------------------------------
# Measuring.

RESULTS=$WORK/results.tsv
printf 'scenario\tapp\tcomp\ttool\trep\tmetric\tvalue\tnote\n' >"$RESULTS"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "host: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "reps: $REPS; apps: ${APPS[*]}; read-all app: $READ_APP"
    echo "appimagefs: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
    echo "versions: chromium $(pkg_version chromium), python3.11 $(pkg_version python3.11-minimal), squashfuse $(pkg_version squashfuse), squashfs-tools $(pkg_version squashfs-tools)"
} >"$WORK/run-info.txt"

now() { local t=${EPOCHREALTIME/./}; echo "${t#0}"; } # microseconds
rec() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }
fail() { # scenario app comp tool rep reason
    rec "$1" "$2" "$3" "$4" "$5" fail "" "$6"
    log "  $4 $2/$3 ($1): FAILED: $6"
}
vmhwm() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo ""; }
# CPU time (user + system, all threads) of a process so far, in ms.
TICK_MS=$((1000 / $(getconf CLK_TCK)))
cpu_ms() { awk -v t="$TICK_MS" '{ sub(/^.*\) /, ""); print ($12 + $13) * t }' "/proc/$1/stat" 2>/dev/null || echo ""; }

MNT=$RUN/mnt
XDIR=$RUN/extract
OUT=$RUN/out
ERR=$RUN/err

# The app's CPU time is read from a cgroup v2 of its own (cpu.stat
# usage_usec): it counts every process a launch starts, also those nobody
# waits for (Chromium's zygote and renderers, about half of its CPU), which
# bash's `time` and getrusage miss. Without a writable cgroup v2 hierarchy
# it is not measured and the report prints no CPU floor.
APP_CG=
CG2_ROOT=$(findmnt -n -o TARGET -t cgroup2 2>/dev/null | head -1)
if [[ -n $CG2_ROOT ]] && mkdir "$CG2_ROOT/appimagefs-bench-$$" 2>/dev/null; then
    APP_CG=$CG2_ROOT/appimagefs-bench-$$
else
    log "no writable cgroup v2 hierarchy: the apps' CPU time is not measured"
fi
cg_usage_us() { awk '$1 == "usage_usec" { print $2 }' "$APP_CG/cpu.stat"; }

# Runs an AppRun (or an AppImage), checks it printed the marker.
# run_app CMD...: runs one launch; sets APP_CPU_MS to the CPU time (user +
# system) of every process of the launch, or to nothing without APP_CG.
run_app() {
    local rc=0 before=
    [[ -n $APP_CG ]] && before=$(cg_usage_us)
    # shellcheck disable=SC2016 # $$ and "$@" belong to the inner shell
    TMPDIR=$RUN/tmp APP_CG=$APP_CG timeout "$APP_TIMEOUT" sh -c \
        '[ -z "$APP_CG" ] || echo $$ >"$APP_CG/cgroup.procs"; exec "$@"' app "$@" \
        >"$OUT" 2>"$ERR" || rc=$?
    APP_CPU_MS=
    [[ -n $APP_CG ]] && APP_CPU_MS=$((($(cg_usage_us) - before) / 1000))
    if [[ $rc != 0 ]] || ! grep -q appimagefs-bench-ok "$OUT"; then
        LAST_ERROR="exit $rc: $(grep -v -e '^\[' -e '^$' "$ERR" | head -2 | tr '\n' ' ' | cut -c1-200)"
        return 1
    fi
}

unmount() { # path; waits until it is no longer a mount point
    local m=$1 i
    for i in $(seq 100); do
        mountpoint -q "$m" || return 0
        umount "$m" 2>/dev/null || fusermount3 -u "$m" 2>/dev/null || true
        mountpoint -q "$m" || return 0
        sleep 0.05
    done
    log "  $m stays busy; detaching lazily"
    umount -l "$m" 2>/dev/null || fusermount3 -uz "$m"
}

wait_gone() { # pid
    local i
    for i in $(seq 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.01; done
}

# mount_tool TOOL APP COMP -> sets DIR (the AppDir); for the runtime also PID
# (the process started). find_daemon finds the FUSE servers afterwards.
mount_tool() {
    local tool=$1 app=$2 comp=$3 img=$IMAGES/$2-$3.AppImage i
    PID=
    MPID=
    case $tool in
    plain) DIR=$APPDIRS/$app ;;
    kernel)
        mount -t squashfs -o loop,ro,offset=$OFFSET "$img" "$MNT" 2>"$ERR" || { LAST_ERROR=$(head -c 200 "$ERR"); return 1; }
        DIR=$MNT
        ;;
    squashfuse)
        squashfuse_ll -o offset=$OFFSET "$img" "$MNT" 2>"$ERR" || { LAST_ERROR=$(head -c 200 "$ERR"); return 1; }
        DIR=$MNT
        ;;
    appimagefs)
        "$BIN" "$APPS_DIR" "$MNT" 2>>"$WORK/appimagefs.log" || { LAST_ERROR="appimagefs did not mount (see $WORK/appimagefs.log)"; return 1; }
        DIR=$MNT/$app-$comp
        ;;
    cachedir)
        # A new daemon with the app's cache folder, filled by prime_cache_dir.
        "$BIN" "$APPS_DIR" "$MNT" --cache-dir "$CACHE_DIRS/$app-$comp" 2>>"$WORK/appimagefs.log" || { LAST_ERROR="appimagefs --cache-dir did not mount (see $WORK/appimagefs.log)"; return 1; }
        DIR=$MNT/$app-$comp
        ;;
    runtime)
        # The runtime mounts itself and waits until killed.
        : >"$OUT"
        TMPDIR=$RUN/tmp "$img" --appimage-mount >"$OUT" 2>"$ERR" &
        PID=$!
        BG_PIDS+=("$PID")
        for i in $(seq 1000); do
            [[ -s $OUT ]] && break
            kill -0 "$PID" 2>/dev/null || break
            sleep 0.01
        done
        DIR=$(head -1 "$OUT")
        if [[ -z $DIR || ! -d $DIR ]]; then
            LAST_ERROR="--appimage-mount: $(head -c 200 "$ERR" | tr '\n' ' ')"
            kill "$PID" 2>/dev/null
            wait "$PID" 2>/dev/null
            return 1
        fi
        ;;
    esac
}

# find_daemon TOOL APP COMP -> sets PID and MPID to the FUSE server that
# mount_tool started (MPID: the one whose memory and CPU are recorded).
# Called once the timed part is over: pgrep reads every process's command
# line (about 8 ms on the 2-vCPU VM), which would otherwise be counted in
# the mount and cold start of the FUSE tools and not in the others'.
find_daemon() {
    local tool=$1 app=$2 comp=$3 img=$IMAGES/$2-$3.AppImage
    case $tool in
    squashfuse) PID=$(pgrep -xf "squashfuse_ll -o offset=$OFFSET $img $MNT" | head -1) ;;
    appimagefs) PID=$(pgrep -xf "$BIN $APPS_DIR $MNT" | head -1) ;;
    cachedir) PID=$(pgrep -xf "$BIN $APPS_DIR $MNT --cache-dir $CACHE_DIRS/$app-$comp" | head -1) ;;
    # The runtime's FUSE server is a forked child of the process started.
    runtime) MPID=$(pgrep -xf "$img --appimage-mount" | grep -vx "$PID" | head -1) ;;
    esac
    [[ $tool == runtime ]] || MPID=$PID
}

umount_tool() {
    local tool=$1
    case $tool in
    kernel | squashfuse | appimagefs | cachedir)
        unmount "$MNT"
        [[ -z $PID ]] || wait_gone "$PID"
        ;;
    runtime)
        kill -TERM "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null || true
        unmount "$DIR"
        [[ -z $MPID ]] || wait_gone "$MPID"
        ;;
    esac
}

declare -A SLOW=()
# slow_skip KEY: true when KEY was too slow in an earlier repetition.
slow_skip() { [[ -n ${SLOW[$1]:-} ]]; }
# slow_check KEY MICROSECONDS: remembers KEY when it took too long.
slow_check() {
    if [[ $2 -gt $((SLOW_LIMIT * 1000000)) ]]; then
        SLOW[$1]=1
        log "  $1 took $(($2 / 1000000)) s (> ${SLOW_LIMIT} s): not repeated"
    fi
}

# Cold start (mount + first launch) and second launch on the same mount.
cold_start() {
    local tool=$1 app=$2 comp=$3 rep=$4 img=$IMAGES/$2-$3.AppImage t0 tm t1 t2 cpu1 hwm ok2=1
    slow_skip "cold/$app/$comp/$tool" && return
    cat "$img" >/dev/null
    case $tool in
    extract)
        rm -rf "$XDIR"
        t0=$(now)
        unsquashfs -q -n -o "$OFFSET" -d "$XDIR" "$img" >/dev/null 2>"$ERR" || { fail cold "$app" "$comp" "$tool" "$rep" "unsquashfs: $(head -c 200 "$ERR")"; return; }
        tm=$(now)
        run_app "$XDIR/AppRun" || { fail cold "$app" "$comp" "$tool" "$rep" "$LAST_ERROR"; rm -rf "$XDIR"; return; }
        t1=$(now) cpu1=$APP_CPU_MS
        run_app "$XDIR/AppRun" || ok2=0
        t2=$(now)
        rm -rf "$XDIR"
        ;;
    runtime)
        t0=$(now)
        run_app "$img" || { fail cold "$app" "$comp" "$tool" "$rep" "$LAST_ERROR"; return; }
        t1=$(now) cpu1=$APP_CPU_MS
        tm=$t0
        run_app "$img" || ok2=0
        t2=$(now)
        ;;
    *)
        t0=$(now)
        mount_tool "$tool" "$app" "$comp" || { fail cold "$app" "$comp" "$tool" "$rep" "$LAST_ERROR"; return; }
        tm=$(now)
        if ! run_app "$DIR/AppRun"; then
            fail cold "$app" "$comp" "$tool" "$rep" "$LAST_ERROR"
            find_daemon "$tool" "$app" "$comp"
            umount_tool "$tool"
            return
        fi
        t1=$(now) cpu1=$APP_CPU_MS
        run_app "$DIR/AppRun" || ok2=0
        t2=$(now)
        find_daemon "$tool" "$app" "$comp"
        if [[ -n $MPID ]]; then
            rec cold "$app" "$comp" "$tool" "$rep" hwm_kb "$(vmhwm "$MPID")" ""
            rec cold "$app" "$comp" "$tool" "$rep" cpu_ms "$(cpu_ms "$MPID")" ""
        fi
        umount_tool "$tool"
        ;;
    esac
    slow_check "cold/$app/$comp/$tool" $((t2 - t0))
    rec cold "$app" "$comp" "$tool" "$rep" us $((t1 - t0)) ""
    rec cold "$app" "$comp" "$tool" "$rep" app_cpu_ms "$cpu1" ""
    rec cold "$app" "$comp" "$tool" "$rep" mount_us $((tm - t0)) ""
    if [[ $ok2 == 1 ]]; then
        rec second "$app" "$comp" "$tool" "$rep" us $((t2 - t1)) ""
    else
        fail second "$app" "$comp" "$tool" "$rep" "$LAST_ERROR"
    fi
}

# The --cache-dir rows: each app and packing gets its own cache folder,
# filled by one unmeasured launch in a daemon of its own (blocks, the
# start-up profile and the files read at start-up kept whole for
# passthrough); the measured launches then each start a new daemon
# on it, as a new container mapping the host's folder would. The folder's
# files stay in the page cache, as they would on a host that ran the app
# recently. Disk used is recorded as cachedir_kb.
CACHE_DIRS=$RUN/cache-dirs
prime_cache_dir() {
    local app=$1 comp=$2
    rm -rf "${CACHE_DIRS:?}/$app-$comp"
    mkdir -p "$CACHE_DIRS"
    mount_tool cachedir "$app" "$comp" || { fail cachedir "$app" "$comp" cachedir 0 "$LAST_ERROR"; return 1; }
    local ok=1
    run_app "$DIR/AppRun" || ok=0
    find_daemon cachedir "$app" "$comp"
    if [[ $ok == 0 ]]; then
        fail cachedir "$app" "$comp" cachedir 0 "priming: $LAST_ERROR"
        umount_tool cachedir
        return 1
    fi
    umount_tool cachedir
    # The daemon writes the files the app read at start-up whole into the
    # folder before it exits (at the lowest CPU priority while the app
    # runs): wait for that, as a host would have before its next launch.
    local i
    for i in $(seq 600); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    rec cold "$app" "$comp" cachedir 0 cachedir_kb "$(du -sk "$CACHE_DIRS/$app-$comp" | cut -f1)" ""
}

# A fresh mount, then one command over the whole AppDir.
walk_or_read() {
    local scenario=$1 tool=$2 app=$3 comp=$4 rep=$5 img=$IMAGES/$3-$4.AppImage t0 t1 got want hwm cpu
    slow_skip "$scenario/$app/$comp/$tool" && return
    cat "$img" >/dev/null
    mount_tool "$tool" "$app" "$comp" || { fail "$scenario" "$app" "$comp" "$tool" "$rep" "$LAST_ERROR"; return; }
    t0=$(now)
    if [[ $scenario == walk ]]; then
        got=$(find "$DIR/" -printf '%s %m %p\n' 2>"$ERR" | wc -l)
        want=${WALK_COUNTS[$app]}
    else
        got=$(tar cf - -C "$DIR" . 2>"$ERR" | wc -c)
        want=$TAR_BYTES
    fi
    t1=$(now)
    find_daemon "$tool" "$app" "$comp"
    [[ -z $MPID ]] || { hwm=$(vmhwm "$MPID"); cpu=$(cpu_ms "$MPID"); }
    umount_tool "$tool"
    if [[ $got != "$want" ]]; then
        fail "$scenario" "$app" "$comp" "$tool" "$rep" "got $got, expected $want: $(head -c 200 "$ERR")"
        return
    fi
    slow_check "$scenario/$app/$comp/$tool" $((t1 - t0))
    rec "$scenario" "$app" "$comp" "$tool" "$rep" us $((t1 - t0)) ""
    [[ -z $MPID ]] || rec "$scenario" "$app" "$comp" "$tool" "$rep" hwm_kb "$hwm" ""
    [[ -z $MPID ]] || rec "$scenario" "$app" "$comp" "$tool" "$rep" cpu_ms "$cpu" ""
}

# Time until a folder of 100 AppImages is mounted and listable.
mount_hundred() {
    local tool=$1 rep=$2 t0 t1 got i f m pids=()
    local src=$RUN/hundred
    for f in "$src"/*; do cat "$f" >/dev/null; done
    case $tool in
    appimagefs)
        t0=$(now)
        "$BIN" "$src" "$MNT" 2>>"$WORK/appimagefs.log" || { fail mount100 all mixed "$tool" "$rep" "appimagefs did not mount"; return; }
        got=$(ls "$MNT" | wc -l)
        t1=$(now)
        PID=$(pgrep -xf "$BIN $src $MNT" | head -1)
        unmount "$MNT"
        [[ -z $PID ]] || wait_gone "$PID"
        [[ $got -ge 100 ]] || { fail mount100 all mixed "$tool" "$rep" "ls shows $got entries"; return; }
        ;;
    kernel | squashfuse)
        got=0
        t0=$(now)
        for f in "$src"/*; do
            m=$RUN/m100/$(basename "$f")
            mkdir -p "$m"
            if [[ $tool == kernel ]]; then
                mount -t squashfs -o loop,ro,offset=$OFFSET "$f" "$m" 2>/dev/null || continue
            else
                squashfuse_ll -o offset=$OFFSET "$f" "$m" 2>/dev/null || continue
            fi
            ls "$m" >/dev/null && got=$((got + 1))
        done
        t1=$(now)
        for m in "$RUN"/m100/*; do unmount "$m"; done
        rm -rf "$RUN/m100"
        [[ $got == 100 ]] || { fail mount100 all mixed "$tool" "$rep" "only $got of 100 mounted"; return; }
        ;;
    esac
    rec mount100 all mixed "$tool" "$rep" us $((t1 - t0)) ""
}

# Rotates the list of tools by the repetition number (interleaving).
rotate() {
    local k=$1
    shift
    local a=("$@") n=$#
    local i
    for ((i = 0; i < n; i++)); do echo "${a[$(((i + k) % n))]}"; done
}

declare -A WALK_COUNTS=()
for app in "${ALL_APPS[@]}" "${IPY_APPS[@]}"; do
    [[ $app == manyfiles || $app == ipython ]] || continue
    WALK_COUNTS[$app]=$(find "$APPDIRS/$app/" -printf '%s %m %p\n' | wc -l)
    echo "walk: $app, ${WALK_COUNTS[$app]} entries" >>"$WORK/run-info.txt"
done
if [[ $IPYTHON_ONLY == 0 ]]; then
    TAR_BYTES=$(tar cf - -C "$APPDIRS/$READ_APP" . | wc -c)
    CONTENT_BYTES=$(find "$APPDIRS/$READ_APP" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
    echo "read-all: $READ_APP, $CONTENT_BYTES bytes in files" >>"$WORK/run-info.txt"
    echo "content_bytes $READ_APP $CONTENT_BYTES" >>"$WORK/run-info.txt"
fi

COLD_TOOLS=(plain appimagefs kernel squashfuse extract "${RUNTIME_TOOL[@]}")
FS_TOOLS=(plain appimagefs kernel squashfuse "${RUNTIME_TOOL[@]}")
if [[ ${#RUNTIME_TOOL[@]} == 0 ]]; then
    echo "AppImage runtime: not measured (set BENCH_RUNTIME to a real type 2 runtime to add it)" >>"$WORK/run-info.txt"
else
    echo "AppImage runtime: $BENCH_RUNTIME" >>"$WORK/run-info.txt"
fi
[[ $CACHE_DIR_ONLY == 1 || $IPYTHON_ONLY == 1 ]] || dwarfs_info >>"$WORK/run-info.txt"
declare -A PRIMED=()
for app in "${APPS[@]}"; do
    for comp in "${COMPS[@]}"; do
        [[ $DWARFS_ONLY == 0 ]] || continue
        log "filling the cache folder of $app/$comp"
        prime_cache_dir "$app" "$comp" && PRIMED[$app/$comp]=1
    done
done
start=$(now)
for ((rep = 1; rep <= REPS; rep++)); do
    log "repetition $rep of $REPS"
    if [[ $CACHE_DIR_ONLY == 1 ]]; then
        for app in "${APPS[@]}"; do
            for comp in "${COMPS[@]}"; do
                [[ -n ${PRIMED[$app/$comp]:-} ]] || continue
                for tool in $(rotate "$rep" plain appimagefs cachedir); do
                    cold_start "$tool" "$app" "$comp" "$rep"
                done
            done
        done
        log "  $(((($(now) - start) / 1000000))) s so far"
        continue
    fi
    if [[ $IPYTHON_ONLY == 1 ]]; then
        ipython_rows "$rep"
        log "  $(((($(now) - start) / 1000000))) s so far"
        continue
    fi
    if [[ $DWARFS_ONLY == 1 ]]; then
        dwarfs_measure "$rep"
        log "  $(((($(now) - start) / 1000000))) s so far"
        continue
    fi
    for app in "${APPS[@]}"; do
        for comp in "${COLD_COMPS[@]}"; do
            tools_now=("${COLD_TOOLS[@]}")
            [[ -z ${PRIMED[$app/$comp]:-} ]] || tools_now+=(cachedir)
            for tool in $(rotate "$rep" "${tools_now[@]}"); do
                cold_start "$tool" "$app" "$comp" "$rep"
            done
        done
    done
    for comp in "${COMPS[@]}"; do
        for tool in $(rotate "$rep" "${FS_TOOLS[@]}"); do
            walk_or_read walk "$tool" manyfiles "$comp" "$rep"
        done
    done
    [[ ${#IPY_APPS[@]} == 0 ]] || ipython_rows "$rep"
    for comp in "${COMPS[@]}"; do
        for tool in $(rotate "$rep" "${FS_TOOLS[@]}"); do
            walk_or_read read "$tool" "$READ_APP" "$comp" "$rep"
        done
    done
    for tool in $(rotate "$rep" appimagefs kernel squashfuse); do
        mount_hundred "$tool" "$rep"
    done
    dwarfs_measure "$rep"
    log "  $(((($(now) - start) / 1000000))) s so far"
done
echo "measured in $((($(now) - start) / 1000000)) s; load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/run-info.txt"

"$PY" "$HELPERS/report.py" "$RESULTS" "$WORK/run-info.txt" | tee "$WORK/report.md"
