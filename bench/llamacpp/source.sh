# bench/llamacpp/source.sh — sourced by the llama.cpp benches: sets SRC to a llama.cpp source
# tree OUTSIDE this repo. $LLAMA_CPP_SRC when set; otherwise the copy vendored in the PyPI sdist
# of llama-cpp-python==$VER (pip download: no build, no install), unpacked once under $WORK.
# Needs: WORK, VER, PY.
SRC="${LLAMA_CPP_SRC:-}"
if [ -z "$SRC" ]; then
  SRC="$WORK/llama.cpp"
  if [ ! -f "$SRC/CMakeLists.txt" ]; then
    echo "llama.cpp: fetching sources (llama-cpp-python==$VER sdist, vendor/llama.cpp)" >&2
    # pip prepares the sdist's metadata (scikit-build-core in an isolated env); nothing is built
    "$PY" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VER" -d "$WORK/sdist" >&2
    tar -xzf "$WORK"/sdist/llama_cpp_python-"$VER".tar.gz -C "$WORK/sdist"
    rm -rf "$SRC"
    cp -r "$WORK/sdist/llama_cpp_python-$VER/vendor/llama.cpp" "$SRC"
    rm -f "$SRC/.git" # a submodule pointer into the sdist's absent .git
  fi
fi

# llama_build TARGET: builds one llama.cpp target into $WORK/build (Release, native, OpenMP,
# no curl, no tests/examples/server), -j2; logs in $WORK/{cmake,build}.log.
llama_build() {
  [ -x "$WORK/build/bin/$1" ] && return 0
  echo "llama.cpp: building $1 in $WORK/build (several minutes)" >&2
  cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DGGML_OPENMP=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    >"$WORK/cmake.log" 2>&1 || { tail -30 "$WORK/cmake.log" >&2; return 1; }
  cmake --build "$WORK/build" --target "$1" -j2 >"$WORK/build.log" 2>&1 ||
    { tail -30 "$WORK/build.log" >&2; return 1; }
}

# llama_f32_model Q.gguf F32.gguf: the model with every tensor dequantized to F32
# (dequantize_gguf.py), rewritten when missing or older than Q.gguf. Our forward runs f32 math
# on weights dequantized once at load, so llama.cpp on F32 weights computes the same function.
llama_f32_model() {
  if [ ! -f "$2" ] || [ "$2" -ot "$1" ]; then
    echo "llama.cpp: writing $2" >&2
    "$PY" "$(dirname "${BASH_SOURCE[0]}")/dequantize_gguf.py" "$1" "$2.tmp" >/dev/null
    mv "$2.tmp" "$2"
  fi
}
