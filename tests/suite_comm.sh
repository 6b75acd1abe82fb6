#!/usr/bin/env bash
# suite_comm.sh: exact collective tests (tests/test_comm.c) at TP 2, 3 and 4,
# both builds.
source "$(dirname "$0")/lib.sh"
for prec in fp64 fp32; do
  for np in 2 3 4; do
    out=$(timeout 60 $MPIRUN $np build/$prec/tests/test_comm 2>&1); rc=$?
    echo "$out" | grep -E '^(ok|not ok) ' | sed "s|^\(not \)\{0,1\}ok |&tp${np}/$prec/|"
    [ $rc = 0 ] || not_ok "comm_tp${np}_$prec" "exit code $rc: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
  done
done
