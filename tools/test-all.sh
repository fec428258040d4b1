#!/usr/bin/env bash
# Builds LLMasOS and runs every test three ways: a normal build, an
# ASan + UBSan build, and the element tests under valgrind memcheck.
# This is the README's test command and what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-debian.sh

export LLMASOS_MODELS=${LLMASOS_MODELS:-$(pwd)/../shared/models}
jobs=$(nproc)

setup () { # dir, meson args...
  local dir=$1; shift
  if [ -d "$dir" ]; then meson setup --reconfigure "$dir" "$@" >/dev/null
  else meson setup "$dir" "$@" >/dev/null; fi
}

# Python peers for the tests that compare with them (gguf's reader for the
# converter, HF tokenizers for the tokenizer); the tests say so and skip
# those comparisons when this fails (no network).
if [ ! -x build-pyenv/bin/python3 ]; then
  python3 -m venv build-pyenv && build-pyenv/bin/pip install -q gguf tokenizers ||
    echo "test-all: could not install the Python peers (gguf, tokenizers)" >&2
fi
[ -x build-pyenv/bin/python3 ] && export PATH=$(pwd)/build-pyenv/bin:$PATH

# The default model (Gemma 3 270M), so that its reference test runs; the
# test reports itself skipped if this fails (no network).
tools/setup-default-model.sh || echo "test-all: default model not installed" >&2

echo "== build and test (debugoptimized)"
setup build
ninja -C build
meson test -C build --print-errorlogs --num-processes "$jobs"

echo "== build and test with AddressSanitizer + UndefinedBehaviorSanitizer"
setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-asan
# The C tests only: gst-launch-1.0 is not instrumented, so it cannot load
# the instrumented plugin. No fork for the registry scan, for the same reason.
# test-gemma3 (a 270M model, minutes under ASan) runs in the normal build.
c_tests=$(meson test -C build-asan --list 2>/dev/null | grep -v '\.sh$' |
  grep -v '^test-gemma3$' | tr '\n' ' ')
# CK_FORK=no: one process per test program, so leaks are checked once, at
# its end, after everything was torn down. allocator_may_return_null: the
# out-of-memory tests ask for absurd sizes on purpose.
CK_FORK=no GST_REGISTRY_FORK=no \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1:fast_unwind_on_malloc=0 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
LSAN_OPTIONS=suppressions=$(pwd)/tests/lsan.supp \
  meson test -C build-asan --print-errorlogs --num-processes "$jobs" $c_tests

echo "== element tests under valgrind memcheck"
CK_FORK=no LLMASOS_CYCLES=100 meson test -C build --print-errorlogs --num-processes "$jobs" --timeout-multiplier 10 \
  --wrap="valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --suppressions=$(pwd)/tests/valgrind.supp --suppressions=/usr/share/glib-2.0/valgrind/glib.supp --gen-suppressions=all" \
  test-elements test-attention-element test-lifecycle test-limits

echo "== fuzz targets, 30 s each (docs/fuzzing.md)"
tools/fuzz-run.sh 30
echo "== all tests passed"
