#!/usr/bin/env python3
"""Runs every test, unit and end-to-end, and ends with 'N passed, N failed'."""
import importlib
import os
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
E2E_MODULES = ["test_accounting", "test_harm", "test_launch", "test_faults", "test_errors", "test_system", "test_verdict", "test_kernel",
               "test_unwind", "test_report", "test_profiles", "test_exporter", "test_pages", "test_scan", "test_children", "test_install"]


def run_unit(failures):
    p = subprocess.run([os.path.join(ROOT, "build", "unit_tests")], capture_output=True,
                       text=True)
    passed = failed = 0
    for line in p.stdout.splitlines():
        print("unit: " + line)
        passed += line.startswith("PASS ")
        if line.startswith("FAIL "):
            failed += 1
            failures.append("unit " + line[5:305])
    if p.returncode != 0 and failed == 0:
        print("unit: FAIL unit_tests exited with %d\n%s" % (p.returncode, p.stderr))
        failures.append("unit_tests exited with %d" % p.returncode)
        failed += 1
    return passed, failed


def e2e_skip_reason():
    if os.geteuid() != 0:
        return "not root"
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return "kernel without BTF"
    return None


def run_e2e(only, failures):
    sys.path.insert(0, os.path.join(HERE, "e2e"))
    passed = failed = skipped = 0
    reason = e2e_skip_reason()
    for name in E2E_MODULES:
        mod = importlib.import_module(name)
        for fn in sorted(k for k in vars(mod) if k.startswith("test_")):
            label = "%s.%s" % (name, fn)
            if only and not any(o in label for o in only):
                continue
            if reason:
                print("e2e: SKIP %s (%s)" % (label, reason))
                skipped += 1
                continue
            start = time.time()
            try:
                getattr(mod, fn)()
                print("e2e: PASS %s (%.1f s)" % (label, time.time() - start))
                passed += 1
            except Exception as e:  # a failed check or a crash: both fail the test
                print("e2e: FAIL %s: %s" % (label, e))
                failures.append("%s: %s" % (label, str(e)[:300]))
                if not isinstance(e, AssertionError):
                    traceback.print_exc()
                failed += 1
    return passed, failed, skipped


def main():
    only = sys.argv[1:]
    failures = []
    up, uf = run_unit(failures) if not only else (0, 0)
    ep, ef, es = run_e2e(only, failures)
    if es and os.environ.get("CI") == "true":
        print("CI=true: %d skipped end-to-end tests count as failed" % es)
        ef, es = ef + es, 0
    passed, failed = up + ep, uf + ef
    for f in failures:  # again at the end, where a log's tail shows them
        print("failed: " + f)
    line = "%d passed, %d failed" % (passed, failed)
    print(line + (", %d skipped" % es if es else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
