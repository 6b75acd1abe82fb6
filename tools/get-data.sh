#!/usr/bin/env bash
# get-data.sh: prepares the default dataset, data/fortunes_{train,val}.bin,
# from Debian's fortune cookies (2.5 MB of English: quotes, jokes, poems),
# unless it is already there. Prints one line of what it did.
#
# Text choices:
# - Every plain-text fortune file in /usr/share/games/fortunes, in name
#   order (LC_ALL=C, so every machine gets the same bytes); the .dat files
#   are strfile's binary indexes and the .u8 names are symlinks to the same
#   text, so both are skipped; so is the offensive 'off' subdirectory.
# - The '%' separator lines are kept: they mark where one fortune ends, the
#   byte-level counterpart of GPT-2's <|endoftext|>, so the model learns to
#   finish a fortune and samples come out as whole fortunes. Files whose
#   last fortune lacks its '%' get one, so fortunes never run together.
# - Overstrike sequences (x BACKSPACE y, old terminals' bold/underline, in a
#   few fortunes) are reduced to the visible character: a backspace token
#   would be noise to a byte-level model.
# Validation is the last 10% of the bytes (prepare_data's rule): the last
# files by name, so validation text is somewhat different in topic from
# training text.
set -euo pipefail
cd "$(dirname "$0")/.."

src=/usr/share/games/fortunes
txt=data/fortunes.txt
prefix=data/fortunes

tokens() { od -An -t d4 -j 8 -N 4 "$1" | tr -d ' '; }
from="existing $txt"

if [[ -s ${prefix}_train.bin && -s ${prefix}_val.bin ]]; then
    echo "get-data: ${prefix}_train.bin ($(tokens "${prefix}_train.bin") tokens) and" \
         "${prefix}_val.bin ($(tokens "${prefix}_val.bin") tokens) already present"
    exit 0
fi

if [[ ! -s $txt ]]; then
    if ! dpkg-query -W -f='${Status}\n' fortunes fortunes-min 2>/dev/null |
            awk '!/ ok installed$/ { bad = 1 } END { exit bad || NR != 2 }'; then
        tools/install-deps.sh >&2
    fi
    mapfile -t files < <(find "$src" -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | LC_ALL=C sort)
    if ((${#files[@]} == 0)); then
        echo "get-data: error: no fortune files in $src (is the 'fortunes' package installed?)" >&2
        exit 1
    fi
    mkdir -p data
    # Written to a temporary name and renamed: an interrupted run never
    # leaves a partial fortunes.txt that later runs would take as complete.
    LC_ALL=C awk 'FNR == 1 && NR > 1 && last != "%" { print "%" }
                  { print; last = $0 }
                  END { if (last != "%") print "%" }' "${files[@]}" |
        LC_ALL=C sed -e ':a' -e 's/[^\x08]\x08//g' -e 'ta' >"$txt.tmp"
    mv "$txt.tmp" "$txt"
    from="$txt (${#files[@]} files of $src)"
fi

PREP_SRC="tools/prepare_data.c src/bpe.c src/json.c src/unicode_tab.c src/input.c src/outfile.c src/isa.c"
if [[ ! -x tools/prepare_data ]]; then
    # Normally `make` built it; prepare_data needs only libc-only sources
    # (the tokenizer, the input checks, the safe writer, the CPU guard), so a
    # direct compile works even when the rest of the tree does not build
    # (suite_bpe compiles this same list).
    "${CC:-cc}" -std=c11 -D_GNU_SOURCE -O2 -Iinclude $PREP_SRC -o tools/prepare_data
fi
tools/prepare_data "$txt" "$prefix" --val-fraction 0.1 >/dev/null
echo "get-data: wrote ${prefix}_train.bin ($(tokens "${prefix}_train.bin") tokens) and" \
     "${prefix}_val.bin ($(tokens "${prefix}_val.bin") tokens) from $from"
