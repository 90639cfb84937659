#!/usr/bin/env bash
# Builds the release artefacts into dist/:
#   dist/appimagefs-VERSION-x86_64-linux      portable binary (glibc 2.17+, no libstdc++)
#   dist/appimagefs_VERSION_amd64.deb         that binary, the systemd unit, man pages,
#                                             bash/zsh/fish completions
#   dist/docs/{man,completions}/              the generated man pages and completions
# It needs cargo, and cargo-zigbuild with zig (installed from PyPI when
# missing: pip install ziglang cargo-zigbuild). aarch64 is built too when the
# toolchain has the aarch64-unknown-linux-gnu standard library.
set -euo pipefail
cd "$(dirname "$0")/.."

GLIBC=2.17
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
dist=dist
rm -rf "$dist"
mkdir -p "$dist"

if ! command -v cargo-zigbuild >/dev/null || ! python3 -c 'import ziglang' 2>/dev/null; then
  echo "== installing ziglang and cargo-zigbuild from PyPI"
  pip install --quiet ziglang cargo-zigbuild
fi

# Checks that a binary needs glibc $GLIBC at most and no C++ or GCC runtime.
check_portable() {
  local bin=$1 max needed
  max=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
  needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  echo "   $bin: newest glibc symbol version $max; needs: $needed"
  if [ "$(printf '%s\n%s\n' "$max" "$GLIBC" | sort -V | tail -1)" != "$GLIBC" ]; then
    echo "error: $bin needs glibc $max, newer than $GLIBC" >&2
    exit 1
  fi
  if grep -Eq 'libstdc\+\+|libgcc_s' <<<"$needed"; then
    echo "error: $bin links $needed (C++/GCC runtime)" >&2
    exit 1
  fi
}

# Builds the portable binary for one Rust target triple into dist/.
build_portable() {
  local triple=$1 arch=$2 out
  echo "== cargo zigbuild --release --target $triple.$GLIBC"
  cargo zigbuild --release --locked --target "$triple.$GLIBC"
  out="$dist/appimagefs-$version-$arch-linux"
  objcopy --strip-debug "target/$triple/release/appimagefs" "$out"
  chmod 0755 "$out"
  check_portable "$out"
}

build_portable x86_64-unknown-linux-gnu x86_64
installed=$(rustup target list --installed 2>/dev/null || true)
if grep -qx aarch64-unknown-linux-gnu <<<"$installed"; then
  build_portable aarch64-unknown-linux-gnu aarch64
else
  echo "== aarch64 skipped: this toolchain has no aarch64-unknown-linux-gnu standard library"
  echo "   (rustup target add aarch64-unknown-linux-gnu where rustup can download it)"
fi

echo "== man pages and completions (examples/gen-docs.rs)"
cargo run --release --locked --quiet --example gen-docs -- "$dist/docs"

echo "== Debian package"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$dist/appimagefs-$version-x86_64-linux" "$root/usr/bin/appimagefs"
install -D -m 0644 packaging/appimagefs.service "$root/lib/systemd/system/appimagefs.service"
for page in "$dist"/docs/man/*.1; do
  install -D -m 0644 "$page" "$root/usr/share/man/man1/$(basename "$page")"
  gzip -9n "$root/usr/share/man/man1/$(basename "$page")"
done
install -D -m 0644 "$dist/docs/completions/appimagefs.bash" \
  "$root/usr/share/bash-completion/completions/appimagefs"
install -D -m 0644 "$dist/docs/completions/_appimagefs" \
  "$root/usr/share/zsh/vendor-completions/_appimagefs"
install -D -m 0644 "$dist/docs/completions/appimagefs.fish" \
  "$root/usr/share/fish/vendor_completions.d/appimagefs.fish"
install -D -m 0644 README.md "$root/usr/share/doc/appimagefs/README.md"
gzip -9n "$root/usr/share/doc/appimagefs/README.md"
install -D -m 0644 SECURITY.md "$root/usr/share/doc/appimagefs/SECURITY.md"
printf '%s\n' \
  'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' \
  'Upstream-Name: appimagefs' '' 'Files: *' 'License: MIT' \
  > "$root/usr/share/doc/appimagefs/copyright"
mkdir -p "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" packaging/debian/control.in > "$root/DEBIAN/control"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
dpkg-deb --root-owner-group -Zxz --build "$root" "$dist/appimagefs_${version}_amd64.deb" >/dev/null
echo "   $dist/appimagefs_${version}_amd64.deb"
dpkg-deb --contents "$dist/appimagefs_${version}_amd64.deb" | awk '{print "   " $6}'
echo "== done: $(ls "$dist" | tr '\n' ' ')"
