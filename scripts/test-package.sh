#!/usr/bin/env bash
# Tests what scripts/package.sh builds, on the distributions it promises:
#
# - the portable binary, inside a Debian 11 (bullseye, glibc 2.31) root:
#   --help, inspect, and a real mount (type fuse.appimagefs) with an app
#   launched through bin/ and through its AppRun;
# - the .deb, in a fresh Debian 12 (bookworm) root: dpkg -i, the unit passes
#   systemd-analyze verify, man appimagefs and man appimagefs-inspect render,
#   the bash completion loads, dpkg -r removes it.
#
# The roots are made once with debootstrap --variant=minbase from Debian's
# mirror and cached in $APPIMAGEFS_TEST_CACHE (default
# /var/cache/appimagefs-test); each run works on an overlay of them, so the
# cache stays pristine and reruns take seconds. Runs package.sh first when
# dist/ lacks the artefacts. Needs root, debootstrap, mksquashfs, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

cache=${APPIMAGEFS_TEST_CACHE:-/var/cache/appimagefs-test}
mirror=${DEBIAN_MIRROR:-} # empty: debootstrap's default Debian mirror
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
bin=dist/appimagefs-$version-x86_64-linux
deb=dist/appimagefs_${version}_amd64.deb

[ "$(id -u)" = 0 ] || { echo "test-package.sh: needs root (chroot, mounts)" >&2; exit 1; }
if [ ! -x "$bin" ] || [ ! -f "$deb" ]; then
  bash scripts/package.sh
fi

work=$(mktemp -d /tmp/appimagefs-package-test.XXXXXX)

# Every process whose root is inside $work (started by this script in a
# chroot) and every mount below $work go away on exit, deepest mount first.
cleanup() {
  local p root
  for p in /proc/[0-9]*; do
    root=$(readlink "$p/root" 2>/dev/null) || continue
    case $root in "$work"/*) kill -TERM "${p#/proc/}" 2>/dev/null || true ;; esac
  done
  awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
# has TEXT PATTERN: grep without a pipe (with pipefail, a writer killed by
# SIGPIPE when grep -q stops early would fail the script).
has() { grep -q -- "$2" <<<"$1"; }
pass() { echo "ok: $*"; }

# A cached debootstrap root: $cache/NAME for SUITE with extra packages.
cached_root() {
  local name=$1 suite=$2 include=${3:-}
  if [ ! -x "$cache/$name/bin/sh" ]; then
    echo "== debootstrap --variant=minbase $suite into $cache/$name (once; cached)"
    mkdir -p "$cache"
    rm -rf "$cache/$name.tmp"
    debootstrap --variant=minbase ${include:+--include=$include} "$suite" \
      "$cache/$name.tmp" ${mirror:+"$mirror"} > "$cache/$name.log" 2>&1 ||
      { tail -20 "$cache/$name.log" >&2; fail "debootstrap $suite"; }
    mv "$cache/$name.tmp" "$cache/$name"
  fi
}

# A writable overlay of a cached root with /proc and /dev/fuse bound in.
# Prints the merged root's path.
overlay_root() {
  local name=$1 r=$work/$1
  mkdir -p "$r/upper" "$r/work" "$r/root"
  mount -t overlay overlay \
    -o "lowerdir=$cache/$name,upperdir=$r/upper,workdir=$r/work" "$r/root"
  mount -t proc proc "$r/root/proc"
  touch "$r/root/dev/fuse"
  mount --bind /dev/fuse "$r/root/dev/fuse"
  echo "$r/root"
}

# A type 2 AppImage: a stand-in runtime (an x86_64 ELF whose section headers
# end where the SquashFS starts, 'AI\x02' at byte 8, as in
# tests/common/runtime_stub.rs) followed by mksquashfs of TREE.
make_appimage() {
  local tree=$1 out=$2
  mksquashfs "$tree" "$work/payload.sqfs" -noappend -quiet -no-progress -comp gzip >/dev/null
  python3 - "$work/payload.sqfs" "$out" <<'PY'
import struct, sys
names = b"\0.text\0.upd_info\0.sha256_sig\0.sig_key\0.shstrtab\0"
sections = [(1, 1, bytes(4096)), (7, 7, bytes(1024)), (17, 7, bytes(1024)),
            (29, 7, bytes(8192)), (38, 3, names)]
out = bytearray(64)
headers = [(0, 0, 0, 0)]
for name, kind, data in sections:
    out += bytes(-len(out) % 16)
    headers.append((name, kind, len(out), len(data)))
    out += data
out += bytes(-len(out) % 8)
shoff = len(out)
for name, kind, offset, size in headers:
    h = bytearray(64)
    struct.pack_into("<II", h, 0, name, kind)
    struct.pack_into("<QQ", h, 0x18, offset, size)
    struct.pack_into("<Q", h, 0x30, 1)
    out += h
out[0:7] = b"\x7fELF\x02\x01\x01"
out[8:11] = b"AI\x02"
struct.pack_into("<HHI", out, 16, 2, 62, 1)
struct.pack_into("<Q", out, 0x28, shoff)
struct.pack_into("<HxxxxHHH", out, 0x34, 64, 64, len(headers), len(headers) - 1)
with open(sys.argv[2], "wb") as f:
    f.write(out + open(sys.argv[1], "rb").read())
PY
  chmod 0755 "$out"
}

start=$(date +%s)

# ---------------------------------------------------------------------------
echo "== portable binary in Debian 11 (bullseye)"
cached_root bullseye bullseye
R=$(overlay_root bullseye)
glibc=$(chroot "$R" ldd --version)
glibc=${glibc%%$'\n'*}
glibc=${glibc##* }
echo "   glibc in the root: $glibc"
install -D -m 0755 "$bin" "$R/usr/local/bin/appimagefs"

tree=$work/hello-tree
mkdir -p "$tree" "$R/srv/apps"
printf '#!/bin/sh\necho "hello from AppRun: APPIMAGE=$APPIMAGE args=$*"\n' > "$tree/AppRun"
chmod 0755 "$tree/AppRun"
printf '[Desktop Entry]\nType=Application\nName=Hello\nExec=hello\nIcon=hello\nCategories=Utility;\n' \
  > "$tree/hello.desktop"
make_appimage "$tree" "$R/srv/apps/hello.AppImage"
echo "not an AppImage" > "$R/srv/apps/notes.txt"

out=$(chroot "$R" appimagefs --help) && has "$out" "SOURCE_DIR" || fail "--help in bullseye: $out"
pass "appimagefs --help runs on glibc $glibc"

out=$(chroot "$R" appimagefs inspect /srv/apps/hello.AppImage) || fail "inspect: $out"
has "$out" "^ *type: *2 " && has "$out" "^ *usable: *yes" ||
  fail "inspect does not report a usable type 2 AppImage: $out"
pass "appimagefs inspect"

mkdir -p "$R/opt/apps"
log=$(chroot "$R" appimagefs /srv/apps /opt/apps 2>&1) || fail "mount: $log"
has "$log" "ready: 1 AppImage(s)" || fail "no ready line: $log"
fstype=$(awk -v m="$R/opt/apps" '$5 == m { sub(/.* - /, ""); print $1 }' /proc/self/mountinfo)
[ "$fstype" = fuse.appimagefs ] || fail "mount type is '$fstype'"
pass "mounted as fuse.appimagefs"

[ "$(ls "$R/opt/apps" | tr '\n' ' ')" = "bin hello share " ] ||
  fail "mount lists: $(ls "$R/opt/apps")"
ran=$(chroot "$R" /opt/apps/bin/hello one two) || fail "bin/hello: $ran"
[ "$ran" = "hello from AppRun: APPIMAGE=/srv/apps/hello.AppImage args=one two" ] ||
  fail "bin/hello printed: $ran"
ran=$(chroot "$R" /opt/apps/hello/AppRun three) || fail "AppRun: $ran"
has "$ran" "args=three" || fail "AppRun printed: $ran"
grep -q "^Exec=/opt/apps/bin/hello" "$R/opt/apps/share/applications/"*.desktop ||
  fail "menu entry: $(cat "$R/opt/apps/share/applications/"*.desktop)"
pass "app launched through bin/ and AppRun, menu entry present"

umount "$R/opt/apps"
for _ in $(seq 100); do
  alive=
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$R" ] && alive=1
  done
  [ -z "$alive" ] && break
  sleep 0.1
done
[ -z "$alive" ] || fail "the daemon did not exit after umount"
pass "umount ends the daemon"

# ---------------------------------------------------------------------------
echo "== .deb in Debian 12 (bookworm)"
cached_root bookworm-deb-test bookworm man-db,systemd
R=$(overlay_root bookworm-deb-test)
cp "$deb" "$R/tmp/appimagefs.deb"
out=$(chroot "$R" dpkg -i /tmp/appimagefs.deb 2>&1) || fail "dpkg -i: $out"
pass "dpkg -i"

out=$(chroot "$R" appimagefs --version) && has "$out" "appimagefs $version" ||
  fail "installed binary: $out"
out=$(chroot "$R" systemd-analyze verify /lib/systemd/system/appimagefs.service 2>&1) ||
  fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
grep -q '^LimitNOFILE=' "$R/lib/systemd/system/appimagefs.service" || fail "LimitNOFILE"
pass "systemd-analyze verify appimagefs.service"

page=$(chroot "$R" env MANWIDTH=80 man -P cat appimagefs 2>&1) || fail "man appimagefs: $page"
for want in "appimagefs - Mount every AppImage" "SYNOPSIS" "cache-size" "fuse.appimagefs" "EXAMPLES"; do
  has "$page" "$want" || fail "man appimagefs lacks '$want'"
done
page=$(chroot "$R" man -P cat appimagefs-inspect 2>&1) && has "$page" "--json" ||
  fail "man appimagefs-inspect: $page"
pass "man appimagefs and man appimagefs-inspect render"

out=$(chroot "$R" bash -c 'source /usr/share/bash-completion/completions/appimagefs &&
  complete -p appimagefs') && has "$out" _appimagefs || fail "bash completion: $out"
for f in usr/share/zsh/vendor-completions/_appimagefs usr/share/fish/vendor_completions.d/appimagefs.fish; do
  [ -s "$R/$f" ] || fail "missing /$f"
done
if command -v zsh >/dev/null; then
  zsh -n "$R/usr/share/zsh/vendor-completions/_appimagefs" || fail "zsh completion syntax"
fi
if command -v fish >/dev/null; then
  out=$(fish -c "source $R/usr/share/fish/vendor_completions.d/appimagefs.fish
    complete -C 'appimagefs --ca'") && has "$out" --cache-size || fail "fish completion: $out"
fi
pass "bash completion loads; zsh and fish completions installed (checked where the host has zsh, fish)"

out=$(chroot "$R" dpkg -r appimagefs 2>&1) || fail "dpkg -r: $out"
[ ! -e "$R/usr/bin/appimagefs" ] || fail "dpkg -r left the binary"
pass "dpkg -r"

echo "== all package tests passed in $(( $(date +%s) - start )) s"
