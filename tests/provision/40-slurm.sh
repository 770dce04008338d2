# Slurm from Debian (slurm-wlm: slurmctld, slurmd and the client commands) and munge, for the `slurm` tests. Only
# installs: the tests start their own munged, slurmctld and slurmd with a one-node configuration in a temporary
# folder (tests/integration/slurm_cluster.py), so nothing is started here and no system service is touched.
set -euo pipefail
source "$(dirname "$0")/common.sh"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null || ! command -v mungekey >/dev/null; then
    apt_install slurm-wlm munge
fi
