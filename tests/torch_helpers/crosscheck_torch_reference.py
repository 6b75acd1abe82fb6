#!/usr/bin/python3
"""Checks tools/torch_reference.py against stock PyTorch pieces it does not use:
F.layer_norm, F.linear, F.gelu(approximate="tanh"), F.cross_entropy over
logits[:, :V], clip_grad_norm_ and torch.optim.AdamW (two parameter groups).
Runs 6 float64 steps (warmup, cosine decay, clipping active, weight decay) on a
tiny random model and compares loss, grad norm and the final --out parameters.
Exit 0 and "CROSSCHECK OK" on agreement to 1e-12."""
import os
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import json, math, shutil, struct, subprocess, sys, tempfile
import numpy as np, torch, torch.nn.functional as F

REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "torch_reference.py")
torch.set_num_threads(2)
tmp = tempfile.mkdtemp()
model, data, out = (os.path.join(tmp, n) for n in ("m.bin", "d.bin", "o.st"))
steps, B, T = 6, 4, 32
subprocess.run([REF, "--write-init", model, "--layers", "2", "--heads", "4", "--channels", "64", "--vocab", "100",
                "--padded-vocab", "128", "--max-seq", "64", "--seed", "7"], check=True)
subprocess.run([REF, "--write-data", data, "--tokens", "5000", "--vocab", "100", "--seed", "3"], check=True)
ref = subprocess.run([REF, "--model", model, "--data", data, "--steps", str(steps), "--batch", str(B), "--seq", str(T),
                      "--lr", "1e-3", "--min-lr", "1e-4", "--warmup", "2", "--decay-style", "cosine",
                      "--weight-decay", "0.05", "--beta2", "0.95", "--clip-grad", "0.5", "--dtype", "float64",
                      "--out", out], capture_output=True, text=True, check=True).stdout.splitlines()

maxT, V, L, NH, C, Vp = map(int, np.fromfile(model, np.int32, 256)[2:8])
w = torch.from_numpy(np.fromfile(model, np.float32, offset=1024).astype(np.float64))
per = [("ln1w", (C,)), ("ln1b", (C,)), ("qkvw", (3 * C, C)), ("qkvb", (3 * C,)), ("apw", (C, C)), ("apb", (C,)),
       ("ln2w", (C,)), ("ln2b", (C,)), ("fcw", (4 * C, C)), ("fcb", (4 * C,)), ("fpw", (C, 4 * C)), ("fpb", (C,))]
shapes = [("wte", (Vp, C)), ("wpe", (maxT, C))] + [(k, (L,) + s) for k, s in per] + [("lnfw", (C,)), ("lnfb", (C,))]
P, o = {}, 0
for n, s in shapes:
    k = math.prod(s); P[n] = w[o:o + k].view(s).clone().requires_grad_(); o += k
tok = np.fromfile(data, np.uint16, offset=1024).astype(np.int64)


def loss_fn(idx, tgt):
    x, hd = P["wte"][idx] + P["wpe"][:T], C // NH
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for l in range(L):
        a = F.layer_norm(x, (C,), P["ln1w"][l], P["ln1b"][l], 1e-5)
        q, k, v = (t.reshape(B, T, NH, hd).transpose(1, 2) for t in F.linear(a, P["qkvw"][l], P["qkvb"][l]).split(C, -1))
        att = ((q @ k.transpose(-1, -2)) / math.sqrt(hd)).masked_fill(future, -math.inf).softmax(-1)
        x = x + F.linear((att @ v).transpose(1, 2).reshape(B, T, C), P["apw"][l], P["apb"][l])
        m = F.layer_norm(x, (C,), P["ln2w"][l], P["ln2b"][l], 1e-5)
        x = x + F.linear(F.gelu(F.linear(m, P["fcw"][l], P["fcb"][l]), approximate="tanh"), P["fpw"][l], P["fpb"][l])
    x = F.layer_norm(x, (C,), P["lnfw"], P["lnfb"], 1e-5)
    return F.cross_entropy((x @ P["wte"].t())[..., :V].reshape(-1, V), tgt.reshape(-1))


decay = ("wte", "wpe", "qkvw", "apw", "fcw", "fpw")
opt = torch.optim.AdamW([{"params": [P[n] for n in decay], "weight_decay": 0.05},
                         {"params": [p for n, p in P.items() if n not in decay], "weight_decay": 0.0}],
                        lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
ns, worst = (tok.size - 1) // T, 0.0
for t in range(1, steps + 1):
    r = json.loads(ref[t - 1])
    rows = np.stack([tok[j * T:(j + 1) * T + 1] for j in (((t - 1) * B + k) % ns for k in range(B))])
    opt.zero_grad()
    loss = loss_fn(torch.from_numpy(rows[:, :T]), torch.from_numpy(rows[:, 1:]))
    loss.backward()
    gn = float(torch.nn.utils.clip_grad_norm_(list(P.values()), 0.5))
    for g in opt.param_groups:
        g["lr"] = r["lr"]  # the schedule itself is checked by hand, not here
    opt.step()
    worst = max(worst, abs(float(loss) - r["lm_loss"]) / abs(r["lm_loss"]), abs(gn - r["grad_norm"]) / gn)

raw = open(out, "rb").read()
hl = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + hl])
get = lambda n: np.frombuffer(raw, "<f8", math.prod(hdr[n]["shape"]), 8 + hl + hdr[n]["data_offsets"][0]).reshape(hdr[n]["shape"])
names = dict(zip([k for k, _ in per], "ln_1.weight ln_1.bias attn.qkv.weight attn.qkv.bias attn.proj.weight attn.proj.bias "
                 "ln_2.weight ln_2.bias mlp.fc1.weight mlp.fc1.bias mlp.fc2.weight mlp.fc2.bias".split()))
pairs = [("wte.weight", P["wte"]), ("wpe.weight", P["wpe"]), ("ln_f.weight", P["lnfw"]), ("ln_f.bias", P["lnfb"])]
pairs += [(f"h.{l}.{v}", P[k][l]) for l in range(L) for k, v in names.items()]
assert len(hdr) == len(pairs), (len(hdr), len(pairs))
pdiff = max(float(np.abs(get(n) - p.detach().numpy()).max()) for n, p in pairs)
print(f"worst relative loss/grad-norm difference {worst:.3g}, max parameter difference {pdiff:.3g}")
ok = worst < 1e-12 and pdiff < 1e-12
print("CROSSCHECK OK" if ok else "CROSSCHECK FAILED")
shutil.rmtree(tmp)
sys.exit(0 if ok else 1)
