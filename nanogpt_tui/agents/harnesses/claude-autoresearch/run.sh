#!/usr/bin/env bash
# Claude Code driven by the Autoresearch-style program (the `autoresearch` strategy's program.md).
#
# Prepares what the program expects, then runs the plain Claude Code harness (claude.sh: harnesses/claude/run.sh,
# copied in next to this script by copy_harness, as `shared` in nanogpt_tui/agents/catalog.py declares):
#   - a git branch of its own for this run, autoresearch/<run id>, checked out in the workspace;
#   - results.tsv in the workspace (header only; kept out of git through .git/info/exclude), where the
#     agent logs every experiment as keep, discard or crash;
#   - a git identity for the agent's commits when the repository has none.
# Never add `set -x` here: the environment holds API keys.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "${BENCHMARK_WORKSPACE:?BENCHMARK_WORKSPACE is not set}" || exit 1

if git rev-parse --git-dir >/dev/null 2>&1; then
  tag=$(printf '%s' "${BENCHMARK_RUN_ID:-run}" | tr -c 'A-Za-z0-9._-' '-')
  branch="autoresearch/$tag"
  if [ "$(git rev-parse --abbrev-ref HEAD 2>/dev/null)" != "$branch" ]; then
    if git show-ref --verify --quiet "refs/heads/$branch"; then
      git checkout -q "$branch" || echo "claude-autoresearch: could not check out $branch; continuing on the current branch." >&2
    else
      git checkout -q -b "$branch" || echo "claude-autoresearch: could not create $branch; continuing on the current branch." >&2
    fi
  fi
  git config user.name >/dev/null 2>&1 || git config user.name "nanogpt-bench agent"
  git config user.email >/dev/null 2>&1 || git config user.email "agent@nanogpt-bench.invalid"
  exclude="$(git rev-parse --git-dir)/info/exclude"
  mkdir -p "$(dirname "$exclude")"
  grep -qx 'results.tsv' "$exclude" 2>/dev/null || echo 'results.tsv' >> "$exclude"
fi
if [ ! -f results.tsv ]; then
  printf 'commit\tval_loss\ttrain_time_ms\tstatus\tdescription\n' > results.tsv
fi

exec bash "$here/claude.sh"
