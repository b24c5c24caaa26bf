"""--listen, read by the real Prometheus: it scrapes a dripping server,
its query API sees the heap rise and the verdict turn to leak, and the
committed alert rule (scripts/memleak-bpf.rules.yml) fires."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from harness import ROOT, TOOL, check, check_eq, run_tool, workload

RULES = os.path.join(ROOT, "scripts", "memleak-bpf.rules.yml")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read().decode()


def query(prom, expr):
    """The instant vector of expr: [(labels, value)]."""
    _, _, body = get("http://%s/api/v1/query?query=%s" % (prom, urllib.parse.quote(expr)))
    data = json.loads(body)
    check_eq(data["status"], "success", "query %s" % expr)
    return [(r["metric"], float(r["value"][1])) for r in data["data"]["result"]]


def wait_for(what, fn, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            got = fn()
        except (OSError, urllib.error.URLError):  # Prometheus not listening yet
            got = None
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError("%s: not within %d s" % (what, timeout))


def start_prometheus(d, target, prom):
    config = os.path.join(d, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "rule_files:\n  - %s\n"
                "scrape_configs:\n  - job_name: memleak\n    static_configs:\n"
                "      - targets: ['%s']\n" % (RULES, target))
    p = subprocess.run(["promtool", "check", "config", config], capture_output=True, text=True)
    check_eq(p.returncode, 0, "promtool check config: %s%s" % (p.stdout, p.stderr))
    return subprocess.Popen(["prometheus", "--config.file=" + config,
                             "--storage.tsdb.path=" + os.path.join(d, "data"),
                             "--web.listen-address=" + prom],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "prom.log"), "w"))


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_prometheus_scrapes_the_leak_and_the_alert_fires():
    port, prom = free_port(), "127.0.0.1:%d" % free_port()
    target = "127.0.0.1:%d" % port
    with tempfile.TemporaryDirectory() as d:
        # server_like drips 0.5 MiB/s from its 10th second on.
        tool = subprocess.Popen([TOOL, "--listen", target, "1", "--", workload("server_like"),
                                 "70", "10"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        server = None
        try:
            line = tool.stderr.readline()
            check("serving metrics at http://%s/metrics" % target in line, "stderr: %r" % line)
            status, ctype, body = get("http://%s/metrics" % target)
            check(status == 200 and ctype.startswith("text/plain; version=0.0.4"),
                  "text format: %r" % ctype)
            check("memleak_tracer_samples_total" in body, "health metrics: %r" % body[:300])
            lint = subprocess.run(["promtool", "check", "metrics"], input=body,
                                  capture_output=True, text=True)
            check_eq((lint.returncode, lint.stdout + lint.stderr), (0, ""),
                     "promtool check metrics")
            status, ctype, body = get("http://%s/metrics" % target,
                                      {"Accept": "application/openmetrics-text; version=1.0.0"})
            check(ctype.startswith("application/openmetrics-text") and
                  body.endswith("# EOF\n"), "OpenMetrics: %r" % ctype)
            server = start_prometheus(d, target, prom)
            up = wait_for("target up", lambda: [v for _, v in query(prom, 'up{job="memleak"}')
                                                if v == 1], 30)
            check_eq(up, [1.0], "up")
            early = wait_for("a verdict scraped", lambda: query(
                prom, 'memleak_process_verdict{comm="server_like"} == 1'), 20)
            check(early[0][0]["state"] in ("warmup", "steady"),
                  "verdict before the drip: %r" % early)
            leak = wait_for("the leak in Prometheus", lambda: query(
                prom, 'memleak_process_verdict{comm="server_like",state="leak"} == 1'), 60)
            pid = leak[0][0]["pid"]
            rise = query(prom, 'min_over_time(memleak_process_heap_bytes{pid="%s"}[4s]) - '
                               'min_over_time(memleak_process_heap_bytes{pid="%s"}[4s] offset 10s)'
                         % (pid, pid))
            check(rise and rise[0][1] >= 3 * 2**20, "heap floor rise over 10 s: %r" % rise)
            growth = query(prom, 'memleak_process_growth_bytes_per_second{pid="%s"}' % pid)
            check(growth and growth[0][1] > 0, "growth: %r" % growth)

            def firing():
                _, _, body = get("http://%s/api/v1/alerts" % prom)
                return [a for a in json.loads(body)["data"]["alerts"]
                        if a["labels"]["alertname"] == "MemoryLeak" and a["state"] == "firing"
                        and a["labels"].get("pid") == pid]
            alert = wait_for("MemoryLeak firing", firing, 20)
            print("alert: %s" % json.dumps(alert[0]["labels"], sort_keys=True))
            stale = [a for a in json.loads(get("http://%s/api/v1/alerts" % prom)[2])["data"]
                     ["alerts"] if a["labels"]["alertname"] == "MemleakTracerStale"]
            check_eq(stale, [], "stale tracer alerts")
        finally:
            if server:
                stop(server)
            stop(tool)


def test_listen_errors():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        addr = "127.0.0.1:%d" % busy.getsockname()[1]
        status, _, err = run_tool(["--listen", addr, "--", "/bin/true"])
        check_eq(status, 1, "port in use: exit status")
        check(len(err.strip().splitlines()) == 1 and "cannot listen on " + addr in err and
              "in use" in err, "port in use: %r" % err)
    for bad in ("9876", "localhost:9876", "127.0.0.1:0", "127.0.0.1:70000", "[::1:9876"):
        status, _, err = run_tool(["--listen", bad, "--", "/bin/true"])
        check_eq(status, 2, "--listen %s: exit status" % bad)
        check("invalid --listen" in err and len(err.strip().splitlines()) == 1,
              "--listen %s: %r" % (bad, err))


def test_service_unit_runs_as_written():
    """scripts/memleak-bpf.service: systemd accepts it, and its command line
    (the binary and port swapped for this build's) watches the machine and
    serves metrics; SIGTERM, as systemctl stop sends, ends it cleanly with
    its profile written."""
    with open(os.path.join(ROOT, "scripts", "memleak-bpf.service")) as f:
        unit = f.read()
    port = free_port()
    unit = unit.replace("/usr/local/sbin/memleak-bpf", TOOL).replace(
        "127.0.0.1:9876", "127.0.0.1:%d" % port)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "memleak-bpf.service")
        with open(path, "w") as f:
            f.write(unit)
        p = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True)
        check_eq((p.returncode, p.stderr.strip()), (0, ""), "systemd-analyze verify")
        execstart = next(l for l in unit.splitlines() if l.startswith("ExecStart="))
        argv = execstart[len("ExecStart="):].replace("${STATE_DIRECTORY}", d).split()
        tool = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            lines = [tool.stderr.readline() for _ in range(2)]
            check(any("serving metrics" in l for l in lines) and
                  any("watching" in l for l in lines), "stderr: %r" % lines)
            time.sleep(2)
            _, _, body = get("http://127.0.0.1:%d/metrics" % port)
            samples = [l for l in body.splitlines() if l.startswith("memleak_tracer_samples_total")]
            check(samples and int(samples[0].split()[1]) > 0, "samples: %r" % samples)
            tool.send_signal(signal.SIGTERM)
            check_eq(tool.wait(timeout=30), 0, "exit status after SIGTERM")
        finally:
            if tool.poll() is None:
                tool.kill()
        with open(os.path.join(d, "heap.pb.gz"), "rb") as f:
            check(f.read(2) == b"\x1f\x8b", "heap.pb.gz is not gzip")
