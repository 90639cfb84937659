"""Writes a synthetic AppDir with many small files in nested folders.

usage: gen_manyfiles.py DIR COUNT

COUNT files of 0..4 KiB (text-like, compressible about 2:1) spread over
DIR/usr/share/data/dNN/sNN/, plus an AppRun, a desktop file and an icon.
Deterministic: the same COUNT always gives the same tree.
"""
import os
import random
import sys

root, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(40000)
words = [bytes(rng.choice(b"etaoinshrdlucmfw") for _ in range(rng.randint(2, 9)))
         for _ in range(4000)]
per_leaf = 40
leaves = (count + per_leaf - 1) // per_leaf
subdirs = 25
os.makedirs(root, exist_ok=True)
n = 0
for leaf in range(leaves):
    d = os.path.join(root, "usr/share/data/d%02d/s%02d" % (leaf // subdirs, leaf % subdirs))
    os.makedirs(d, exist_ok=True)
    for f in range(per_leaf):
        if n == count:
            break
        size = rng.randint(0, 4096)
        out = bytearray()
        while len(out) < size:
            out += rng.choice(words) + b" "
        with open(os.path.join(d, "f%03d.txt" % f), "wb") as fh:
            fh.write(out[:size])
        n += 1
with open(os.path.join(root, "AppRun"), "w") as fh:
    fh.write("#!/bin/sh\necho appimagefs-bench-ok\n")
os.chmod(os.path.join(root, "AppRun"), 0o755)
with open(os.path.join(root, "manyfiles.desktop"), "w") as fh:
    fh.write("[Desktop Entry]\nType=Application\nName=Many files\nExec=manyfiles\n"
             "Icon=manyfiles\nCategories=Utility;\n")
with open(os.path.join(root, "manyfiles.png"), "wb") as fh:
    fh.write(b"\x89PNG\r\n\x1a\n")
