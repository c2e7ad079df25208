#!/usr/bin/env bash
# tests/layer_check.sh CC CASES FLAGS... — compiles one tiny file per line of CASES with the
# given include/define flags. A line is "ok HEADER" (must compile) or "no HEADER" (must fail
# with HEADER "No such file", not any other error). Prints "layers_<name>: P passed, F failed".
set -u
cc=$1 cases=$2
shift 2
flags=()
for f in "$@"; do [ "$f" = "-I" ] || [ "$f" = "-D" ] || flags+=("$f"); done # empty lists
name=layers_$(basename "$cases" .txt)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
pass=0 fail=0
while read -r want header; do
  [ -z "$want" ] || [ "${want:0:1}" = "#" ] && continue
  printf '#include "%s"\nint layer_probe;\n' "$header" >"$dir/probe.c"
  out=$("$cc" -std=gnu11 -fsyntax-only "${flags[@]}" "$dir/probe.c" 2>&1)
  rc=$?
  if [ "$want" = ok ] && [ $rc -eq 0 ]; then
    pass=$((pass + 1))
  elif [ "$want" = no ] && [ $rc -ne 0 ] && grep -q "${header//./\\.}: No such file" <<<"$out"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL: $name: #include \"$header\" should $([ "$want" = ok ] && echo compile || echo be missing) (rc $rc)"
    head -5 <<<"$out"
  fi
done <"$cases"
echo "$name: $pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
