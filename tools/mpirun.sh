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
# shellcheck disable=SC2086
exec mpirun -np "$np" "${flags[@]}" ${MPIRUN_FLAGS:-} -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS "$@"
