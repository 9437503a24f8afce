#!/usr/bin/env bash
# Builds llama.cpp (through llama-cpp-python from PyPI) once into a throwaway venv under
# $KAIZEN_HOME, as the reference peer for speed and tokenisation. The built wheel is cached, so
# later runs install in seconds. Prints the venv's python path on stdout.
#
# Native flags are off: built with -march=native, llama.cpp segfaults in llama_decode on this
# CPU (AVX-512/AMX); AVX2+FMA+F16C is the fast, stable set here.
set -euo pipefail
KAIZEN_HOME="${KAIZEN_HOME:-$HOME/.cache/kaizen}"
VERSION=0.3.36
venv="$KAIZEN_HOME/venv-llamacpp"
wheels="$KAIZEN_HOME/wheels-built"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
  echo "$venv/bin/python"; exit 0
fi
mkdir -p "$wheels"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q --disable-pip-version-check numpy diskcache jinja2 typing-extensions >&2
if ! ls "$wheels"/llama_cpp_python-$VERSION-*.whl >/dev/null 2>&1; then
  echo "[llamacpp] building llama-cpp-python $VERSION from source (~15 min on 2 cores, once)" >&2
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DLLAMA_CURL=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL=2 \
    "$venv/bin/pip" wheel -q --disable-pip-version-check --no-deps "llama-cpp-python==$VERSION" -w "$wheels" >&2
fi
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps "$wheels"/llama_cpp_python-$VERSION-*.whl >&2
echo "$venv/bin/python"
