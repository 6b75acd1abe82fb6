"""torch_hf.py: the PyTorch oracle's Hugging Face side (used by torch_reference.py).

Reads and writes Hugging Face model directories (config.json + model.safetensors,
or shards listed by model.safetensors.index.json) by hand, and writes out the two
architectures megatron.c trains, GPT2LMHeadModel and LlamaForCausalLM, as plain
tensor code in the run's dtype. The conventions follow Hugging Face's modeling
code, and Megatron core's where they meet:

- GPT-2 (transformers/models/gpt2/modeling_gpt2.py): Conv1D weights are stored
  (in, out) and applied as x @ W + b; c_attn's output splits into q | k | v;
  activation "gelu_new" (the tanh approximation); LayerNorm eps from
  layer_norm_epsilon; lm_head tied to wte.
- Llama (transformers/models/llama/modeling_llama.py): LlamaRMSNorm computes
  x * rsqrt(mean(x^2) + eps) and multiplies by the weight (here in the run's
  dtype: float64 for the fp64 oracle, float32 otherwise, so there is no cast);
  rotary embeddings: inv_freq = 1 / theta^(arange(0, d, 2) / d), cos/sin of
  cat(freqs, freqs), q * cos + rotate_half(q) * sin with rotate_half(x) =
  cat(-x2, x1) (the non-interleaved form, Megatron's default rotary_interleaved
  False); repeat_kv: query head h uses key/value head h // (heads / kv_heads)
  (Megatron's query groups); LlamaMLP: down_proj(silu(gate_proj(x)) * up_proj(x))
  (Megatron's SwiGLU chunks fc1 into [gate, up] the same way).

No nn.Module, no transformers import: every formula is written out here.
"""
import json, math, os, struct
import numpy as np
import torch


def die(msg):
    import sys
    print("torch_reference: " + msg, file=sys.stderr)
    sys.exit(2)


# ------------------------------------------------------------- files ----
_NP = {"F32": "<f4", "F64": "<f8", "F16": "<f2"}


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        buf = raw[8 + n + a:8 + n + b]
        if v["dtype"] == "BF16":  # the high half of a float32
            arr = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view("<f4")
        else:
            arr = np.frombuffer(buf, _NP[v["dtype"]])
        out[k] = arr.astype(np.float64).reshape(v["shape"])
    return out


def write_safetensors(path, entries, dtype):
    header, off, blobs = {}, 0, []
    for name, t in entries:
        b = t.detach().contiguous().cpu().numpy().astype("<f8" if dtype == torch.float64 else "<f4").tobytes()
        header[name] = {"dtype": "F64" if dtype == torch.float64 else "F32", "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj)
        for b in blobs:
            f.write(b)


def read_dir(d):
    """(config dict, {name: float64 array}) of a Hugging Face directory."""
    cfg = json.load(open(os.path.join(d, "config.json")))
    idx = os.path.join(d, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(idx):
        for f in sorted(set(json.load(open(idx))["weight_map"].values())):
            tensors.update(read_safetensors(os.path.join(d, f)))
    else:
        tensors = read_safetensors(os.path.join(d, "model.safetensors"))
    arch = cfg["architectures"][0]
    if arch == "GPT2LMHeadModel":  # hub files may lack the "transformer." prefix
        tensors = {(k if k.startswith("transformer.") or k == "lm_head.weight" else "transformer." + k): v
                   for k, v in tensors.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    return cfg, tensors


def shape_of(cfg):
    """The shape in one dict, whichever architecture wrote the config."""
    if cfg["architectures"][0] == "GPT2LMHeadModel":
        C = cfg["n_embd"]
        return dict(arch="gpt2", L=cfg["n_layer"], C=C, NH=cfg["n_head"], KV=cfg["n_head"],
                    F=cfg.get("n_inner") or 4 * C, V=cfg["vocab_size"], eps=cfg.get("layer_norm_epsilon", 1e-5),
                    tied=cfg.get("tie_word_embeddings", True), bias=True)
    return dict(arch="llama", L=cfg["num_hidden_layers"], C=cfg["hidden_size"], NH=cfg["num_attention_heads"],
                KV=cfg.get("num_key_value_heads", cfg["num_attention_heads"]), F=cfg["intermediate_size"],
                V=cfg["vocab_size"], eps=cfg.get("rms_norm_eps", 1e-6), theta=cfg.get("rope_theta", 10000.0),
                tied=cfg.get("tie_word_embeddings", False), bias=cfg.get("attention_bias", False))


# ------------------------------------------------------------- model ----
def linear(x, w, b=None):  # w (out, in), the nn.Linear layout
    y = x @ w.t()
    return y + b if b is not None else y


def conv1d(x, w, b):  # GPT-2's Conv1D: w (in, out)
    return x @ w + b


def layernorm(x, w, b, eps):
    m = x.mean(-1, keepdim=True)
    xc = x - m
    return xc * torch.rsqrt((xc * xc).mean(-1, keepdim=True) + eps) * w + b


def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope(q, k, T, theta):
    d = q.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    emb = torch.cat((freqs, freqs), dim=-1).to(q.dtype)
    cos, sin = emb.cos(), emb.sin()  # (T, d), broadcast over (B, heads)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def attend(q, k, v, NH, KV):
    """q (B, NH, T, d), k v (B, KV, T, d): causal softmax attention, KV heads repeated."""
    rep = NH // KV
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)  # head h -> KV head h // rep
    T, d = q.shape[2], q.shape[3]
    att = (q @ k.transpose(-2, -1)) / math.sqrt(d)
    att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return torch.softmax(att, dim=-1) @ v


def loss(s, p, idx, tgt):
    """Mean cross-entropy over the batch. p: {hf name: tensor}; idx, tgt (B, T)."""
    B, T = idx.shape
    C, NH, KV = s["C"], s["NH"], s["KV"]
    hd = C // NH
    heads = lambda t, n: t.view(B, T, n, hd).transpose(1, 2)
    if s["arch"] == "gpt2":
        x = (p["transformer.wte.weight"][idx] + p["transformer.wpe.weight"][:T]).view(B * T, C)
        for l in range(s["L"]):
            g = lambda k: p[f"transformer.h.{l}.{k}"]
            a = conv1d(layernorm(x, g("ln_1.weight"), g("ln_1.bias"), s["eps"]), g("attn.c_attn.weight"), g("attn.c_attn.bias"))
            q, k, v = (heads(t, NH) for t in a.split(C, dim=1))
            y = attend(q, k, v, NH, NH).transpose(1, 2).reshape(B * T, C)
            x = x + conv1d(y, g("attn.c_proj.weight"), g("attn.c_proj.bias"))
            h = gelu_new(conv1d(layernorm(x, g("ln_2.weight"), g("ln_2.bias"), s["eps"]), g("mlp.c_fc.weight"), g("mlp.c_fc.bias")))
            x = x + conv1d(h, g("mlp.c_proj.weight"), g("mlp.c_proj.bias"))
        x = layernorm(x, p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], s["eps"])
        head = p["transformer.wte.weight"] if s["tied"] else p["lm_head.weight"]
    else:
        bias = lambda k: p.get(k) if s["bias"] else None
        x = p["model.embed_tokens.weight"][idx].view(B * T, C)
        for l in range(s["L"]):
            pre = f"model.layers.{l}."
            g = lambda k: p[pre + k]
            hn = rmsnorm(x, g("input_layernorm.weight"), s["eps"])
            q = heads(linear(hn, g("self_attn.q_proj.weight"), bias(pre + "self_attn.q_proj.bias")), NH)
            k = heads(linear(hn, g("self_attn.k_proj.weight"), bias(pre + "self_attn.k_proj.bias")), KV)
            v = heads(linear(hn, g("self_attn.v_proj.weight"), bias(pre + "self_attn.v_proj.bias")), KV)
            q, k = rope(q, k, T, s["theta"])
            y = attend(q, k, v, NH, KV).transpose(1, 2).reshape(B * T, C)
            x = x + linear(y, g("self_attn.o_proj.weight"), bias(pre + "self_attn.o_proj.bias"))
            hn = rmsnorm(x, g("post_attention_layernorm.weight"), s["eps"])
            gate = linear(hn, g("mlp.gate_proj.weight"), bias(pre + "mlp.gate_proj.bias"))
            up = linear(hn, g("mlp.up_proj.weight"), bias(pre + "mlp.up_proj.bias"))
            act = gate * torch.sigmoid(gate) * up  # silu(gate) * up
            x = x + linear(act, g("mlp.down_proj.weight"), bias(pre + "mlp.down_proj.bias"))
        x = rmsnorm(x, p["model.norm.weight"], s["eps"])
        head = p["model.embed_tokens.weight"] if s["tied"] else p["lm_head.weight"]
    logp = torch.log_softmax(x @ head.t(), dim=-1)  # (B*T, V): the real vocabulary only
    return -logp.gather(1, tgt.reshape(-1, 1)).mean()


# ------------------------------------------------- megatron.c's names ----
def ours(s, p, Vp):
    """The parameters under megatron.c's dump names and shapes (rows of the
    vocabulary padded to Vp with zeros), for tools/compare against --dump-params."""
    def pad(t):
        return torch.cat([t, t.new_zeros(Vp - t.shape[0], t.shape[1])]) if Vp > t.shape[0] else t
    e = []
    if s["arch"] == "gpt2":
        e += [("wte.weight", pad(p["transformer.wte.weight"])), ("wpe.weight", p["transformer.wpe.weight"])]
        for l in range(s["L"]):
            g = lambda k: p[f"transformer.h.{l}.{k}"]
            e += [(f"h.{l}.ln_1.weight", g("ln_1.weight")), (f"h.{l}.ln_1.bias", g("ln_1.bias")),
                  (f"h.{l}.attn.qkv.weight", g("attn.c_attn.weight").t()), (f"h.{l}.attn.qkv.bias", g("attn.c_attn.bias")),
                  (f"h.{l}.attn.proj.weight", g("attn.c_proj.weight").t()), (f"h.{l}.attn.proj.bias", g("attn.c_proj.bias")),
                  (f"h.{l}.ln_2.weight", g("ln_2.weight")), (f"h.{l}.ln_2.bias", g("ln_2.bias")),
                  (f"h.{l}.mlp.fc1.weight", g("mlp.c_fc.weight").t()), (f"h.{l}.mlp.fc1.bias", g("mlp.c_fc.bias")),
                  (f"h.{l}.mlp.fc2.weight", g("mlp.c_proj.weight").t()), (f"h.{l}.mlp.fc2.bias", g("mlp.c_proj.bias"))]
        e += [("ln_f.weight", p["transformer.ln_f.weight"]), ("ln_f.bias", p["transformer.ln_f.bias"])]
        if not s["tied"]:
            e.append(("lm_head.weight", pad(p["lm_head.weight"])))
        return e
    e.append(("wte.weight", pad(p["model.embed_tokens.weight"])))
    for l in range(s["L"]):
        g = lambda k: p[f"model.layers.{l}.{k}"]
        a = "self_attn."
        e += [(f"h.{l}.ln_1.weight", g("input_layernorm.weight")),
              (f"h.{l}.attn.qkv.weight", torch.cat([g(a + "q_proj.weight"), g(a + "k_proj.weight"), g(a + "v_proj.weight")]))]
        if s["bias"]:
            e.append((f"h.{l}.attn.qkv.bias", torch.cat([g(a + "q_proj.bias"), g(a + "k_proj.bias"), g(a + "v_proj.bias")])))
        e.append((f"h.{l}.attn.proj.weight", g(a + "o_proj.weight")))
        if s["bias"]:
            e.append((f"h.{l}.attn.proj.bias", g(a + "o_proj.bias")))
        e += [(f"h.{l}.ln_2.weight", g("post_attention_layernorm.weight")),
              (f"h.{l}.mlp.fc1.weight", torch.cat([g("mlp.gate_proj.weight"), g("mlp.up_proj.weight")]))]
        if s["bias"]:
            e.append((f"h.{l}.mlp.fc1.bias", torch.cat([g("mlp.gate_proj.bias"), g("mlp.up_proj.bias")])))
        e.append((f"h.{l}.mlp.fc2.weight", g("mlp.down_proj.weight")))
        if s["bias"]:
            e.append((f"h.{l}.mlp.fc2.bias", g("mlp.down_proj.bias")))
    e.append(("ln_f.weight", p["model.norm.weight"]))
    if not s["tied"]:
        e.append(("lm_head.weight", pad(p["lm_head.weight"])))
    return e


# --------------------------------------------------- a generated model ----
def write_llama(d, L, C, NH, KV, F, V, maxT, seed, std, tied=False, bias=False, theta=10000.0, eps=1e-5):
    """A random Llama directory: normal weights, norms near 1 so their
    gradients are generic, small non-zero biases."""
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    nrm = lambda *shape, s=std: torch.normal(0.0, s, size=shape, generator=g, dtype=torch.float64)
    hd = C // NH
    t = [("model.embed_tokens.weight", nrm(V, C))]
    for l in range(L):
        pre = f"model.layers.{l}."
        t += [(pre + "input_layernorm.weight", 1 + nrm(C, s=0.1)),
              (pre + "self_attn.q_proj.weight", nrm(NH * hd, C)), (pre + "self_attn.k_proj.weight", nrm(KV * hd, C)),
              (pre + "self_attn.v_proj.weight", nrm(KV * hd, C)),
              (pre + "self_attn.o_proj.weight", nrm(C, NH * hd, s=std / math.sqrt(2 * L))),
              (pre + "post_attention_layernorm.weight", 1 + nrm(C, s=0.1)),
              (pre + "mlp.gate_proj.weight", nrm(F, C)), (pre + "mlp.up_proj.weight", nrm(F, C)),
              (pre + "mlp.down_proj.weight", nrm(C, F, s=std / math.sqrt(2 * L)))]
        if bias:
            t += [(pre + k, nrm(n, s=0.01)) for k, n in (("self_attn.q_proj.bias", NH * hd), ("self_attn.k_proj.bias", KV * hd),
                  ("self_attn.v_proj.bias", KV * hd), ("self_attn.o_proj.bias", C), ("mlp.gate_proj.bias", F),
                  ("mlp.up_proj.bias", F), ("mlp.down_proj.bias", C))]
    t.append(("model.norm.weight", 1 + nrm(C, s=0.1)))
    if not tied:
        t.append(("lm_head.weight", nrm(V, C)))
    write_safetensors(os.path.join(d, "model.safetensors"), [(k, v.float()) for k, v in t], torch.float32)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": V, "hidden_size": C,
           "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": NH, "num_key_value_heads": KV,
           "max_position_embeddings": maxT, "hidden_act": "silu", "rms_norm_eps": eps, "rope_theta": theta,
           "attention_bias": bias, "mlp_bias": bias, "tie_word_embeddings": tied, "torch_dtype": "float32"}
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)


def write_gpt2_from(flat_entries, cfg, d):
    """A GPT-2 directory from llm.c-ordered tensors (name -> tensor, our llm.c
    names), the Conv1D weights transposed to (in, out)."""
    os.makedirs(d, exist_ok=True)
    out = []
    for name, t in flat_entries:
        hf = "transformer." + name
        for a, b in (("attn.qkv", "attn.c_attn"), ("attn.proj", "attn.c_proj"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
            hf = hf.replace(a, b)
        if name == "wte.weight":
            t = t[:cfg["V"]]
        if t.dim() == 2 and any(k in name for k in ("qkv", "proj", "fc1", "fc2")):
            t = t.t()
        out.append((hf, t))
    write_safetensors(os.path.join(d, "model.safetensors"), out, torch.float32)
    json.dump({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": cfg["V"],
               "n_positions": cfg["maxT"], "n_embd": cfg["C"], "n_layer": cfg["L"], "n_head": cfg["NH"],
               "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True},
              open(os.path.join(d, "config.json"), "w"), indent=2)
