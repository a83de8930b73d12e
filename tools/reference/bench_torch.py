"""PyTorch's side of `npm run bench`: the same matmul shapes, CUDA events, median of repeats.

    python tools/reference/bench_torch.py --json out.json [--sizes 1024,2048,4096]

Timed as the engine's bench times (tools/bench/timing.ts): the GPU kept busy by back-to-back runs
for WARMUP_SECONDS first (the H200 lowers its clock between bursts: three warm-up runs with a sync
each read 4096^3 bf16 anywhere from 612 to 706 TFLOP/s in earlier calls), then the repeats queued
back to back, each between its own events, inputs rotated across copies larger than the L2.
"""
import argparse, json, statistics, time
import torch

WARMUP_SECONDS = 1.0

def bench(m, k, n, dtype, repeats, form="linear"):
    """form: linear = a (m x k) · b (n x k)ᵀ, F.linear's x·Wᵀ; matmul = a (m x k) · b (k x n)."""
    size = torch.finfo(dtype).bits // 8
    copies = max(2, min(8, (256 << 20) // ((m * k + k * n) * size)))
    a = [torch.randn(m, k, device="cuda", dtype=dtype) for _ in range(copies)]
    b = [torch.randn(n, k, device="cuda", dtype=dtype) if form == "linear" else torch.randn(k, n, device="cuda", dtype=dtype) for _ in range(copies)]
    run = (lambda i: torch.nn.functional.linear(a[i % copies], b[i % copies])) if form == "linear" else (lambda i: a[i % copies] @ b[i % copies])
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < WARMUP_SECONDS:
        for _ in range(20): run(i); i += 1
        torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
    for r, (s, e) in enumerate(events):
        s.record(); run(r); e.record()
    torch.cuda.synchronize()
    sec = statistics.median(s.elapsed_time(e) / 1e3 for s, e in events)
    return {"op": "matmul", "form": form, "shape": [m, k, n], "dtype": str(dtype).replace("torch.", ""), "ms": sec * 1e3, "tflops": 2 * m * k * n / sec / 1e12}

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--json", required=True)
    p.add_argument("--sizes", default="1024,2048,4096")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--training-shapes", action="store_true", help="also a·B at 4096^3 and the 8B lm_head's chunk (2048 x 4096 -> 8192) in both forms")
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, as in our f32 kernel
    results = [bench(int(n), int(n), int(n), dt, args.repeats) for dt in (torch.float32, torch.float16, torch.bfloat16) for n in args.sizes.split(",")]
    if args.training_shapes:
        for dt in (torch.float16, torch.bfloat16):
            results += [bench(4096, 4096, 4096, dt, args.repeats, "matmul"), bench(2048, 4096, 8192, dt, args.repeats), bench(2048, 8192, 4096, dt, args.repeats, "matmul")]
    for r in results: print(f"torch {r['form']} {'x'.join(map(str, r['shape']))} {r['dtype']}: {r['ms']:.3f} ms, {r['tflops']:.1f} TFLOP/s")
    json.dump({"torch": torch.__version__, "device": torch.cuda.get_device_name(), "results": results}, open(args.json, "w"), indent=2)
