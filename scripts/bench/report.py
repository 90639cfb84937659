"""Turns the raw results of scripts/bench-cold-start.sh into a Markdown
report: medians, ratios to the plain directory, peak memory, the issue's
targets (pass or miss) and what could not run.

usage: report.py RESULTS.tsv RUN-INFO.txt
"""
import collections
import csv
import statistics
import sys

TOOLS = ["plain", "appimagefs", "kernel", "squashfuse", "extract", "runtime"]
NAMES = {
    "plain": "plain dir",
    "appimagefs": "appimagefs",
    "kernel": "kernel squashfs",
    "squashfuse": "squashfuse_ll",
    "extract": "extract+run",
    "runtime": "AppImage runtime",
    "cachedir": "appimagefs, warm --cache-dir",
}
COMP_LABEL = {"xz": "xz 1M", "zstd": "zstd 128K", "gzip": "gzip 128K",
              "none": "uncompressed", "dwarfs_zstd": "DwarFS zstd 16M",
              "dwarfs_lzma": "DwarFS xz 16M", "mixed": "mixed"}
SCENARIOS = [
    ("cold", "cold start (mount + 1st launch)"),
    ("second", "second launch, same mount"),
    ("walk", "metadata walk (find -printf '%s %m %p')"),
    ("read", "read every byte (tar to wc -c)"),
    ("mount100", "mount 100 AppImages + ls"),
]

results_path, info_path = sys.argv[1], sys.argv[2]
info = open(info_path).read().splitlines()
content_bytes = {}
for line in info:
    if line.startswith("content_bytes "):
        _, app, n = line.split()
        content_bytes[app] = int(n)

values = collections.defaultdict(list)  # (scenario, app, comp, tool, metric) -> [(rep, value)]
fails = collections.defaultdict(list)  # (scenario, app, comp, tool) -> [note]
with open(results_path) as fh:
    for row in csv.DictReader(fh, delimiter="\t"):
        key = (row["scenario"], row["app"], row["comp"], row["tool"])
        if row["metric"] == "fail":
            fails[key].append(row["note"])
        elif row["value"] != "":
            values[key + (row["metric"],)].append((int(row["rep"]), float(row["value"])))


def med(scenario, app, comp, tool, metric="us"):
    v = values.get((scenario, app, comp, tool, metric))
    return statistics.median(x for _, x in v) if v else None


def paired(scenario, app, comp, tool, other, metric="us"):
    """Median over repetitions of tool/other measured in the same repetition."""
    a = dict(values.get((scenario, app, comp, tool, metric), []))
    b = dict(values.get((scenario, app, comp, other, metric), []))
    r = [a[k] / b[k] for k in a if k in b and b[k] > 0]
    return statistics.median(r) if r else None


def count(scenario, app, comp, tool, metric="us"):
    return len(values.get((scenario, app, comp, tool, metric), []))


def ms(us):
    if us is None:
        return "—"
    x = us / 1000
    return f"{x:.1f}" if x < 10 else f"{x:.0f}"


reps = max((r for v in values.values() for r, _ in v), default=1)
rows = sorted({k[:3] for k in list(values) + list(fails)},
              key=lambda k: ([s for s, _ in SCENARIOS].index(k[0]), k[1], list(COMP_LABEL).index(k[2])))

out = []
p = out.append
p("## Results")
p("")
for line in info:
    if not line.startswith("content_bytes "):
        p(f"- {line}")
p("")
p("Medians in milliseconds; in brackets the ratio to the plain directory "
  "(median / median of the plain directory in the same scenario). "
  "`fail` = could not run (see below), `—` = not applicable, "
  f"`n=K` = median of K repetitions instead of {reps} (a failure, or a first "
  "measurement too slow to repeat).")
p("")
p("| scenario | app | image | " + " | ".join(NAMES[t] for t in TOOLS) + " |")
p("|---|---|---|" + "---|" * len(TOOLS))
for sc, app, comp in rows:
    if sc not in dict(SCENARIOS):
        continue
    base = med(sc, app, comp, "plain")
    cells = []
    for t in TOOLS:
        m = med(sc, app, comp, t)
        if m is None:
            cells.append("fail" if (sc, app, comp, t) in fails else "—")
        else:
            cell = f"{ms(m)} ({m / base:.2f}x)" if (base and t != "plain") else ms(m)
            n = count(sc, app, comp, t)
            if n < reps:
                cell += f" n={n}"
            cells.append(cell)
    p(f"| {dict(SCENARIOS)[sc]} | {app} | {COMP_LABEL.get(comp, comp)} | " + " | ".join(cells) + " |")
p("")

# Throughput of reading every byte.
read_rows = [r for r in rows if r[0] == "read"]
if read_rows:
    p("Read every byte, throughput in MB/s (file contents / time):")
    p("")
    p("| app | image | " + " | ".join(NAMES[t] for t in TOOLS if t != "extract") + " |")
    p("|---|---|" + "---|" * (len(TOOLS) - 1))
    for sc, app, comp in read_rows:
        n = content_bytes.get(app)
        cells = []
        for t in TOOLS:
            if t == "extract":
                continue
            m = med(sc, app, comp, t)
            cells.append(f"{n / m:.0f}" if (m and n) else ("fail" if (sc, app, comp, t) in fails else "—"))
        p(f"| {app} | {COMP_LABEL[comp]} | " + " | ".join(cells) + " |")
    p("")

# Mount time alone (part of the cold start).
p("Mount time alone (included in the cold start), ms:")
p("")
mt = ["appimagefs", "kernel", "squashfuse", "extract"]
p("| app | image | " + " | ".join(NAMES[t] + (" (unsquashfs)" if t == "extract" else "") for t in mt) + " |")
p("|---|---|" + "---|" * len(mt))
for sc, app, comp in rows:
    if sc == "cold":
        p(f"| {app} | {COMP_LABEL[comp]} | " + " | ".join(ms(med(sc, app, comp, t, "mount_us")) for t in mt) + " |")
p("")

# Peak memory.
p("Peak memory of the daemon (VmHWM before unmount), MiB, median:")
p("")
mem_tools = ["appimagefs", "squashfuse", "runtime"]
p("| scenario | app | image | " + " | ".join(NAMES[t] for t in mem_tools) + " |")
p("|---|---|---|" + "---|" * len(mem_tools))
for sc, app, comp in rows:
    cells = [med(sc, app, comp, t, "hwm_kb") for t in mem_tools]
    if any(c is not None for c in cells):
        p(f"| {dict(SCENARIOS)[sc]} | {app} | {COMP_LABEL.get(comp, comp)} | "
          + " | ".join("—" if c is None else f"{c / 1024:.1f}" for c in cells) + " |")
p("")

p("CPU time used by the FUSE server itself (user + system, all threads, from "
  "mount to unmount; the cold-start row covers mount + both launches), ms, median:")
p("")
p("| scenario | app | image | " + " | ".join(NAMES[t] for t in mem_tools) + " |")
p("|---|---|---|" + "---|" * len(mem_tools))
for sc, app, comp in rows:
    cells = [med(sc, app, comp, t, "cpu_ms") for t in mem_tools]
    if any(c is not None for c in cells):
        p(f"| {dict(SCENARIOS)[sc]} | {app} | {COMP_LABEL.get(comp, comp)} | "
          + " | ".join("—" if c is None else f"{c:.0f}" for c in cells) + " |")
p("")

p("CPU time of the app itself in its first launch (user + system of every "
  "process it started, from its cgroup), ms, median:")
p("")
p("| app | image | " + " | ".join(NAMES[t] for t in TOOLS) + " |")
p("|---|---|" + "---|" * len(TOOLS))
for sc, app, comp in rows:
    if sc == "cold":
        cells = [med(sc, app, comp, t, "app_cpu_ms") for t in TOOLS]
        p(f"| {app} | {COMP_LABEL[comp]} | "
          + " | ".join("—" if c is None else f"{c:.0f}" for c in cells) + " |")
p("")

# Targets.
p("## Targets")
p("")
verdicts = []


def target(ok, text):
    if ok is None:
        verdicts.append(f"- n/a: {text}")
    else:
        verdicts.append(f"- {'PASS' if ok else 'MISS'}: {text}")


def ratio_text(sc, app, comp, tool, other):
    a, b = med(sc, app, comp, tool), med(sc, app, comp, other)
    if a is None or b is None:
        return None, "not measured"
    pr = paired(sc, app, comp, tool, other)
    return a / b, f"{a / b:.2f}x ({ms(a)} vs {ms(b)} ms; per-repetition median {pr:.2f}x)"


apps = sorted({a for (s, a, c) in rows if s == "cold"})
limits = {"xz": 3.5, "zstd": 1.25, "gzip": 1.5}
for app in apps:
    for comp in ["xz", "zstd", "gzip"]:
        if med("cold", app, comp, "plain") is None:  # a packing not built for this app
            continue
        r, t = ratio_text("cold", app, comp, "appimagefs", "plain")
        target(None if r is None else r <= limits[comp],
               f"cold start {app} {COMP_LABEL[comp]} ≤ {limits[comp]}x plain dir: {t}")
        if comp == "xz":
            r, t = ratio_text("cold", app, comp, "appimagefs", "extract")
            target(None if r is None else r < 1, f"cold start {app} xz 1M faster than extract-then-run: {t}")
        for other in ["kernel", "squashfuse"]:
            r, t = ratio_text("cold", app, comp, "appimagefs", other)
            target(None if r is None else r <= 1,
                   f"cold start {app} {COMP_LABEL[comp]} not slower than {NAMES[other]}: {t}")
for app in apps:
    for comp in ["xz", "zstd", "gzip"]:
        if med("second", app, comp, "plain") is None:
            continue
        r, t = ratio_text("second", app, comp, "appimagefs", "plain")
        target(None if r is None else r <= 1.05, f"second launch {app} {COMP_LABEL[comp]} ≤ 1.05x plain dir: {t}")
for sc, app, comp in rows:
    if sc == "walk":
        r, t = ratio_text(sc, app, comp, "appimagefs", "kernel")
        target(None if r is None else r <= 1, f"metadata walk {app} {COMP_LABEL[comp]} not slower than kernel squashfs: {t}")
for sc, app, comp in rows:
    if sc == "read":
        a, b = med(sc, app, comp, "appimagefs"), med(sc, app, comp, "squashfuse")
        if a and b:
            pr = paired(sc, app, comp, "squashfuse", "appimagefs")
            target(b / a >= 1.5, f"read every byte {app} {COMP_LABEL[comp]} ≥ 1.5x squashfuse_ll throughput: "
                   f"{b / a:.2f}x ({ms(a)} vs {ms(b)} ms; per-repetition median {pr:.2f}x)")
        else:
            target(None, f"read every byte {app} {COMP_LABEL[comp]}: not measured")
# The CPU floor of a cold start: the app's own CPU time (from the plain
# directory) and the daemon's must share the machine's cores, so even with
# perfect overlap the start takes at least their sum over the cores (and
# never less than the plain directory's start: 1.00x says the row is not
# bound by CPU but by waiting, as a single-threaded app on round trips).
cores = next((int(line.split()[1]) for line in info if line.startswith("host: ")), None)
for app in apps:
    for comp in ["xz", "zstd", "gzip", "none"]:
        app_cpu = med("cold", app, comp, "plain", "app_cpu_ms")
        daemon_cpu = med("cold", app, comp, "appimagefs", "cpu_ms")
        base = med("cold", app, comp, "plain")
        if cores and app_cpu is not None and daemon_cpu is not None and base:
            floor_ms = (app_cpu + daemon_cpu) / cores
            verdicts.append(
                f"- floor (no target): CPU floor of cold start {app} {COMP_LABEL[comp]} on {cores} cores: "
                f"{max(1.0, floor_ms / (base / 1000)):.2f}x ((app {app_cpu:.0f} + daemon {daemon_cpu:.0f} ms "
                f"of CPU) / {cores} = {floor_ms:.0f} ms vs {ms(base)} ms from the plain directory; "
                "the daemon's CPU covers both launches)")
for app in apps:
    r, t = ratio_text("cold", app, "none", "appimagefs", "plain")
    if r is not None:
        verdicts.append(f"- floor (no target): cold start {app} from an uncompressed image, "
                        f"no decompression at all: {t}")
m = med("mount100", "all", "mixed", "appimagefs")
target(None if m is None else m < 100_000, f"mount readiness with 100 AppImages < 100 ms: {ms(m)} ms")
out.extend(verdicts)
p("")

# The --cache-dir rows: a new daemon on a cache folder filled by an
# earlier launch, against the plain directory and a fresh daemon without it.
cache_rows = sorted({(a, c) for (s, a, c, t, m) in values if t == "cachedir" and s == "cold"})
if cache_rows:
    p("## First launch from a new daemon with a warm cache folder")
    p("")
    p("Cold start (mount + first launch), medians in ms; ratios to the plain directory "
      "measured in the same run (the median over repetitions of each repetition's own ratio "
      "in brackets: the plain directory's median moves from one row to the next); disk used "
      "by the app's cache folder after one launch.")
    p("")
    p("| app | image | plain dir | appimagefs | appimagefs, warm --cache-dir | ratio without | ratio with | target | disk used |")
    p("|---|---|---|---|---|---|---|---|---|")
    cache_limits = {("chromium", "xz"): 1.3, ("chromium", "zstd"): 1.2, ("chromium", "gzip"): 1.2}
    for app, comp in cache_rows:
        plain_ms, fresh, cached = (med("cold", app, comp, t) for t in ["plain", "appimagefs", "cachedir"])
        if cached is None:
            continue
        kb = med("cold", app, comp, "cachedir", "cachedir_kb")
        limit = cache_limits.get((app, comp), 1.3)
        without = f"{fresh / plain_ms:.2f}x" if fresh and plain_ms else "n/a"
        with_r = cached / plain_ms if plain_ms else None
        pr = paired("cold", app, comp, "cachedir", "plain")
        with_text = "n/a" if with_r is None else f"{with_r:.2f}x" + ("" if pr is None else f" ({pr:.2f}x)")
        verdict = "n/a" if with_r is None else ("PASS" if with_r <= limit else "MISS")
        p(f"| {app} | {COMP_LABEL[comp]} | {ms(plain_ms)} | {ms(fresh)} | {ms(cached)} | {without} | "
          f"{with_text} | ≤ {limit}x: {verdict} | "
          f"{'n/a' if kb is None else f'{kb / 1024:.0f} MiB'} |")
    p("")

# What could not run.
p("## Could not run")
p("")
if not fails:
    p("Everything ran.")
else:
    by_reason = collections.defaultdict(list)
    for (sc, app, comp, tool), notes in sorted(fails.items()):
        by_reason[(tool, notes[0])].append(f"{sc} {app}/{comp} ×{len(notes)}")
    for (tool, note), where in sorted(by_reason.items()):
        p(f"- {NAMES[tool]}: {note.strip()} — {', '.join(where)}")
p("")
print("\n".join(out))
