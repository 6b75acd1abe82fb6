#!/usr/bin/python3
"""torch_reference.py: an independent PyTorch oracle for megatron.c.

Trains GPT-2 from an llm.c model file on an llm.c token file, single process,
no parallelism, and prints one JSON line per step:
  {"iteration": t, "lm_loss": %.17g, "grad_norm": %.17g, "lr": %.17g}
The model, the data order, AdamW, clipping and the LR schedule are written out
by hand (no nn.Module, no torch.optim) so the arithmetic is the stated formula.

  train:      --model F --data F [--steps N --batch B --seq T --lr --min-lr
              --warmup --decay-style --decay-iters --weight-decay --beta1
              --beta2 --eps --clip-grad --dtype --threads --out F --bench]
              --dtype bfloat16: megatron.c's --bf16 rounding, op by op
              (--permute-seed S: the same model summing in another order)
  llm.c mode: --llmc (with --model F --data F [--steps N]): train_gpt2.c's
              training: B 4, T 64, constant LR 1e-4, AdamW (0.9, 0.999, 1e-8)
              with decay (--weight-decay, default 0 as llm.c) on every
              tensor, no clipping, sequential batches
  make model: --write-init F --layers --heads --channels --vocab --max-seq
              --padded-vocab [--seed --std]
  make data:  --write-data F --tokens N --vocab V [--seed]
  self-check: --selftest
  Hugging Face directories (tools/torch_hf.py: GPT2LMHeadModel, LlamaForCausalLM):
    train:      --hf DIR --data F [same training flags; --out F writes megatron.c's
                names, the vocabulary padded to --padded-vocab]
    make Llama: --write-llama DIR --layers --heads --kv-heads --channels --ffn --vocab
                --max-seq [--tied --bias --seed --std]
    convert:    --write-gpt2-hf DIR --model F (an llm.c file as a GPT-2 directory)
Exit status 2 (one line on stderr) on a malformed input file or bad flag.
"""
import os
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OMP threads halve speed here
import argparse, ctypes, json, math, struct, sys, time
try:  # glibc: keep freed memory instead of unmapping it; first-touch page faults
    _libc = ctypes.CDLL("libc.so.6")  # cost ~6 ms/MB on these VMs, so every step would
    _libc.mallopt(-4, 0)              # otherwise re-fault its GBs of fresh activations
    _libc.mallopt(-1, 2**31 - 1)      # (M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 2 GiB)
except (OSError, AttributeError):
    pass
import numpy as np
import torch

MODEL_MAGIC, DATA_MAGIC = 20240326, 20240520
LAYER_KEYS = ["ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
              "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb"]
DECAY = {"wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw"}  # 2-D weights only
ST_NAMES = dict(zip(LAYER_KEYS, "ln_1.weight ln_1.bias attn.qkv.weight attn.qkv.bias attn.proj.weight "
                    "attn.proj.bias ln_2.weight ln_2.bias mlp.fc1.weight mlp.fc1.bias mlp.fc2.weight mlp.fc2.bias".split()))


def die(msg):
    print("torch_reference: " + msg, file=sys.stderr)
    sys.exit(2)


def tensor_shapes(maxT, V, L, NH, C, Vp):
    """(name, per-layer shape or None, full shape) in llm.c file order."""
    s = [("wte", None, (Vp, C)), ("wpe", None, (maxT, C))]
    per = {"ln1w": (C,), "ln1b": (C,), "qkvw": (3 * C, C), "qkvb": (3 * C,),
           "attprojw": (C, C), "attprojb": (C,), "ln2w": (C,), "ln2b": (C,),
           "fcw": (4 * C, C), "fcb": (4 * C,), "fcprojw": (C, 4 * C), "fcprojb": (C,)}
    s += [(k, per[k], (L,) + per[k]) for k in LAYER_KEYS]
    return s + [("lnfw", None, (C,)), ("lnfb", None, (C,))]


# ----------------------------------------------------------------- files ----
def read_model(path):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size < 1024:
        die(f"{path}: shorter than the 1024-byte header")
    h = raw[:1024].view(np.int32)
    if h[0] != MODEL_MAGIC:
        die(f"{path}: bad magic {h[0]} (want {MODEL_MAGIC})")
    if h[1] != 3:
        die(f"{path}: version {h[1]} unsupported (want 3, fp32)")
    cfg = dict(maxT=int(h[2]), V=int(h[3]), L=int(h[4]), NH=int(h[5]), C=int(h[6]), Vp=int(h[7]))
    if min(cfg.values()) <= 0 or cfg["C"] % cfg["NH"] or cfg["Vp"] < cfg["V"]:
        die(f"{path}: inconsistent header {cfg}")
    n = sum(math.prod(full) for _, _, full in tensor_shapes(**cfg))
    if raw.size != 1024 + 4 * n:
        die(f"{path}: {raw.size} bytes, header implies {1024 + 4 * n}")
    return cfg, raw[1024:].view(np.float32)


def write_model(path, cfg, flat32):
    h = np.zeros(256, np.int32)
    h[:8] = [MODEL_MAGIC, 3, cfg["maxT"], cfg["V"], cfg["L"], cfg["NH"], cfg["C"], cfg["Vp"]]
    with open(path, "wb") as f:
        f.write(h.tobytes())
        f.write(np.ascontiguousarray(flat32, dtype="<f4").tobytes())


def read_tokens(path, V):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size < 1024:
        die(f"{path}: shorter than the 1024-byte header")
    h = raw[:1024].view(np.int32)
    if h[0] != DATA_MAGIC:
        die(f"{path}: bad magic {h[0]} (want {DATA_MAGIC})")
    if h[1] not in (1, 2):
        die(f"{path}: version {h[1]} unsupported (1: uint16, 2: uint32)")
    width = 2 if h[1] == 1 else 4
    if h[2] < 0 or raw.size != 1024 + width * int(h[2]):
        die(f"{path}: {raw.size} bytes, header says {h[2]} tokens of {width} bytes")
    tok = raw[1024:].view("<u2" if width == 2 else "<u4").astype(np.int64)
    if tok.size and tok.max() >= V:
        i = int(np.argmax(tok >= V))
        die(f"{path}: token {tok[i]} at position {i} is >= vocab size {V}")
    return tok


def write_safetensors(path, entries, dtype):
    """entries: [(name, tensor)]; the safetensors layout, written by hand."""
    header, off, blobs = {}, 0, []
    for name, t in entries:
        b = t.detach().contiguous().cpu().numpy().astype("<f8" if dtype == torch.float64 else "<f4").tobytes()
        header[name] = {"dtype": "F64" if dtype == torch.float64 else "F32",
                        "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)  # pad so the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------- params ----
class Params:
    """All parameters live in one flat buffer `flat`, gradients in `gflat`.
    The autograd leaves are views into `flat` (one per tensor per layer, so the
    backward never scatters into a stacked tensor), and each leaf's .grad is
    preset to the matching view of `gflat`: autograd then accumulates into it
    in place, and clipping/AdamW run over whole stacked tensors."""

    def __init__(self, cfg, flat32, dtype):
        self.cfg, self.dtype = cfg, dtype
        self.flat = torch.from_numpy(flat32).to(dtype)  # fp32: shares the file's buffer, no copy
        self.gflat = torch.zeros_like(self.flat)
        self.segments, self.leaves, self.p = [], [], {}  # segments: (name, offset, numel, full shape)
        off = 0
        for name, per, full in tensor_shapes(**cfg):
            n = math.prod(full)
            self.segments.append((name, off, n, full))
            if per is None:
                self.p[name] = self._leaf(off, full)
            else:
                m = math.prod(per)
                self.p[name] = [self._leaf(off + l * m, per) for l in range(cfg["L"])]
            off += n

    def _leaf(self, off, shape):
        n = math.prod(shape)
        t = self.flat[off:off + n].view(shape).detach().requires_grad_()
        t.grad = self.gflat[off:off + n].view(shape)
        self.leaves.append(t)
        return t

    def stacked(self, name):
        _, off, n, full = next(s for s in self.segments if s[0] == name)
        return self.flat[off:off + n].view(full)

    def safetensors_entries(self):
        e = [("wte.weight", self.stacked("wte")), ("wpe.weight", self.stacked("wpe"))]
        for l in range(self.cfg["L"]):
            e += [(f"h.{l}.{ST_NAMES[k]}", self.stacked(k)[l]) for k in LAYER_KEYS]
        return e + [("ln_f.weight", self.stacked("lnfw")), ("ln_f.bias", self.stacked("lnfb"))]


# ----------------------------------------------------------------- model ----
def layernorm(x, w, b, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    xc = x - mean
    var = (xc * xc).mean(-1, keepdim=True)  # biased variance, as in the C code
    return xc * torch.rsqrt(var + eps) * w + b


def linear(x, w, b):  # x (N, in), w (out, in): x·wᵀ + b
    return torch.addmm(b, x, w.t())


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def gpt2_loss(P, idx, tgt, per_position=False):
    """Mean cross-entropy over all B*T positions (or the (B, T) losses). idx, tgt: (B, T) int64."""
    cfg, p = P.cfg, P.p
    B, T = idx.shape
    C, NH, V = cfg["C"], cfg["NH"], cfg["V"]
    hd = C // NH
    x = (p["wte"][idx] + p["wpe"][:T]).view(B * T, C)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for l in range(cfg["L"]):
        g = lambda k: p[k][l]
        qkv = linear(layernorm(x, g("ln1w"), g("ln1b")), g("qkvw"), g("qkvb"))
        # columns [Q | K | V], each C wide; head j = columns [j*hd, (j+1)*hd) within each
        q, k, v = (t.reshape(B, T, NH, hd).transpose(1, 2) for t in qkv.split(C, dim=1))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = torch.softmax(att.masked_fill(~causal, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B * T, C)
        x = x + linear(y, g("attprojw"), g("attprojb"))
        h = gelu_tanh(linear(layernorm(x, g("ln2w"), g("ln2b")), g("fcw"), g("fcb")))
        x = x + linear(h, g("fcprojw"), g("fcprojb"))
    x = layernorm(x, p["lnfw"], p["lnfb"])
    logits = x @ p["wte"].t()  # (B*T, Vp): the padded vocab, as the C trainer computes it
    if cfg["Vp"] > V:  # padded columns must not take part in the softmax
        pad = torch.arange(cfg["Vp"]) >= V
        logits = logits.masked_fill(pad, float("-inf"))
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(1, tgt.reshape(-1, 1))
    return nll.view(B, T) if per_position else nll.mean()


# ------------------------------------------------------------------ bf16 ----
# --dtype bfloat16: Megatron's bf16 recipe as megatron.c's --bf16 states it
# (docs/design.md, "bf16"), with every rounding written out: each op computes
# in fp32 and rounds its output once. torch's own bfloat16 tensors are not
# trusted for this (on CPU its GELU rounds every elementary op, LayerNorm and
# the softmax backward round intermediates, the embedding backward
# accumulates in bf16); only its fp32 -> bf16 conversion (round to nearest
# even) is used.
def bf16(x):
    return x.to(torch.bfloat16).to(torch.float32)


class _Act(torch.autograd.Function):
    """An activation handed on as bf16: forward rounds it, backward rounds
    the gradient arriving for it (every activation gradient is bf16)."""
    @staticmethod
    def forward(ctx, x):
        return bf16(x)

    @staticmethod
    def backward(ctx, g):
        return bf16(g)


class _Weight(torch.autograd.Function):
    """The bf16 copy of an fp32 main weight: its gradient reaches the main
    weight unrounded (fp32 accumulation)."""
    @staticmethod
    def forward(ctx, w):
        return bf16(w)

    @staticmethod
    def backward(ctx, g):
        return g


R, RW = _Act.apply, _Weight.apply


def gpt2_loss_bf16(P, idx, tgt, perm=None):
    """gpt2_loss under --bf16's rounding points. perm(n) gives a permutation
    of a contraction of length n (None: natural order): the same sums in
    another order, a correct variant whose distance from this one measures
    bf16's run-to-run spread."""
    cfg, p = P.cfg, P.p
    B, T = idx.shape
    C, NH, V = cfg["C"], cfg["NH"], cfg["V"]
    hd = C // NH
    causal = torch.ones(T, T, dtype=torch.bool).tril()

    def mm(x, w):  # x (..., k) @ w (k, n): bf16 inputs, fp32 sums in some order
        if perm is None:
            return x @ w
        q = perm(x.shape[-1])
        return x[..., q] @ w[..., q, :]

    def ln(x, w, b):
        return R(layernorm(R(x), RW(w), RW(b)))  # R(x): the norm's input gradient is rounded before it joins the residual's

    def lin(x, w, b):  # the GEMM's output rounded once, bias included
        return R(mm(x, RW(w).t()) + RW(b))

    x = R(RW(p["wte"])[idx] + RW(p["wpe"])[:T]).view(B * T, C)
    for l in range(cfg["L"]):
        g = lambda k: p[k][l]
        qkv = lin(ln(x, g("ln1w"), g("ln1b")), g("qkvw"), g("qkvb"))
        q, k, v = (t.reshape(B, T, NH, hd).transpose(1, 2) for t in qkv.split(C, dim=1))
        att = R(mm(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hd)))
        att = R(torch.softmax(att.masked_fill(~causal, float("-inf")), dim=-1))
        y = R(mm(att, v)).transpose(1, 2).reshape(B * T, C)
        x = R(x + (R(mm(y, RW(g("attprojw")).t())) + RW(g("attprojb"))))
        h = R(gelu_tanh(lin(ln(x, g("ln2w"), g("ln2b")), g("fcw"), g("fcb"))))
        x = R(x + (R(mm(h, RW(g("fcprojw")).t())) + RW(g("fcprojb"))))
    x = ln(x, p["lnfw"], p["lnfb"])
    logits = R(mm(x, RW(p["wte"]).t()))  # bf16 logits, the cross-entropy in fp32
    if cfg["Vp"] > V:
        logits = logits.masked_fill(torch.arange(cfg["Vp"]) >= V, float("-inf"))
    logp = torch.log_softmax(logits, dim=-1)
    return -logp.gather(1, tgt.reshape(-1, 1)).mean()


def permutations(seed):
    """One fixed random permutation per contraction length, or None."""
    if seed is None:
        return None
    g, cache = torch.Generator().manual_seed(seed), {}
    return lambda n: cache.setdefault(n, torch.randperm(n, generator=g))


# -------------------------------------------------------------- training ----
def lr_at(t, a, decoupled=False):
    """Megatron OptimizerParamScheduler.get_lr() with n = t-1 steps done;
    decoupled: --decoupled-lr's group (its own peak and floor). Counted in
    samples (steps x batch), as Megatron's scheduler counts num_steps.
    """
    decay = a.decay_iters if a.decay_iters is not None else a.steps
    n, wu, decay, wsd = (t - 1) * a.batch, a.warmup * a.batch, decay * a.batch, (a.wsd_decay_iters or 0) * a.batch
    peak, floor = (a.decoupled_lr, a.decoupled_min_lr) if decoupled else (a.lr, a.min_lr)
    if wu > 0 and n <= wu:
        return peak * n / wu
    if a.decay_style == "constant":
        return peak
    if n > decay:
        return floor
    if a.decay_style == "inverse-square-root":
        return max(floor, peak * max(wu, 1) ** 0.5 / (max(n, 1) ** 0.5))
    ratio = (n - wu) / (decay - wu)
    if a.decay_style == "WSD":
        start = decay - wsd
        if n <= start:
            coeff = 1.0
        else:
            r = (n - start) / wsd
            coeff = {"exponential": lambda: 2.0 * math.pow(0.5, r) - 1.0, "linear": lambda: 1.0 - r,
                     "cosine": lambda: 0.5 * (math.cos(math.pi * r) + 1.0), "minus_sqrt": lambda: 1.0 - math.sqrt(r)}[a.wsd_style]()
    else:
        coeff = 1.0 - ratio if a.decay_style == "linear" else 0.5 * (math.cos(math.pi * ratio) + 1.0)
    return floor + coeff * (peak - floor)


def wd_at(t, a):
    """Megatron get_wd(): from --start-wd to --end-wd over the run's steps."""
    if a.wd_incr_style == "constant":
        return a.weight_decay
    r = (t - 1) / a.steps
    coeff = r if a.wd_incr_style == "linear" else 0.5 * (math.cos(math.pi * (1 - r)) + 1.0)
    return a.start_wd + coeff * (a.end_wd - a.start_wd)


class AdamW:
    """p -= lr*( (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps) + wd*p ), wd on 2-D tensors only.
    State and scratch buffers are allocated once and reused every step."""

    def __init__(self, P, a):
        self.P, self.a = P, a
        self.m, self.v = torch.zeros_like(P.flat), torch.zeros_like(P.flat)
        self.t1, self.t2 = torch.empty_like(P.flat), torch.empty_like(P.flat)

    def step(self, t, lr, wd, lr_decoupled=None):
        a = self.a
        bc1, bc2 = 1.0 - a.beta1 ** t, 1.0 - a.beta2 ** t
        for name, off, n, _ in self.P.segments:
            s = slice(off, off + n)
            p, g, m, v, t1, t2 = (b[s] for b in (self.P.flat, self.P.gflat, self.m, self.v, self.t1, self.t2))
            m.mul_(a.beta1).add_(g, alpha=1.0 - a.beta1)
            v.mul_(a.beta2).addcmul_(g, g, value=1.0 - a.beta2)
            torch.div(m, bc1, out=t1)                         # m_hat
            torch.div(v, bc2, out=t2).sqrt_().add_(a.eps)     # sqrt(v_hat) + eps
            t1.div_(t2)
            if (a.llmc or name in DECAY) and wd != 0.0:  # llm.c decays every tensor
                t1.add_(p, alpha=wd)
            p.add_(t1, alpha=-(lr_decoupled if name == "wte" and lr_decoupled is not None else lr))


def batch_at(tokens, i, B, T):
    """llm.c sequential order: step i uses samples (i*B+k) % n_samples."""
    ns = (tokens.size - 1) // T
    rows = [tokens[j * T:(j + 1) * T + 1] for j in ((i * B + k) % ns for k in range(B))]
    buf = torch.from_numpy(np.stack(rows))
    return buf[:, :T].contiguous(), buf[:, 1:].contiguous()


def fmt(x):
    return "%.17g" % x if math.isfinite(x) else '"%r"' % x


def train(a):
    dtype = torch.float64 if a.dtype == "float64" else torch.float32  # bfloat16: fp32 main weights
    cfg, flat32 = read_model(a.model)
    tokens = read_tokens(a.data, cfg["V"])
    B, T = a.batch, a.seq
    if T > cfg["maxT"]:
        die(f"--seq {T} exceeds the model's max sequence length {cfg['maxT']}")
    if tokens.size < T + 1:
        die(f"{a.data}: {tokens.size} tokens, need at least seq+1 = {T + 1}")
    P = Params(cfg, flat32, dtype)
    opt = AdamW(P, a)
    times = []
    for t in range(1, a.steps + 1):
        t0 = time.perf_counter()
        idx, tgt = batch_at(tokens, t - 1, B, T)
        P.gflat.zero_()
        if a.dtype == "bfloat16":
            loss = gpt2_loss_bf16(P, idx, tgt, permutations(a.permute_seed))
        else:
            loss = gpt2_loss(P, idx, tgt)
        loss.backward()
        with torch.no_grad():
            norm = math.sqrt(float(torch.dot(P.gflat, P.gflat)))  # wte counted once: one buffer
            if a.clip_grad > 0:
                coeff = a.clip_grad / (norm + 1e-6)
                if coeff < 1.0:
                    P.gflat.mul_(coeff)
            lr = lr_at(t, a)
            opt.step(t, lr, wd_at(t, a), lr_at(t, a, True) if a.decoupled_lr is not None else None)
        times.append(time.perf_counter() - t0)
        print('{"iteration": %d, "lm_loss": %s, "grad_norm": %s, "lr": %s}'
              % (t, fmt(float(loss)), fmt(norm), fmt(lr)), flush=True)
    if a.out:
        write_safetensors(a.out, P.safetensors_entries(), dtype)
    if a.bench and times:
        timed = times[1:] or times  # the first step pays for allocation
        ms = 1000.0 * sum(timed) / len(timed)
        print(json.dumps({"bench": True, "ms_per_iter": round(ms, 3),
                          "tokens_per_s": round(B * T / (ms / 1000.0), 1)}), flush=True)


def train_hf(a):
    """The same loop on a Hugging Face directory's own tensors and names."""
    import torch_hf as H
    dtype = torch.float64 if a.dtype == "float64" else torch.float32
    cfg, arrays = H.read_dir(a.hf)
    s = H.shape_of(cfg)
    tokens = read_tokens(a.data, s["V"])
    B, T = a.batch, a.seq
    p = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in arrays.items()}
    m = {k: torch.zeros_like(v) for k, v in p.items()}
    v2 = {k: torch.zeros_like(v) for k, v in p.items()}
    for t in range(1, a.steps + 1):
        idx, tgt = batch_at(tokens, t - 1, B, T)
        for x in p.values():
            x.grad = None
        loss = H.loss(s, p, idx, tgt)
        loss.backward()
        with torch.no_grad():
            grads = {k: (x.grad if x.grad is not None else torch.zeros_like(x)) for k, x in p.items()}
            norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
            coeff = a.clip_grad / (norm + 1e-6) if a.clip_grad > 0 else 1.0
            scale = coeff if coeff < 1.0 else 1.0
            lr = lr_at(t, a)
            lr_dec = lr_at(t, a, True) if a.decoupled_lr is not None else lr
            bc1, bc2 = 1.0 - a.beta1 ** t, 1.0 - a.beta2 ** t
            for k, x in p.items():  # AdamW, decay on 2-D tensors only (Megatron's groups)
                g = grads[k] * scale
                m[k].mul_(a.beta1).add_(g, alpha=1.0 - a.beta1)
                v2[k].mul_(a.beta2).addcmul_(g, g, value=1.0 - a.beta2)
                upd = (m[k] / bc1) / ((v2[k] / bc2).sqrt() + a.eps)
                wd = wd_at(t, a)
                if x.dim() == 2 and wd != 0.0:
                    upd = upd + wd * x
                # --decoupled-lr: the word embeddings and the output layer
                x.add_(upd, alpha=-(lr_dec if k in ("model.embed_tokens.weight", "lm_head.weight") else lr))
        print('{"iteration": %d, "lm_loss": %s, "grad_norm": %s, "lr": %s}'
              % (t, fmt(float(loss)), fmt(norm), fmt(lr)), flush=True)
    if a.out:
        Vp = a.padded_vocab if a.padded_vocab is not None else s["V"]
        H.write_safetensors(a.out, H.ours(s, p, Vp), dtype)


# ------------------------------------------------------- generated inputs ----
def init_weights(cfg, seed, std):
    """Random llm.c weights, drawn in file order from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    nrm = lambda shape, s: torch.normal(0.0, s, size=shape, generator=g, dtype=torch.float32)
    out_std = std / math.sqrt(2 * cfg["L"])  # residual output projections, as GPT-2/Megatron
    parts = []
    for name, _, full in tensor_shapes(**cfg):
        if name in ("ln1w", "ln2w", "lnfw"):
            t = 1.0 + nrm(full, 0.1)
        elif name in ("ln1b", "ln2b", "lnfb"):
            t = nrm(full, 0.1)
        elif name in ("attprojw", "fcprojw"):
            t = nrm(full, out_std)
        elif name in DECAY:
            t = nrm(full, std)
        else:  # linear biases: small but nonzero so their gradients matter
            t = nrm(full, 0.01)
        parts.append(t.reshape(-1))
    return torch.cat(parts).numpy()


def write_data(path, n, V, seed):
    rng = np.random.default_rng(seed)
    h = np.zeros(256, np.int32)
    wide = V > 65536
    h[:3] = [DATA_MAGIC, 2 if wide else 1, n]
    with open(path, "wb") as f:
        f.write(h.tobytes())
        f.write(rng.integers(0, V, size=n).astype("<u4" if wide else "<u2").tobytes())


# -------------------------------------------------------------- selftest ----
def selftest():
    torch.manual_seed(0)
    cfg = dict(maxT=16, V=50, L=2, NH=2, C=16, Vp=64)
    P = Params(cfg, init_weights(cfg, 1, 0.1), torch.float64)
    tok = np.random.default_rng(2).integers(0, cfg["V"], size=40)
    idx, tgt = batch_at(tok, 0, 2, 12)
    P.gflat.zero_()
    gpt2_loss(P, idx, tgt).backward()
    # autograd must have accumulated into the preset views of gflat (not replaced them)
    ok = torch.equal(torch.cat([t.grad.reshape(-1) for t in P.leaves]), P.gflat)
    print(f"gradient buffer check: leaf grads are the flat gradient buffer: {ok}")
    checks = [("wte", None), ("wpe", None), ("lnfw", None), ("lnfb", None)]
    checks += [(k, l) for k in LAYER_KEYS for l in range(cfg["L"])]
    gen = torch.Generator().manual_seed(3)
    worst = 0.0
    for name, l in checks:
        leaf = P.p[name] if l is None else P.p[name][l]
        flat_leaf = leaf.detach().view(-1)
        hi = cfg["V"] * cfg["C"] if name == "wte" else flat_leaf.numel()  # wte: real rows (padded: below)
        for e in torch.randint(0, hi, (3,), generator=gen).tolist():
            h = 1e-5  # central differences in float64: truncation ~h^2, rounding ~1e-16/h
            with torch.no_grad():
                orig = float(flat_leaf[e])
                flat_leaf[e] = orig + h
                lp = float(gpt2_loss(P, idx, tgt))
                flat_leaf[e] = orig - h
                lm = float(gpt2_loss(P, idx, tgt))
                flat_leaf[e] = orig
            fd, ag = (lp - lm) / (2 * h), float(leaf.grad.view(-1)[e])
            err = abs(fd - ag) / max(1e-4, abs(fd) + abs(ag))
            worst = max(worst, err)
            if err > 1e-5:
                ok = False
                print(f"FAIL grad {name}[{l}] elem {e}: autograd {ag:.10g} fd {fd:.10g}")
    print(f"gradient check: {len(checks) * 3} elements, worst relative error {worst:.2e}")
    # padded vocab rows (>= V) are masked: changing one leaves the loss bit-identical
    with torch.no_grad():
        base = float(gpt2_loss(P, idx, tgt))
        P.p["wte"][cfg["V"] + 3] += 5.0
        pert = float(gpt2_loss(P, idx, tgt))
    padgrad = float(P.p["wte"].grad[cfg["V"]:].abs().max())
    print(f"padded-row check: loss {base!r} -> {pert!r}, max |grad| of padded rows {padgrad}")
    ok &= base == pert and padgrad == 0.0
    # causality: changing the last input token changes only the last position's loss
    with torch.no_grad():
        idx2 = idx.clone()
        idx2[:, -1] = (idx2[:, -1] + 1) % cfg["V"]
        l1, l2 = gpt2_loss(P, idx, tgt, True), gpt2_loss(P, idx2, tgt, True)
    same, moved = bool(torch.equal(l1[:, :-1], l2[:, :-1])), bool((l1[:, -1] != l2[:, -1]).all())
    print(f"causality check: earlier positions identical {same}, last position changed {moved}")
    ok &= same and moved
    print("selftest " + ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


# ------------------------------------------------------------------ main ----
def main():
    ap = argparse.ArgumentParser(description="PyTorch reference trainer for megatron.c")
    A = ap.add_argument
    A("--model"); A("--data"); A("--out")
    A("--steps", type=int, default=1); A("--batch", type=int, default=4); A("--seq", type=int, default=64)
    A("--lr", type=float, default=1e-4); A("--min-lr", type=float, default=0.0)
    A("--warmup", type=int, default=0); A("--decay-iters", type=int)
    A("--decay-style", choices=["constant", "linear", "cosine", "inverse-square-root", "WSD"], default="linear")
    A("--wsd-decay-iters", type=int); A("--wsd-style", choices=["exponential", "linear", "cosine", "minus_sqrt"], default="exponential")
    A("--decoupled-lr", type=float); A("--decoupled-min-lr", type=float)
    A("--wd-incr-style", choices=["constant", "linear", "cosine"], default="constant")
    A("--start-wd", type=float); A("--end-wd", type=float)
    A("--weight-decay", type=float, help="default 0.01 (0 with --llmc)")
    A("--llmc", action="store_true", help="llm.c's train_gpt2.c training (see the docstring)")
    A("--beta1", type=float, default=0.9); A("--beta2", type=float, default=0.999)
    A("--eps", type=float, default=1e-8); A("--clip-grad", type=float, default=1.0)
    A("--dtype", choices=["float32", "float64", "bfloat16"], default="float32")
    A("--permute-seed", type=int, help="bfloat16: sum every contraction in a random fixed order (a correct variant)")
    A("--threads", type=int, default=2); A("--bench", action="store_true")
    A("--selftest", action="store_true")
    A("--write-init"); A("--layers", type=int); A("--heads", type=int); A("--channels", type=int)
    A("--vocab", type=int); A("--max-seq", type=int); A("--padded-vocab", type=int)
    A("--seed", type=int, default=1234); A("--std", type=float, default=0.02)
    A("--write-data"); A("--tokens", type=int)
    A("--hf"); A("--write-llama"); A("--write-gpt2-hf"); A("--kv-heads", type=int); A("--ffn", type=int)
    A("--tied", action="store_true"); A("--bias", action="store_true")
    a = ap.parse_args()
    if a.weight_decay is None:
        a.weight_decay = 0.0 if a.llmc else 0.01
    if a.decoupled_min_lr is None:
        a.decoupled_min_lr = a.min_lr
    if a.llmc:  # train_gpt2.c: gpt2_update(&model, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, step+1), B 4, T 64
        a.batch, a.seq, a.lr, a.min_lr, a.warmup, a.decay_style = 4, 64, 1e-4, 0.0, 0, "constant"
        a.beta1, a.beta2, a.eps, a.clip_grad = 0.9, 0.999, 1e-8, 0.0
    torch.set_num_threads(max(1, a.threads))
    if a.selftest:
        return selftest()
    if a.write_init:
        need = ["layers", "heads", "channels", "vocab", "max_seq"]
        if any(getattr(a, k) is None for k in need):
            die("--write-init needs --layers --heads --channels --vocab --max-seq")
        cfg = dict(maxT=a.max_seq, V=a.vocab, L=a.layers, NH=a.heads, C=a.channels,
                   Vp=a.padded_vocab if a.padded_vocab is not None else a.vocab)
        if min(cfg.values()) <= 0 or cfg["C"] % cfg["NH"] or cfg["Vp"] < cfg["V"]:
            die(f"--write-init: inconsistent shape {cfg}")
        write_model(a.write_init, cfg, init_weights(cfg, a.seed, a.std))
        return 0
    if a.write_data:
        if a.tokens is None or a.vocab is None or a.tokens < 0 or a.vocab <= 0:
            die("--write-data needs --tokens N --vocab V")
        write_data(a.write_data, a.tokens, a.vocab, a.seed)
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if a.write_llama:
        need = ["layers", "heads", "kv_heads", "channels", "ffn", "vocab", "max_seq"]
        if any(getattr(a, k) is None for k in need):
            die("--write-llama needs --layers --heads --kv-heads --channels --ffn --vocab --max-seq")
        import torch_hf as H
        H.write_llama(a.write_llama, a.layers, a.channels, a.heads, a.kv_heads, a.ffn, a.vocab, a.max_seq,
                      a.seed, a.std, tied=a.tied, bias=a.bias)
        return 0
    if a.write_gpt2_hf:
        if not a.model:
            die("--write-gpt2-hf needs --model F (an llm.c file)")
        import torch_hf as H
        cfg, flat32 = read_model(a.model)
        P = Params(cfg, flat32, torch.float32)
        H.write_gpt2_from(P.safetensors_entries(), cfg, a.write_gpt2_hf)
        return 0
    if a.hf:
        if not a.data:
            die("--hf DIR needs --data F")
        train_hf(a)
        return 0
    if not a.model or not a.data:
        die("need --model and --data (or --write-init / --write-data / --selftest)")
    if a.steps < 1 or a.batch < 1 or a.seq < 1:
        die("--steps, --batch and --seq must be >= 1")
    train(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
