# The pinned agent CLIs (Claude Code, Codex; nanogpt_tui/agents/clis/package.json) for the real_cli tests and the
# test image: Node.js and npm from Debian when missing, then `npm ci` into the cache folder when it is not there yet
# (about a minute and 800 MB the first time; nothing afterwards).
set -euo pipefail
source "$(dirname "$0")/common.sh"
root="$(cd "$(dirname "$0")/../.." && pwd)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
fi
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" python3 -m nanogpt_tui.agents.pins install >/dev/null
