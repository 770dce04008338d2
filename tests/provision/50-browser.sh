# Debian's chromium, for the browser test of `nanogpt-tui serve` (driven by Playwright for Python pointed at this
# executable: Playwright's own browser download needs the internet, which CI machines do not have).
set -euo pipefail
source "$(dirname "$0")/common.sh"
if [ ! -x /usr/bin/chromium ]; then
    apt_install chromium
fi
