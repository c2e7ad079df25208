# tests/testlib.sh — shared by the shell tests: counters and checks. A test sources it, calls
# check/ok/bad, and ends with `summary NAME` ("NAME: N passed, M failed", non-zero on failure).
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }
summary() { echo "$1: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; }
