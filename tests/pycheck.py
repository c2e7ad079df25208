"""tests/pycheck.py — the pass/fail counter shared by the Python test scripts: check(ok, what)
counts and prints "FAIL: what" on failure; summary() prints "NAME: N passed, M failed" and
returns the exit code (1 on any failure)."""
import sys


class Checks:
    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def __call__(self, ok, what):
        self.passed += bool(ok)
        self.failed += not ok
        if not ok:
            print("FAIL:", what, file=sys.stderr)

    def summary(self):
        print(f"{self.name}: {self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0
