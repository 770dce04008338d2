#!/usr/bin/env bash
# Install the Codex CLI if it is missing. Idempotent: the benchmark image already has it, and then this
# only prints its version. Pin a version with CODEX_VERSION=x.y.z.
set -euo pipefail
if command -v codex >/dev/null 2>&1; then
  echo "codex already installed: $(codex --version 2>/dev/null | head -n 1)"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "install.sh: installing the Codex CLI needs npm (Node.js 18 or later); install Node.js first." >&2
  exit 1
fi
npm install -g "@openai/codex${CODEX_VERSION:+@$CODEX_VERSION}"
codex --version
