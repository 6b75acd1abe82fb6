#!/usr/bin/python3
"""The BPE tests' independent side (tests/suite_bpe.sh): builds small
byte-level BPE tokenizers in Hugging Face's tokenizer.json format from a
text, and encodes text with them the way the reference tokenizers do,
written from their definitions here: the pre-tokenizer regexes through the
`regex` module (\\p{L}, \\p{N}), GPT-2's bytes_to_unicode and its bpe()
loop. Nothing is shared with src/bpe.c.

  bpe_reference.py build KIND CORPUS DIR MERGES   write DIR/tokenizer.json (KIND gpt2 or llama3)
  bpe_reference.py encode DIR TEXT OUT.ids        write the ids, one per line
"""
import collections, json, os, sys

import regex

GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3 = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
          r"""\s*[\r\n]+|\s+(?!\S)|\s+""")
SPECIAL = "<|endoftext|>"


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


B2U = bytes_to_unicode()


def pieces(kind, text):
    return regex.findall(GPT2 if kind == "gpt2" else LLAMA3, text)


def to_symbols(piece):
    return "".join(B2U[b] for b in piece.encode("utf-8"))


def build(kind, corpus, out_dir, nmerges):
    text = open(corpus, encoding="utf-8").read()
    words = collections.Counter()
    for part in text.split(SPECIAL):
        for p in pieces(kind, part):
            words[tuple(to_symbols(p))] += 1
    vocab = {B2U[b]: i for i, b in enumerate(sorted(B2U))}
    merges = []
    while len(merges) < nmerges:
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[a, b] += c
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append((a, b))
        vocab.setdefault(a + b, len(vocab))
        new = collections.Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        words = new
    if kind == "llama3":
        # Whole pieces that the merges do not build: only ignore_merges finds them.
        extra = [("".join(w), c) for w, c in words.items() if len(w) > 1 and "".join(w) not in vocab]
        for s, _ in sorted(extra, key=lambda x: (-x[1], x[0]))[:40]:
            vocab[s] = len(vocab)
    added = [{"id": len(vocab), "content": SPECIAL, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}]
    if kind == "gpt2":
        pre = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        merge_list = ["%s %s" % m for m in merges]
    else:
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
        merge_list = [list(m) for m in merges]
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
           "pre_tokenizer": pre, "post_processor": None,
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                     "ignore_merges": kind == "llama3", "vocab": vocab, "merges": merge_list}}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=(kind == "gpt2"), indent=1)
    print("%s: %d merges, vocab %d" % (kind, len(merges), len(vocab) + 1))


def bpe(symbols, ranks):
    word = list(symbols)
    while len(word) > 1:
        pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
        best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if best not in ranks:
            break
        out, i = [], 0
        while i < len(word):
            if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                out.append(word[i] + word[i + 1])
                i += 2
            else:
                out.append(word[i])
                i += 1
        word = out
    return word


def encode(tok_dir, text_path, out_path):
    tok = json.load(open(os.path.join(tok_dir, "tokenizer.json"), encoding="utf-8"))
    model = tok["model"]
    vocab = model["vocab"]
    ranks = {}
    for i, m in enumerate(model["merges"]):
        pair = tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
        ranks.setdefault(pair, i)
    kind = "gpt2" if tok["pre_tokenizer"]["type"] == "ByteLevel" else "llama3"
    special = {a["content"]: a["id"] for a in tok["added_tokens"]}
    text = open(text_path, "rb").read().decode("utf-8")
    split = regex.compile("(" + "|".join(regex.escape(s) for s in sorted(special, key=len, reverse=True)) + ")")
    ids = []
    for part in split.split(text):
        if part in special:
            ids.append(special[part])
            continue
        for p in pieces(kind, part):
            sym = to_symbols(p)
            if model.get("ignore_merges") and sym in vocab:
                ids.append(vocab[sym])
            else:
                ids.extend(vocab[s] for s in bpe(sym, ranks))
    with open(out_path, "w") as f:
        f.write("\n".join(map(str, ids)) + "\n")
    print("%d ids" % len(ids))


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        encode(sys.argv[2], sys.argv[3], sys.argv[4])
