#!/usr/bin/env bash
# Sets a fresh Debian machine up for appimagefs: the Debian packages it and
# its tests need, a release build installed as /usr/local/bin/appimagefs,
# and the two folders of the README's first command (/share/AppImages, the
# source, and /opt/apps, the mount point) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  fuse3             # fusermount3, /etc/fuse.conf
  squashfs-tools    # tests: mksquashfs, unsquashfs (ground truth)
  xorriso           # tests: ISO 9660 ground truth and test images
  desktop-file-utils  # tests: desktop-file-validate
  attr              # tests: setfattr/getfattr
  xvfb              # tests (menu GUI check): virtual X server, -fbdir screenshots
  x11-utils         # tests (menu GUI check): xmessage, the X11 app wrapped in a test AppImage; xwininfo finds its window
  libgtk2.0-0       # tests/corpus (gui check): the real Leafpad AppImage is GTK 2 and expects the host's libgtk2
  debootstrap       # scripts/test-package.sh: Debian 11 and 12 roots for the portable binary and the .deb
  binutils          # scripts/package.sh: objdump, readelf, objcopy check and strip the portable binary
  libglib2.0-bin    # tests (file types): gio reads share/mime and share/applications as desktops do
  chromium          # tests (browser sandbox): /usr/lib/chromium is wrapped in a test AppImage
  python3-seccomp   # tests (browser sandbox): loads a filter refusing user namespaces, as Docker's does
)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi
cargo build --release --locked
install -m 0755 target/release/appimagefs /usr/local/bin/appimagefs
echo "installed /usr/local/bin/appimagefs"

# The README's first command mounts /share/AppImages on /opt/apps. A folder
# that exists already is left exactly as it is.
for dir in /share/AppImages /opt/apps; do
  if [[ ! -e $dir && ! -L $dir ]]; then
    mkdir -p "$dir"
    echo "created $dir"
  fi
done
