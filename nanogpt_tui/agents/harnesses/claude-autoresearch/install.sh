#!/usr/bin/env bash
# Install Claude Code if it is missing. Idempotent: the benchmark image already has it, and then this
# only prints its version. Pin a version with CLAUDE_CODE_VERSION=x.y.z.
set -euo pipefail
if command -v claude >/dev/null 2>&1; then
  echo "claude already installed: $(claude --version 2>/dev/null | head -n 1)"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "install.sh: installing Claude Code needs npm (Node.js 18 or later); install Node.js first." >&2
  exit 1
fi
npm install -g "@anthropic-ai/claude-code${CLAUDE_CODE_VERSION:+@$CLAUDE_CODE_VERSION}"
claude --version
