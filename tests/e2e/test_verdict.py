"""The verdict on a real server-like process: a churning cache and released bursts
are steady; a 0.5 MiB/s drip from 15 s is a leak, and drip() heads the suspects."""
import csv
import os
import tempfile
import xml.dom.minidom

from harness import check, check_eq, reports, run_tool, workload

SERVER = workload("server_like")


def trace_server(args):
    with tempfile.TemporaryDirectory() as d:
        curve, plot = os.path.join(d, "curve.csv"), os.path.join(d, "plot.svg")
        status, out, err = run_tool(["--json", "--fail-on-leak", "--curve", curve, "--plot",
                                     plot, "1", "--", SERVER] + args, timeout=120)
        with open(curve) as f:
            rows = list(csv.DictReader(f))
        svg = xml.dom.minidom.parse(plot)
    return status, reports(out), rows, svg, err


def classes(svg, tag):
    return [e.getAttribute("class") for e in svg.getElementsByTagName(tag)]


def check_plot(svg, left_band):
    check("curve" in classes(svg, "polyline"), "no curve in the SVG")
    check("band" in classes(svg, "rect"), "no band in the SVG")
    check_eq("left-band" in classes(svg, "line"), left_band, "left-band marker in the SVG")
    texts = " ".join(t.firstChild.data for t in svg.getElementsByTagName("text"))
    check(" s" in texts and "MiB" in texts, "axes without units: " + texts[:200])


def check_curve_rows(rows, pid):
    check(len(rows) > 40, "only %d curve rows" % len(rows))
    check_eq(list(rows[0].keys()),
             ["time_s", "pid", "comm", "heap_bytes", "rss_bytes", "kernel_bytes",
              "band_low_bytes", "band_high_bytes", "state", "judged_bytes"], "CSV columns")
    check(all(int(r["pid"]) == pid and int(r["heap_bytes"]) >= 0 for r in rows), "CSV rows")
    # A traced command is judged on its heap (no -k): the judged curve is it.
    check_eq([r["judged_bytes"] for r in rows if r["judged_bytes"] != r["heap_bytes"]], [],
             "judged_bytes other than heap_bytes")
    times = [float(r["time_s"]) for r in rows]
    check(times == sorted(times), "CSV times not increasing")


def suspects(proc):
    return [s["frames"][0]["symbol"] for s in proc["stacks"] if s["suspect"]]


def test_server_steady_is_never_a_leak():
    status, rs, rows, svg, err = trace_server(["40"])
    check_eq(status, 0, "exit status with --fail-on-leak: " + err)
    procs = [r["processes"][0] for r in rs]
    check_eq([p["verdict"]["state"] for p in procs if p["verdict"]["state"] == "leak"], [],
             "leak verdicts")
    check_eq(procs[-1]["verdict"]["state"], "steady", "final verdict")
    check_eq([s for p in procs for s in suspects(p)], [], "suspect stacks")
    check_curve_rows(rows, procs[0]["pid"])
    check_plot(svg, left_band=False)


def test_server_drip_is_a_leak_within_35_s():
    status, rs, rows, svg, err = trace_server(["55", "15"])
    check_eq(status, 3, "exit status with --fail-on-leak: " + err)
    first = next((r for r in rs if r["processes"][0]["verdict"]["state"] == "leak"), None)
    check(first is not None, "never called a leak")
    # The band holds the 8 MiB bursts seen while steady (2 + 8 MiB, plus the
    # margin): the drip (0.5 MiB/s from 15 s) climbs above them by about
    # 33 s, then 10 s of evidence, slack.
    check(first["elapsed_s"] <= 50, "called a leak at %.1f s" % first["elapsed_s"])
    final = rs[-1]["processes"][0]
    check_eq(final["verdict"]["state"], "leak", "final verdict")
    left = final["verdict"]["left_band_at_s"]
    check(left is not None and 28 <= left <= 38, "left the band at %r" % left)
    high = final["verdict"]["band_high_bytes"]
    check(10 * 2**20 <= high <= 12 * 2**20, "band %r" % final["verdict"])
    check_eq(suspects(final)[:1], ["drip"], "head suspect")
    named = next((r for r in rs if suspects(r["processes"][0])[:1] == ["drip"]), None)
    check(named is not None and named["elapsed_s"] <= 30,
          "drip named a suspect at %r s" % (named and named["elapsed_s"]))
    for r in rs:
        s = suspects(r["processes"][0])
        check("cache_put" not in s and "load_and_release" not in s, "suspects %r" % s)
    check_curve_rows(rows, final["pid"])
    check_plot(svg, left_band=True)
