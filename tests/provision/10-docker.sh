# Docker Engine (Debian's docker.io) and debootstrap, for the Docker integration tests and their local test image;
# iproute2 (`ip`) gives the multi-host test's private daemons their own bridges; openssh (sshd, ssh) carries the
# ssh:// host test. Starts dockerd when none answers; it keeps running after the suite (CI machines are thrown away).
set -euo pipefail
source "$(dirname "$0")/common.sh"
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || ! command -v ip >/dev/null \
        || [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null; then
    apt_install docker.io debootstrap iproute2 openssh-server openssh-client
fi
if ! docker info >/dev/null 2>&1; then
    log="$NANOGPT_TUI_PROVISION_LOG_DIR/dockerd.log"
    echo "provision: starting dockerd (log: $log)"
    as_root sh -c "nohup dockerd >'$log' 2>&1 &"
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "provision: dockerd did not start; see $log"; tail -20 "$log"; exit 1; }
fi
