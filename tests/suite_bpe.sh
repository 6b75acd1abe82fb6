#!/usr/bin/env bash
# suite_bpe.sh: the byte-level BPE tokenizer (src/bpe.c). The test builds
# two small tokenizers itself (GPT-2's and Llama 3's pre-tokenizer, a few
# hundred merges learned from the test corpus, an added <|endoftext|>; no
# download) with tests/bpe_reference.py, whose independent Python encoder
# (the `regex` module's \p{L}/\p{N}, GPT-2's bpe() loop) must produce the
# same ids as tools/prepare_data --tokenizer, on the corpus and on a sample
# of Unicode edge cases; decoding gives the text back byte for byte; a
# model trained on the tokens samples text through tools/generate --tokenizer.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
c=$(test_corpus)
PY=/usr/bin/python3

# ---- Hostile inputs: tools/prepare_data (docs/bad-input.md) ---------------------------
# These need python3 but not python3-regex: each case must end within 20 s
# with its exit code and one line on stderr that matches the pattern.
H="$T/hostile"
rm -rf "$H"; mkdir -p "$H/tok"
# refused NAME RC PATTERN CMD...
refused() {
  local name=$1 want=$2 pat=$3 rc; shift 3
  timeout -k 5 20 "$@" > "$H/$name.out" 2> "$H/$name.err"; rc=$?
  if [ $rc = "$want" ] && [ "$(wc -l < "$H/$name.err")" = 1 ] && grep -q -- "$pat" "$H/$name.err"; then ok "$name ($(cat "$H/$name.err"))"
  else not_ok "$name" "exit $rc (want $want): $(head -c 300 "$H/$name.err" | tr '\n' ' ')"; fi
}
# The smallest byte-level BPE tokenizer: GPT-2's 256 byte symbols, ids 0-255, no merges.
$PY - "$H/tok/tokenizer.json" <<'PY'
import json, sys
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
cs = bs[:] + [256 + k for k in range(256 - len(bs))]
bs += [b for b in range(256) if b not in bs]
vocab = {chr(c): b for b, c in zip(bs, cs)}
json.dump({"added_tokens": [], "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
           "model": {"type": "BPE", "vocab": vocab, "merges": []}}, open(sys.argv[1], "w"))
PY
# tokens FILE ID...: an llm.c token file of version 2 (uint32 ids).
tokens() {
  $PY -c 'import struct, sys; ids = [int(x, 0) for x in sys.argv[2:]]
open(sys.argv[1], "wb").write(struct.pack("<256i", 20240520, 2, len(ids), *[0] * 253) + struct.pack("<%dI" % len(ids), *ids))' "$@"
}

# An id of 2^31 or more was cast to a negative int, passed the bound and
# indexed outside the tokenizer's table (SIGSEGV).
tokens "$H/id31.bin" 65 0x80000000 66
refused prepare_decode_id_2_31_refused 2 "token 1 is 2147483648, outside the tokenizer's vocabulary" \
  tools/prepare_data --decode "$H/id31.bin" --tokenizer "$H/tok"

# A vocabulary id (or an added token's) of 2^30 - 1 in a 256-token file sized
# the id tables by it (2 x 8 GiB) and advised --vocab-size 1073741824.
printf 'hello world, hello world\n' > "$H/text.txt"
for k in vocab added; do
  mkdir -p "$H/huge_$k"
  $PY - "$H/tok/tokenizer.json" "$H/huge_$k/tokenizer.json" "$k" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
if sys.argv[3] == "vocab": t["model"]["vocab"]["A"] = 2**30 - 1
else: t["added_tokens"] = [{"id": 2**30 - 1, "content": "<|x|>"}]
json.dump(t, open(sys.argv[2], "w"))
PY
  refused "prepare_tokenizer_huge_${k}_id_refused" 2 "has id 1073741823, but the file defines only 25[67] tokens" \
    tools/prepare_data "$H/text.txt" "$H/huge_$k" --tokenizer "$H/huge_$k"
done

# A vocabulary key holding a newline (found by tests/fuzz/fuzz_bpe.c): the
# refusal quoted it verbatim, two lines. Control characters now show as '?'.
mkdir -p "$H/nl_key"
$PY - "$H/tok/tokenizer.json" "$H/nl_key/tokenizer.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1])); t["model"]["vocab"]["a\nb"] = 256
json.dump(t, open(sys.argv[2], "w"))
PY
refused prepare_tokenizer_newline_key_one_line 2 'model.vocab: "a?b" is not in the byte-level alphabet' \
  tools/prepare_data "$H/text.txt" "$H/nl_key/o" --tokenizer "$H/nl_key"

# An added token on an id the vocabulary already has: the refusal printed
# that token's bytes as a C string, reading past them (ASan, fuzz_bpe.c).
mkdir -p "$H/added_dup"
$PY - "$H/tok/tokenizer.json" "$H/added_dup/tokenizer.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1])); t["added_tokens"] = [{"id": 65, "content": "<x>"}]
json.dump(t, open(sys.argv[2], "w"))
PY
refused prepare_tokenizer_added_on_a_vocab_id 2 'added_tokens\[0\]: id 65 is already "A" in the vocabulary$' \
  tools/prepare_data "$H/text.txt" "$H/added_dup/o" --tokenizer "$H/added_dup"

# Outputs are written as the trainer writes them (outfile.h: a random
# O_EXCL | O_NOFOLLOW temporary, renamed): a symlink at PREFIX_train.bin.tmp
# was followed, so the file it names was truncated and became the output.
mkdir -p "$H/link"
echo precious > "$H/link/precious.txt"; ln -s precious.txt "$H/link/o_train.bin.tmp"
out=$(tools/prepare_data "$H/text.txt" "$H/link/o" 2>&1); rc=$?
if [ $rc = 0 ] && [ "$(cat "$H/link/precious.txt")" = precious ] && [ -L "$H/link/o_train.bin.tmp" ] && [ ! -L "$H/link/o_train.bin" ] &&
   [ "$(ls -A "$H/link" | wc -l)" = 4 ]; then ok "prepare_keeps_symlinked_tmp_target (precious.txt unchanged, no temporary left)"
else not_ok prepare_keeps_symlinked_tmp_target "exit $rc: $out; precious.txt: $(head -c 40 "$H/link/precious.txt" | tr -c '[:print:]' '?'); $(ls -A "$H/link" | tr '\n' ' ')"; fi

# Inputs must be regular files: a FIFO hung in open(), /dev/zero was read
# into an ever larger buffer (capped here at 2 GiB of address space).
mkfifo "$H/fifo"
refused prepare_fifo_input_refused 2 "fifo: not a regular file" tools/prepare_data "$H/fifo" "$H/o_fifo"
refused prepare_dev_zero_input_refused 2 "/dev/zero: not a regular file" \
  bash -c 'ulimit -v 2097152; exec "$@"' _ tools/prepare_data /dev/zero "$H/o_zero"

# An output that is an input (by name, through ./, a symlink or a hard link)
# is refused before anything is written; the input stays as it was.
mkdir -p "$H/same"; cp "$H/text.txt" "$H/same/x_train.bin"
ln -s x_train.bin "$H/same/sym.txt"; ln "$H/same/x_train.bin" "$H/same/hard.txt"
for how in name:x_train.bin dot:./x_train.bin symlink:sym.txt hardlink:hard.txt; do
  in=${how#*:}
  refused "prepare_output_is_input_refused_${how%%:*}" 2 "x_train.bin is the input $in: refusing to overwrite an input" \
    bash -c 'cd "$1" && exec "$2" "$3" x' _ "$H/same" "$PWD/tools/prepare_data" "$in"
done
cmp -s "$H/text.txt" "$H/same/x_train.bin" && [ ! -e "$H/same/x_val.bin" ] && ok prepare_output_is_input_left_unchanged ||
  not_ok prepare_output_is_input_left_unchanged "x_train.bin changed or x_val.bin written: $(ls -A "$H/same" | tr '\n' ' ')"
# The tokenizer's file is an input too (here also named as the train output).
mkdir -p "$H/tk"; cp "$H/tok/tokenizer.json" "$H/tk/"; ln "$H/tk/tokenizer.json" "$H/tk/o_train.bin"
refused prepare_output_is_tokenizer_refused 2 "o_train.bin is the input $H/tk/tokenizer.json: refusing" \
  tools/prepare_data "$H/text.txt" "$H/tk/o" --tokenizer "$H/tk"

# Outputs that cannot be written are refused up front with exit 2: a
# directory failed with exit 1 after all the work, a FIFO was replaced.
mkdir -p "$H/d_train.bin"; mkfifo "$H/q_val.bin"
refused prepare_output_directory_refused 2 "d_train.bin: is a directory, expected a file name" tools/prepare_data "$H/text.txt" "$H/d"
refused prepare_output_fifo_refused 2 "q_val.bin: exists and is not a regular file" tools/prepare_data "$H/text.txt" "$H/q"
[ -p "$H/q_val.bin" ] && [ ! -e "$H/q_train.bin" ] && ok prepare_output_fifo_kept || not_ok prepare_output_fifo_kept "$(ls -l "$H"/q_* | tr '\n' ' ')"
refused prepare_output_no_directory_refused 2 "cannot create $H/nodir/o_train.bin: No such file or directory" \
  tools/prepare_data "$H/text.txt" "$H/nodir/o"

# --decode onto a full disk: one line and exit 1 (it exited 1 silently).
tokens "$H/ab.bin" 65 66
refused prepare_decode_full_disk_one_line 1 "writing standard output: No space left on device" \
  bash -c 'exec "$@" > /dev/full' _ tools/prepare_data --decode "$H/ab.bin"

if ! $PY -c 'import regex' 2> /dev/null; then
  not_ok bpe_python_reference "python3-regex is missing (tools/install-deps.sh installs it)"; exit 0
fi

# The text: the corpus, then edge cases (accents, CJK, emoji with modifiers,
# other scripts' digits, fractions, tabs, CRLF, no-break and em spaces,
# upper-case and long-s contractions, long digit runs, the special token).
cp "${c}.txt" "$T/text.txt"
printf '%s\n' "Ünïcödé café naïve — “quotes” 日本語のテキスト 😀👍🏽 ٣٤٥ ½ Ⅻ ³" \
  $'\t\ttabs  and   spaces \r\n\r\n  CRLF\r\n' "x'S 'Re 'LL I'M it'ſ we'd y'all 1234567 12 it'Sunday we'REally they'LLama it'ſt" \
  "<|endoftext|>after<|endoftext|><|endoftext|>" $'mixed\u00a0nbsp\u2003em\u3000ideo  \n  \n' \
  "end with spaces   " >> "$T/text.txt"
printf 'trailing\n\n\n   ' >> "$T/text.txt"

# The tokenizers learn from the corpus plus words that make the case-folded
# contractions of Llama 3 ('S, 'RE, 'LL) change the merges around them.
{ cat "${c}.txt"; for i in $(seq 60); do echo "Sunday REally LLama Sunday"; done; } > "$T/learn.txt"
for kind in gpt2 llama3; do
  d="$T/tok_$kind"
  if ! $PY tests/bpe_reference.py build "$kind" "$T/learn.txt" "$d" 300 > "$T/build_$kind.log" 2>&1; then
    not_ok "bpe_${kind}_build" "$(tail -n 2 "$T/build_$kind.log")"; continue
  fi
  $PY tests/bpe_reference.py encode "$d" "$T/text.txt" "$T/ref_$kind.ids" > /dev/null 2>&1
  out=$(tools/prepare_data "$T/text.txt" "$T/bpe_$kind" --tokenizer "$d" 2>&1); rc=$?
  # The C ids: both splits' tokens, in order.
  $PY - "$T/bpe_${kind}_train.bin" "$T/bpe_${kind}_val.bin" > "$T/c_$kind.ids" <<'PY'
import struct, sys
for p in sys.argv[1:]:
    raw = open(p, "rb").read()
    magic, ver, n = struct.unpack("<3i", raw[:12])
    fmt = "<%d%s" % (n, "H" if ver == 1 else "I")
    print("\n".join(map(str, struct.unpack(fmt, raw[1024:]))))
PY
  n=$(wc -l < "$T/ref_$kind.ids")
  if [ $rc = 0 ] && [ "$n" -gt 1000 ] && cmp -s "$T/ref_$kind.ids" "$T/c_$kind.ids"; then
    ok "bpe_${kind}_ids_equal_python_reference ($n ids for $(wc -c < "$T/text.txt") bytes; $(cat "$T/build_$kind.log"))"
  else
    not_ok "bpe_${kind}_ids_equal_python_reference" "exit $rc: $out; first difference: $(diff "$T/ref_$kind.ids" "$T/c_$kind.ids" | head -n 4 | tr '\n' ' ')"
  fi
  { tools/prepare_data --decode "$T/bpe_${kind}_train.bin" --tokenizer "$d" && tools/prepare_data --decode "$T/bpe_${kind}_val.bin" --tokenizer "$d"; } > "$T/round_$kind.txt"
  cmp -s "$T/text.txt" "$T/round_$kind.txt" && ok "bpe_${kind}_round_trip_byte_exact ($(wc -c < "$T/round_$kind.txt") bytes)" ||
    not_ok "bpe_${kind}_round_trip_byte_exact" "$(cmp "$T/text.txt" "$T/round_$kind.txt" 2>&1)"
done

# The special token is one id; the ignore_merges rule is exercised (some
# Llama-3 piece is a whole-vocabulary entry that the merges do not build).
sid=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['added_tokens'][0]['id'])" "$T/tok_gpt2/tokenizer.json")
cnt=$(grep -cx "$sid" "$T/c_gpt2.ids")
[ "$cnt" = 3 ] && ok "bpe_special_token_is_one_id (<|endoftext|> = $sid, 3 times)" || not_ok bpe_special_token_is_one_id "$cnt occurrences of id $sid"
used=$($PY - "$T/tok_llama3/tokenizer.json" "$T/c_llama3.ids" <<'PY'
import json, sys
tok = json.load(open(sys.argv[1]))
merged = {a + b for a, b in tok["model"]["merges"]} | {k for k in tok["model"]["vocab"] if len(k) == 1}
whole = {i for k, i in tok["model"]["vocab"].items() if k not in merged}
ids = [int(x) for x in open(sys.argv[2])]
print(sum(i in whole for i in ids))
PY
)
[ "${used:-0}" -gt 0 ] && ok "bpe_llama3_ignore_merges_used ($used ids are whole pieces the merges do not build)" ||
  not_ok bpe_llama3_ignore_merges_used "no whole-piece id in the output"

# Refusals: a non-UTF-8 text, a tokenizer of another kind, a broken file.
printf 'ok \xff\xfe bad' > "$T/bad.txt"
out=$(tools/prepare_data "$T/bad.txt" "$T/bad" --tokenizer "$T/tok_gpt2" 2>&1); rc=$?
[ $rc = 2 ] && [ "$(echo "$out" | wc -l)" = 1 ] && echo "$out" | grep -q "not UTF-8 at byte 3" && ok "bpe_refuses_non_utf8 ($out)" ||
  not_ok bpe_refuses_non_utf8 "exit $rc: $out"
mkdir -p "$T/wp"; sed 's/"type": "BPE"/"type": "WordPiece"/' "$T/tok_gpt2/tokenizer.json" > "$T/wp/tokenizer.json"
out=$(tools/prepare_data "$T/text.txt" "$T/wp" --tokenizer "$T/wp" 2>&1); rc=$?
[ $rc = 2 ] && echo "$out" | grep -q "model.type is WordPiece, not BPE" && ok "bpe_refuses_other_models" || not_ok bpe_refuses_other_models "exit $rc: $out"
mkdir -p "$T/cut"; head -c 3000 "$T/tok_gpt2/tokenizer.json" > "$T/cut/tokenizer.json"
out=$(tools/prepare_data "$T/text.txt" "$T/cut" --tokenizer "$T/cut" 2>&1); rc=$?
[ $rc = 2 ] && [ "$(echo "$out" | wc -l)" = 1 ] && echo "$out" | grep -q "tokenizer.json: line [0-9]*: " && ok "bpe_refuses_truncated_json ($out)" ||
  not_ok bpe_refuses_truncated_json "exit $rc: $out"

# Train on the BPE tokens and sample: generate --tokenizer prints the text
# of the ids that generate without it prints (decoded here by Python).
V=$($PY -c "import json,sys; t=json.load(open(sys.argv[1])); print(len(t['model']['vocab']) + len(t['added_tokens']))" "$T/tok_gpt2/tokenizer.json")
G="--num-layers 2 --hidden-size 32 --num-attention-heads 4 --seq-length 32 --micro-batch-size 2 --global-batch-size 2"
./pretrain_gpt $G --vocab-size "$V" --train-data-path "$T/bpe_gpt2_train.bin" --train-iters 20 --lr 3e-3 --save "$T/gen" > "$T/gen.log" 2>&1
ids=$(tools/generate --load "$T/gen" --prompt "The cat" --tokens 12 --temperature 0 2> /dev/null)
txt=$(tools/generate --load "$T/gen" --prompt "The cat" --tokens 12 --temperature 0 --tokenizer "$T/tok_gpt2" 2> /dev/null; echo x)
want=$($PY - "$T/tok_gpt2/tokenizer.json" "$ids" <<'PY'
import json, sys
sys.path.insert(0, "tests"); from bpe_reference import B2U
u2b = {u: b for b, u in B2U.items()}
tok = json.load(open(sys.argv[1])); inv = {i: k for k, i in tok["model"]["vocab"].items()}
for a in tok["added_tokens"]: inv[a["id"]] = None
out = b""
for i in map(int, sys.argv[2].split()):
    out += b"<|endoftext|>" if inv[i] is None else bytes(u2b[ch] for ch in inv[i])
sys.stdout.buffer.write(b"The cat" + out + b"\nx")
PY
)
if [ -n "$ids" ] && [ "$(echo "$ids" | wc -w)" = 12 ] && [ "$txt" = "$want" ]; then ok "generate_decodes_with_tokenizer (12 tokens: $(echo "${txt%x}" | head -c 60 | tr '\n' ' '))"
else not_ok generate_decodes_with_tokenizer "ids '$ids'; text '$txt' vs '$want'"; fi

# tools/get-data.sh compiles prepare_data by itself when make has not: its
# source list must still link (it lacked the input checks, the writer and
# the CPU guard once prepare_data used them).
eval "$(grep '^PREP_SRC=' tools/get-data.sh)"
if [ -n "${PREP_SRC:-}" ] && cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude $PREP_SRC -o "$T/prepare_data_fallback" 2> "$T/fallback.err" &&
   printf 'hello fallback world\n%.0s' $(seq 1 200) > "$T/fallback_in.txt" &&
   "$T/prepare_data_fallback" "$T/fallback_in.txt" "$T/fallback" > /dev/null 2>&1 && [ -s "$T/fallback_train.bin" ]; then
  ok "get_data_fallback_compile_links"
else not_ok "get_data_fallback_compile_links" "$(head -c 300 "$T/fallback.err")"; fi

# prepare_data --help on a full disk: exit 1 and one line, as every tool.
tools/prepare_data --help > /dev/full 2> "$T/help_full.err"; rc=$?
if [ $rc = 1 ] && [ "$(wc -l < "$T/help_full.err")" = 1 ] && grep -q 'writing standard output' "$T/help_full.err"; then ok prepare_help_full_disk_exit_1
else not_ok prepare_help_full_disk_exit_1 "exit $rc: $(head -c 200 "$T/help_full.err")"; fi
