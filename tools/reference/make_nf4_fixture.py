"""NF4 fixtures from the real bitsandbytes (CUDA), for tests/nf4.test.ts.

    python tools/reference/make_nf4_fixture.py --out tests/fixtures/nf4

Needs torch with a CUDA GPU and bitsandbytes: a release, or a source build on PYTHONPATH, which
takes about 30 s on the H200 machine (no pip index there):
    cmake -B build -DCOMPUTE_BACKEND=cuda -DCOMPUTE_CAPABILITY=90 . && cmake --build build -j16
    PYTHONPATH=<bitsandbytes checkout> python tools/reference/make_nf4_fixture.py --out ...
There is deliberately no fallback: a fixture that did not come from bitsandbytes itself would only
test us against our own reading of it. The fixtures in tests/fixtures/nf4 were made that way from
bitsandbytes 0.50.2.dev0 (commit 95f9af3), torch 2.11.0+cu130, on an H200.

Each case is <case>.safetensors + <case>.json. The safetensors file holds
  input                 the tensor that was quantized (its own dtype)
  weight, weight.absmax, weight.quant_map, [weight.nested_absmax, weight.nested_quant_map],
  weight.quant_state.bitsandbytes__nf4
                        exactly what Linear4bit._save_to_state_dict writes for it
                        (QuantState.as_dict(packed=True)), i.e. a bnb-4bit checkpoint's tensors
  absmax_f32            the per-block absmax before double quantization (F32)
  absmax_dequant        (nested cases) the absmax bnb decodes from the nested form (F32)
  dequant               dequantize_4bit output in the input's dtype
  dequant_f32           dequantize_4bit output in float32 (same absmax)
and the JSON the quant state (non-tensor part), versions, the GPU, and what the case is for.
Cases:
  random_{f32,bf16}_{nested,plain}  seeded N(0, 0.02) 128x192 matrix, blocksize 64
  random_f32_b128_plain             same matrix, blocksize 128
  edge_f32_plain                    crafted 1-D f32 vector (odd length): NF4 decision thresholds and
                                    their f32 neighbours, zero / -0 blocks, NaN, +-Inf, subnormals
  blockwise8_edge                   8-bit blockwise (the double-quant quantizer, blocksize 256) on
                                    the dynamic map's midpoints and neighbours: q, absmax
"""
import argparse
import json
import os
import sys

import numpy as np

try:
    import torch
except ImportError:  # pragma: no cover
    sys.exit("make_nf4_fixture: torch is not importable; run this on the GPU benchmark machine.")

try:
    import bitsandbytes as bnb
    import bitsandbytes.functional as F
except Exception as e:  # ImportError, or a missing native library
    sys.exit(
        "make_nf4_fixture: bitsandbytes is not importable "
        f"({type(e).__name__}: {e}).\n"
        "Install it (pip install bitsandbytes) or build it from source "
        "(see this script's docstring) and put it on PYTHONPATH. "
        "NF4 fixtures must come from the real library; there is no pure-torch fallback."
    )

from safetensors.torch import save_file

SEED = 0
ROWS, COLS = 128, 192

# bnb's CUDA decision tree (csrc/kernels.cu dQuantizeNF4) as f32 literals, for the edge case.
NF4_THRESHOLD_LITERALS = [
    "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
    "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
    "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
    "0.5016634166240692", "0.6427869200706482", "0.8614784181118011",
]


def f32(x):
    return np.float32(x)


def ulp_neighbours(v):
    v = np.float32(v)
    return [np.nextafter(v, np.float32(-np.inf)), v, np.nextafter(v, np.float32(np.inf))]


def edge_vector():
    """1-D float32, 64-element blocks, odd total length (last block partial, last byte half used)."""
    code = F.get_4bit_type("nf4", device="cpu").numpy().astype(np.float32)
    blocks = []
    # Block 1: absmax 1.0 (exact reciprocal): thresholds as decimal->f32 (nvcc) and as f32
    # midpoints, each with its f32 neighbours; then code values; padded with 0.5.
    vals = [np.float32(1.0)]
    for i, lit in enumerate(NF4_THRESHOLD_LITERALS):
        mid = np.float32((code[i] + code[i + 1]) / np.float32(2))
        cands = set()
        for v in ulp_neighbours(np.float32(float(lit))) + ulp_neighbours(mid):
            cands.add(float(v))
        vals += [np.float32(v) for v in sorted(cands)]
    vals = vals[:64]
    b = np.full(64, 0.5, dtype=np.float32)
    b[: len(vals)] = vals
    blocks.append(b)
    rest = [np.float32(1.0)] + [np.float32(float(NF4_THRESHOLD_LITERALS[i])) for i in range(15)]
    rest += [np.nextafter(np.float32(float(t)), np.float32(2)) for t in NF4_THRESHOLD_LITERALS]
    rest += list(code)
    b = np.full(64, -0.25, dtype=np.float32)
    b[: len(rest)] = rest[:64]
    blocks.append(b)
    # Blocks 3-5: the same thresholds at absmax 0.7, 3.3e-3 and 1234.5 (reciprocal not exact): the
    # products x * (1/absmax) that land on or next to a threshold.
    for a in (np.float32(0.7), np.float32(3.3e-3), np.float32(1234.5)):
        r = np.float32(np.float32(1.0) / a)
        vals = [a, -a]
        for lit in NF4_THRESHOLD_LITERALS:
            t = np.float32(float(lit))
            x = np.float32(t / r)
            vals += ulp_neighbours(x)
        b = np.full(64, a * np.float32(0.3), dtype=np.float32)
        b[: min(64, len(vals))] = vals[:64]
        blocks.append(b)
    blocks.append(np.zeros(64, dtype=np.float32))                         # zero block
    nz = np.full(64, -0.0, dtype=np.float32)
    nz[5] = 0.0
    blocks.append(nz)                                                     # -0 block
    rng = np.random.default_rng(SEED + 1)
    base = lambda: rng.standard_normal(64).astype(np.float32)
    b = base(); b[3] = np.nan; blocks.append(b)                           # one NaN
    b = base(); b[7] = np.inf; blocks.append(b)                           # +Inf
    b = base(); b[9] = -np.inf; blocks.append(b)                          # -Inf
    sub = (rng.standard_normal(64) * 1e-39).astype(np.float32)            # subnormals only
    blocks.append(sub)
    b = base(); b[::3] = sub[::3]; blocks.append(b)                       # subnormals among normals
    blocks.append(np.full(64, np.nan, dtype=np.float32))                  # all NaN
    b = base() * np.float32(3e37); blocks.append(b)                       # absmax ~ 1e38: 1/absmax tiny
    b = base(); b[0] = np.float32(-4.0); b[1] = np.float32(4.0); blocks.append(b)  # +-absmax ties
    blocks.append(rng.standard_normal(37).astype(np.float32))             # partial last block (odd)
    return np.concatenate(blocks)


def dynamic_map_edge(code):
    """Inputs for the 8-bit blockwise quantizer: absmax 1.0 blocks of midpoints and neighbours."""
    code = code.cpu().numpy().astype(np.float32)
    vals = []
    for i in range(255):
        mid = np.float32(np.float32(code[i] + code[i + 1]) * np.float32(0.5))
        vals += ulp_neighbours(mid)
    vals += list(code)
    vals = np.array(vals, dtype=np.float32)
    pad = (-len(vals)) % 255
    vals = np.concatenate([vals, np.zeros(pad, dtype=np.float32)])
    # one 1.0 per 256-block so every block's absmax is exactly 1
    out = []
    for k in range(0, len(vals), 255):
        out.append(np.concatenate([[np.float32(1.0)], vals[k:k + 255]]))
    out.append(np.zeros(256, dtype=np.float32))          # zero block
    out.append(np.array([np.float32(0.37)] * 100, dtype=np.float32))  # partial, absmax not a power of 2
    return np.concatenate(out).astype(np.float32)


def quantize_case(x_cpu, blocksize, nested):
    dev = torch.device("cuda")
    x = x_cpu.to(dev)
    packed, qs = F.quantize_4bit(x, blocksize=blocksize, compress_statistics=nested, quant_type="nf4")
    packed_plain, qs_plain = F.quantize_4bit(x, blocksize=blocksize, compress_statistics=False, quant_type="nf4")
    assert torch.equal(packed, packed_plain), "packed bytes differ between nested and plain runs"
    tensors = {}
    for k, v in qs.as_dict(packed=True).items():
        tensors["weight." + k] = v.detach().cpu().contiguous()
    tensors["weight"] = packed.detach().cpu().contiguous()
    tensors["input"] = x_cpu.contiguous()
    tensors["absmax_f32"] = qs_plain.absmax.detach().float().cpu().contiguous()
    if nested:
        am = F.dequantize_blockwise(qs.absmax, qs.state2)
        am += qs.offset
        tensors["absmax_dequant"] = am.float().cpu().contiguous()
    tensors["dequant"] = F.dequantize_4bit(packed, qs, quant_type="nf4").cpu().contiguous()
    eff = qs.absmax if not nested else tensors["absmax_dequant"].to(dev)
    out = torch.empty(tuple(x.shape), dtype=torch.float32, device=dev)
    F.dequantize_4bit(packed, absmax=eff, out=out, blocksize=blocksize, quant_type="nf4")
    tensors["dequant_f32"] = out.cpu().contiguous()
    state = {k: v for k, v in qs.as_dict(packed=False).items() if not isinstance(v, torch.Tensor)}
    return tensors, state


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/nf4")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("make_nf4_fixture: no CUDA GPU; bnb-4bit checkpoints are made by bnb's CUDA kernels, "
                 "so the fixtures must be too.")
    os.makedirs(args.out, exist_ok=True)
    info = {
        "bitsandbytes": getattr(bnb, "__version__", "?"),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "seed": SEED,
    }
    gen = torch.Generator().manual_seed(SEED)
    w = (torch.randn(ROWS, COLS, generator=gen, dtype=torch.float32) * 0.02).contiguous()

    cases = {
        "random_f32_nested": (w, 64, True),
        "random_f32_plain": (w, 64, False),
        "random_bf16_nested": (w.to(torch.bfloat16), 64, True),
        "random_bf16_plain": (w.to(torch.bfloat16), 64, False),
        "random_f32_b128_plain": (w, 128, False),
        "edge_f32_plain": (torch.from_numpy(edge_vector()), 64, False),
    }
    for name, (x, bs, nested) in cases.items():
        tensors, state = quantize_case(x, bs, nested)
        save_file(tensors, os.path.join(args.out, name + ".safetensors"), metadata={"format": "pt"})
        meta = dict(info, case=name, blocksize=bs, nested=nested, quant_state=state,
                    tensors={k: [str(v.dtype), list(v.shape)] for k, v in tensors.items()})
        with open(os.path.join(args.out, name + ".json"), "w") as f:
            json.dump(meta, f, indent=1)
        print(f"{name}: {', '.join(f'{k} {tuple(v.shape)}' for k, v in tensors.items())}")

    # 8-bit blockwise quantization with the dynamic map (what compress_statistics uses).
    code = F.create_dynamic_map().float()
    x = torch.from_numpy(dynamic_map_edge(code))
    q, st = F.quantize_blockwise(x.cuda(), code=code.cuda(), blocksize=256)
    tensors = {"input": x, "q": q.cpu().contiguous(), "absmax": st.absmax.float().cpu().contiguous(),
               "dynamic_map": code.cpu().contiguous()}
    save_file(tensors, os.path.join(args.out, "blockwise8_edge.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(args.out, "blockwise8_edge.json"), "w") as f:
        json.dump(dict(info, case="blockwise8_edge", blocksize=256), f, indent=1)
    print(f"blockwise8_edge: {x.numel()} values")


if __name__ == "__main__":
    main()
