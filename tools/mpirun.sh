#!/usr/bin/env bash
# tools/mpirun.sh NP CMD...: mpirun with the flags a laptop or CI box needs.
# --oversubscribe: more ranks than cores; --bind-to none: Open MPI pins each
# rank to one core by default when np <= 2, which serialises OpenMP threads;
# ob1 + shared memory: the fastest start-up on one host. Root needs
# --allow-run-as-root. Extra mpirun flags: MPIRUN_FLAGS (e.g. --hostfile H).
set -euo pipefail
np=$1; shift
flags=(--oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && flags+=(--allow-run-as-root)
if [ -z "${MPIRUN_FLAGS:-}" ]; then flags+=(--mca pml ob1 --mca btl self,vader); fi
# Threads per rank: the caller's choice, else cores / ranks (at least 1).
if [ -z "${OMP_NUM_THREADS:-}" ]; then
  t=$(( $(nproc --all) / np )); [ "$t" -lt 1 ] && t=1
  export OMP_NUM_THREADS=$t
fi
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$OMP_NUM_THREADS}
# Idle OpenMP threads sleep instead of spinning: with ranks sharing cores a
# spinning thread steals its neighbour's core (3-10x slower steps measured
# under load, ~3% slower on an idle machine).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# Open MPI adds a 10-line banner when ranks exit non-zero or call MPI_Abort;
# our ranks already said why in one line, so drop exactly those banners and keep any
# other (e.g. "mpirun noticed that process rank 3 ... exited on signal 9").
filter_banners() {
  awk '
    /^--------------------+$/ { if (inb) { inb = 0; if (keep) printf "%s%s\n", buf, $0; buf = ""; next } inb = 1; keep = 1; buf = $0 "\n"; next }
    inb { buf = buf $0 "\n"; if ($0 ~ /returned a non-zero exit code|exited with non-zero status|Per user-direction, the job has been aborted|MPI_ABORT was invoked/) keep = 0; next }
    # Open MPI 4.1 sometimes garbles its aggregated help when ranks are
    # killed after an MPI_Abort; the abort itself was already explained.
    /ORTE_ERROR_LOG: .* in file .*orte\/util\/show_help\.c/ { next }
    { print }
    END { if (inb && keep) printf "%s", buf }'
}
set +e
# shellcheck disable=SC2086
mpirun -np "$np" "${flags[@]}" ${MPIRUN_FLAGS:-} -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS -x OMP_WAIT_POLICY "$@" 2> >(filter_banners >&2)
rc=$?
wait
exit $rc
