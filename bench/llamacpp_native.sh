#!/usr/bin/env bash
# Builds llama.cpp's own command-line tools (llama-bench, llama-quantize, llama-batched-bench, llama-server)
# from the llama.cpp source that ships inside the llama-cpp-python sdist on PyPI — the native
# peer for speed figures, driven as its users drive it, not through Python bindings. Built once
# into $KAIZEN_HOME/llamacpp-native-VERSION (sdist SHA-256 checked, cmake from PyPI); later runs
# reuse the build. Prints the directory holding the binaries on stdout.
#
#   bin=$(bash bench/llamacpp_native.sh) && "$bin/llama-bench" -m model.gguf
#
# Build flags: llama.cpp's CPU defaults with GGML_NATIVE off and the instruction sets named
# instead, each on only where /proc/cpuinfo lists it (AVX2 and FMA; AVX-512 with VNNI and BF16;
# AVX-VNNI), AMX off — built with -march=native (which turns AMX on) llama.cpp crashed in
# llama_decode on an AVX-512 Xeon. One build per instruction-set mix (build-avx512…, build-avx2…).
set -euo pipefail
KAIZEN_HOME="${KAIZEN_HOME:-$HOME/.cache/kaizen}"
VERSION=0.3.36
SDIST_URL="https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-$VERSION.tar.gz"
SDIST_SHA=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
TARGETS=(llama-bench llama-quantize llama-batched-bench llama-server)
root="$KAIZEN_HOME/llamacpp-native-$VERSION"
has() { grep -qw "$1" /proc/cpuinfo && echo ON || echo OFF; }
AVX2=$(has avx2) FMA=$(has fma) AVX512=$(has avx512f) AVX512_VNNI=$(has avx512_vnni) AVX512_BF16=$(has avx512_bf16) AVX_VNNI=$(has avx_vnni)
isa="avx2-$AVX2.avx512-$AVX512.vnni-$AVX512_VNNI.bf16-$AVX512_BF16.avxvnni-$AVX_VNNI"
build="$root/build-$isa"
bin="$build/bin"
say() { printf '[llamacpp] %s\n' "$*" >&2; }

built() { for t in "${TARGETS[@]}"; do [ -x "$bin/$t" ] || return 1; done; }
if built; then echo "$bin"; exit 0; fi

mkdir -p "$root"
sdist="$KAIZEN_HOME/wheels/llama_cpp_python-$VERSION.tar.gz"
if [ ! -f "$sdist" ] || [ "$(sha256sum "$sdist" | cut -d' ' -f1)" != "$SDIST_SHA" ]; then
  say "fetching the llama-cpp-python $VERSION sdist from PyPI"
  mkdir -p "$(dirname "$sdist")"
  curl -fsSL --retry 3 -o "$sdist.partial" "$SDIST_URL"
  mv "$sdist.partial" "$sdist"
fi
got=$(sha256sum "$sdist" | cut -d' ' -f1)
[ "$got" = "$SDIST_SHA" ] || { say "SHA-256 mismatch for $sdist: got $got, want $SDIST_SHA"; exit 1; }
if [ ! -f "$root/src/CMakeLists.txt" ]; then
  rm -rf "$root/src" "$root/unpack" && mkdir -p "$root/unpack"
  tar xzf "$sdist" -C "$root/unpack" "llama_cpp_python-$VERSION/vendor/llama.cpp"
  mv "$root/unpack/llama_cpp_python-$VERSION/vendor/llama.cpp" "$root/src" && rm -rf "$root/unpack"
fi
cmake=$(command -v cmake || true)
if [ -z "$cmake" ]; then
  [ -x "$root/venv/bin/cmake" ] || { python3 -m venv "$root/venv" >&2; "$root/venv/bin/pip" install -q --disable-pip-version-check cmake >&2; }
  cmake="$root/venv/bin/cmake"
fi
say "building ${TARGETS[*]} from llama.cpp in the llama-cpp-python $VERSION sdist (~10 min on 2 cores, once)"
say "instruction sets: $isa"
"$cmake" -S "$root/src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2="$AVX2" -DGGML_FMA="$FMA" \
  -DGGML_F16C=ON -DGGML_AVX512="$AVX512" -DGGML_AVX512_VNNI="$AVX512_VNNI" -DGGML_AVX512_BF16="$AVX512_BF16" \
  -DGGML_AVX_VNNI="$AVX_VNNI" -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF >"$build.configure.log" 2>&1 \
  || { tail -20 "$build.configure.log" >&2; exit 1; }
"$cmake" --build "$build" -j "$(nproc)" --target "${TARGETS[@]}" >"$build.log" 2>&1 \
  || { tail -30 "$build.log" >&2; exit 1; }
built || { say "the build finished without ${TARGETS[*]}"; exit 1; }
echo "$bin"
