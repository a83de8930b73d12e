"""PyTorch's side of `npm run bench`: the same matmul shapes, CUDA events, median of repeats.

    python tools/reference/bench_torch.py --json out.json [--sizes 1024,2048,4096]
"""
import argparse, json, statistics
import torch

def bench(n, dtype, repeats):
    copies = max(2, min(8, (256 << 20) // (2 * n * n * torch.finfo(dtype).bits // 8)))
    a = [torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(copies)]
    b = [torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(copies)]
    times = []
    for i in range(-3, repeats):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); torch.nn.functional.linear(a[i % copies], b[i % copies]); e.record()
        torch.cuda.synchronize()
        if i >= 0: times.append(s.elapsed_time(e) / 1e3)
    sec = statistics.median(times)
    return {"op": "matmul", "shape": [n, n, n], "dtype": str(dtype).replace("torch.", ""), "ms": sec * 1e3, "tflops": 2 * n**3 / sec / 1e12}

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--json", required=True)
    p.add_argument("--sizes", default="1024,2048,4096")
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, as in our f32 kernel
    results = [bench(int(n), dt, args.repeats) for dt in (torch.float32, torch.float16, torch.bfloat16) for n in args.sizes.split(",")]
    for r in results: print(f"torch matmul {r['shape'][0]}^3 {r['dtype']}: {r['ms']:.3f} ms, {r['tflops']:.1f} TFLOP/s")
    json.dump({"torch": torch.__version__, "device": torch.cuda.get_device_name(), "results": results}, open(args.json, "w"), indent=2)
