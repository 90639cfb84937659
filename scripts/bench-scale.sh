#!/usr/bin/env bash
# Scale: how appimagefs copes with many AppImages in one folder. For each
# count N (default 100, 1,000 and 10,000) it fills a folder with N hard
# links (or, with --copies, copies) of one small AppImage, mounts it with
# the open-file limit at 1024 (soft and hard, so the daemon cannot raise
# it) and measures:
#
#   ready    seconds from starting `appimagefs SRC MNT` until it returns
#            (it returns once the mount is ready)
#   listed   names at the top of the mount (N apps + bin + share)
#   fds      descriptors of the daemon (ls /proc/PID/fd | wc -l): after
#            the mount, after reading one file of each of --open apps
#            (default 1,000), and after listing bin/ (which opens every
#            image)
#   rss      the daemon's VmRSS (MiB) at those three points, and VmHWM
#
#   bash scripts/bench-scale.sh                       # 100, 1000, 10000
#   bash scripts/bench-scale.sh --counts "100 1000"   # other counts
#   bash scripts/bench-scale.sh --app FILE            # another seed AppImage
#   bash scripts/bench-scale.sh --copies              # copies, not hard links
#   BENCH_WORK=DIR bash scripts/bench-scale.sh        # work folder (default /var/tmp/appimagefs-bench-scale)
#
# Runs as root. The seed defaults to a small Echo-like AppImage built here
# (mksquashfs, gzip: AppRun, a desktop entry, an icon, /bin/echo, behind the
# stand-in runtime of scripts/stub-runtime.sh). The block cache budget is
# the one given with --cache-size (default 64M) and is part of the RSS.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APP=
COUNTS="100 1000 10000"
OPEN=1000
COPIES=0
CACHE=64M
WORK=${BENCH_WORK:-/var/tmp/appimagefs-bench-scale}
NOFILE=1024

while [ $# -gt 0 ]; do
    case $1 in
        --app) APP=$2; shift 2 ;;
        --counts) COUNTS=$2; shift 2 ;;
        --open) OPEN=$2; shift 2 ;;
        --copies) COPIES=1; shift ;;
        --cache-size) CACHE=$2; shift 2 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

mkdir -p "$WORK"
if [ -z "$APP" ]; then
    # shellcheck source=scripts/stub-runtime.sh
    . "$ROOT/scripts/stub-runtime.sh"
    appdir=$WORK/seed.AppDir
    rm -rf "$appdir" "$WORK/seed.sqfs"
    mkdir -p "$appdir/usr/bin" "$appdir/usr/share/applications"
    cp /bin/echo "$appdir/usr/bin/echo"
    printf '#!/bin/sh\nexec "$(dirname "$0")/usr/bin/echo" "$@"\n' >"$appdir/AppRun"
    chmod 0755 "$appdir/AppRun"
    printf '[Desktop Entry]\nType=Application\nName=Echo\nExec=echo %%F\nIcon=echo\n' \
        >"$appdir/usr/share/applications/echo.desktop"
    ln -s usr/share/applications/echo.desktop "$appdir/echo.desktop"
    printf '<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48"/>\n' >"$appdir/echo.svg"
    ln -s echo.svg "$appdir/.DirIcon"
    mksquashfs "$appdir" "$WORK/seed.sqfs" -comp gzip -all-root -noappend -quiet >/dev/null
    APP=$WORK/Echo-x86_64.AppImage
    write_stub_runtime "$APP" 2
    cat "$WORK/seed.sqfs" >>"$APP"
fi
[ -f "$APP" ] || { echo "seed AppImage $APP not found (--app FILE)" >&2; exit 1; }
BIN=$ROOT/target/release/appimagefs
(cd "$ROOT" && cargo build --release --locked --quiet)

rss_mib() { awk -v k="$2" '$1 == k":" { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
daemon_pid() {
    local p
    for p in /proc/[0-9]*; do
        if { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null | grep -q -- " $1\( \|$\)"; then
            basename "$p"
            return
        fi
    done
}

mkdir -p "$WORK"
echo "| AppImages | ready (s) | listed | fds mounted | fds after $OPEN opened | fds after bin/ | RSS mounted (MiB) | RSS $OPEN opened | RSS after bin/ | peak RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for n in $COUNTS; do
    src=$WORK/src-$n
    mnt=$WORK/mnt-$n
    if [ "$(ls "$src" 2>/dev/null | wc -l)" != "$n" ]; then
        rm -rf "$src"
        mkdir -p "$src"
        for i in $(seq -f %05g 0 $((n - 1))); do
            if [ $COPIES = 1 ]; then cp "$APP" "$src/app-$i.AppImage"; else ln "$APP" "$src/app-$i.AppImage"; fi
        done
    fi
    mkdir -p "$mnt"
    start=$(date +%s.%N)
    (ulimit -n $NOFILE; exec "$BIN" "$src" "$mnt" -o cache_size=$CACHE) 2> "$WORK/log-$n"
    ready=$(echo "$(date +%s.%N) - $start" | bc)
    pid=$(daemon_pid "$mnt")
    listed=$(ls "$mnt" | wc -l)
    fd0=$(fds "$pid"); rss0=$(rss_mib "$pid" VmRSS)
    m=$(( n < OPEN ? n : OPEN ))
    seq -f "$mnt/app-%05g/AppRun" 0 $((m - 1)) | xargs cat > /dev/null
    fd1=$(fds "$pid"); rss1=$(rss_mib "$pid" VmRSS)
    ls "$mnt/bin" > /dev/null
    fd2=$(fds "$pid"); rss2=$(rss_mib "$pid" VmRSS); peak=$(rss_mib "$pid" VmHWM)
    umount "$mnt"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    printf '| %s | %.2f | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$n" "$ready" "$listed" "$fd0" "$fd1" "$fd2" "$rss0" "$rss1" "$rss2" "$peak"
done
