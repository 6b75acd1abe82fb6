#!/bin/sh
# tools/flags-stamp.sh STAMP CC [FLAGS...]: writes into STAMP the compiler
# command line that CC FLAGS expands to (gcc -###: -march=native becomes
# the CPU's -m feature list), unless STAMP already holds exactly that, so its
# time changes only with the flags. The Makefile runs it while it reads
# itself and makes every C object depend on STAMP.
stamp=$1; shift
line=$("$@" -### -E -x c /dev/null 2>&1 | grep -m1 -E '/cc1 |"-cc1"') || line="$*"
mkdir -p "$(dirname "$stamp")" || exit 0
printf '%s\n' "$line" | cmp -s - "$stamp" 2>/dev/null && exit 0
printf '%s\n' "$line" > "$stamp.tmp.$$" && mv -f "$stamp.tmp.$$" "$stamp"
