#!/usr/bin/env bash
# Developer build: compiles the extension into pyguard/ (in place) and the C++ tests, then runs ctest.
# Usage: tools/dev_build.sh [extra cmake -D options]. Then `python -m pytest` from the repo root.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${PYGUARD_BUILD_DIR:-build/inplace}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPYGUARD_BUILD_TESTS=ON \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v python)" "$@" >/dev/null
cmake --build "$build"
cp "$build"/_core*.so pyguard/
ctest --test-dir "$build" --output-on-failure
