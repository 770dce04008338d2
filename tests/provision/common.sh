# Sourced by the provision parts: run as root (or through sudo), install Debian packages once per run.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    local stamp="$NANOGPT_TUI_PROVISION_LOG_DIR/apt-updated"
    if [ ! -e "$stamp" ]; then as_root apt-get update -q && touch "$stamp"; fi
    as_root apt-get install -y -q --no-install-recommends "$@"
}
