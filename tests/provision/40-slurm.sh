# Slurm from Debian (slurm-wlm: slurmctld, slurmd and the client commands; slurmdbd for accounting), munge, and
# MariaDB for slurmdbd's database, for the `slurm` tests. Only installs: the tests start their own munged, MariaDB,
# slurmdbd, slurmctld and slurmd with a one-node configuration in a temporary folder
# (tests/integration/slurm_cluster.py), so nothing is started here and no system service is touched (a
# policy-rc.d keeps the packages from starting theirs while they install).
set -euo pipefail
source "$(dirname "$0")/common.sh"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null || ! command -v mungekey >/dev/null || ! command -v slurmdbd >/dev/null \
        || ! command -v mariadbd >/dev/null || ! command -v mariadb-install-db >/dev/null; then
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt_install slurm-wlm slurmdbd munge mariadb-server
    if [ -n "$made_policy" ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
fi
