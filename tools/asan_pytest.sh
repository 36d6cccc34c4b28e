#!/usr/bin/env bash
# The native extension under AddressSanitizer + UndefinedBehaviorSanitizer, driven by the Python tests.
#
# Builds pyguard/_core with -fsanitize=address,undefined into build/asan-py (never touching the in-place
# pyguard/_core*.so), stages a copy of pyguard/ + tests/ with that module in build/asan-py/stage, and runs
# pytest there with libasan preloaded (CPython itself is not instrumented, so the runtime must come first).
# detect_leaks=0: CPython keeps interned objects alive at exit, which LeakSanitizer would report.
# Any ASan report or UBSan diagnostic aborts the process (halt_on_error / -fno-sanitize-recover), so a
# clean run is exit code 0.
#
# Usage: tools/asan_pytest.sh [pytest args]   (default: the ops and session tests)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=build/asan-py
stage=$build/stage

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPYGUARD_SANITIZE=ON -DPYGUARD_BUILD_TESTS=OFF \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v python)" >/dev/null
cmake --build "$build"

rm -rf "$stage" && mkdir -p "$stage"
cp -r pyguard tests bench pyproject.toml "$stage"/
rm -f "$stage"/pyguard/_core*.so
cp "$build"/_core*.so "$stage"/pyguard/
find "$stage" -name __pycache__ -prune -exec rm -rf {} +

if [ $# -eq 0 ]; then
  set -- tests/test_bit_depth.py tests/test_median.py tests/test_checks.py tests/test_activations.py \
    tests/test_jpeg.py tests/test_nl_means.py tests/test_session.py tests/test_properties.py
fi
libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
cd "$stage"
# The module pytest will import must be the instrumented one.
core=$(LD_PRELOAD="$libasan:$libubsan" ASAN_OPTIONS=detect_leaks=0 python -c 'import pyguard._core as c; print(c.__file__)')
case "$core" in "$root/$stage"/pyguard/_core*) ;; *) echo "asan_pytest: imported $core, not the staged module" >&2; exit 1;; esac
nm -D "$core" | grep -q __asan_report || { echo "asan_pytest: $core is not instrumented" >&2; exit 1; }
# Paths given relative to the repo root stay valid: the stage mirrors its layout.
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
LD_PRELOAD="$libasan:$libubsan" \
PYGUARD_SANITIZED=1 \
  python -m pytest -q -p no:cacheprovider -x "$@"
echo "asan_pytest: clean (no ASan/UBSan report) in $root/$stage"
