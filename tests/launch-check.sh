# Sourced by the shell tests that run failing gst-launch-1.0 lines
# (test-broken-models.sh, test-device-property.sh).
# SPDX-License-Identifier: LGPL-2.1-or-later

# launch_failure_reason RC ERRFILE: prints why a gst-launch-1.0 run that
# must fail with an element error did not fail cleanly (nothing when it
# did): exit code 0, a timeout (timeout(1)'s 124), a signal, a sanitizer
# report, a GLib critical or warning, or no "ERROR: from element" line.
launch_failure_reason () {
  local rc=$1 err=$2
  if [ "$rc" -eq 0 ]; then
    echo "exit code 0"
  elif [ "$rc" -eq 124 ]; then
    echo "timed out"
  elif [ "$rc" -gt 128 ] && [ "$rc" -lt 255 ]; then
    # gst-launch-1.0 exits with -1 (255) when the pipeline fails; 129..254
    # is a signal
    echo "killed by signal $((rc - 128))"
  elif grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$err"; then
    echo "sanitizer report"
  elif grep -qE 'CRITICAL \*\*|WARNING \*\*' "$err"; then
    echo "GLib critical or warning"
  elif ! grep -q '^ERROR: from element ' "$err"; then
    echo "no element error"
  fi
}
