#!/usr/bin/env bash
# Sets a fresh Debian machine up for appimagefs: the Debian packages it and
# its tests need, then a release build installed as /usr/local/bin/appimagefs.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  fuse3             # fusermount3, /etc/fuse.conf
  squashfs-tools    # tests: mksquashfs, unsquashfs (ground truth)
  xorriso           # tests: ISO 9660 ground truth and test images
  desktop-file-utils  # tests: desktop-file-validate
  attr              # tests: setfattr/getfattr
  xvfb              # tests (menu GUI check): virtual X server, -fbdir screenshots
  x11-utils         # tests (menu GUI check): xwininfo lists the app's window
  libgtk2.0-0       # tests (menu GUI check): GTK 2, which the Leafpad fixture needs from the host
  libglib2.0-bin    # tests (file types): gio reads share/mime and share/applications as desktops do
)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi
cargo build --release --locked
install -m 0755 target/release/appimagefs /usr/local/bin/appimagefs
echo "installed /usr/local/bin/appimagefs"
