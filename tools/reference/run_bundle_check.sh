#!/usr/bin/env bash
# The demo run bundle (tests/fixtures/run-bundle/demo-tiny-llama-run-bundle, made by the studio's
# code in tools/reference/run_bundle_check.ts) run on two GPUs with torch, transformers, peft and
# accelerate, offline, the model read from public/demo/model. Three launches, from a copy of the
# bundle (train.py saves its adapter next to itself):
#   ddp     accelerate launch --config_file accelerate_config_ddp.yaml --num_processes 2 train.py --max-steps 3
#   resume  the same from the studio's adapter (step 3 of 6): steps 4 to 6
#   fsdp    accelerate_config_fsdp.yaml, 2 processes, no mixed precision, 3 steps
# Everything lands in OUT (default ./run-bundle-gpu): gpu-result.json (every step's loss, the
# versions, the hashes of the bundle's files), a log and a status per launch. Bring gpu-result.json back as
# tests/fixtures/run-bundle/gpu-result.json: tests/run-bundle-gpu.test.ts compares it with the
# studio's losses (studio.json).
#
#   bash tools/reference/run_bundle_check.sh [OUT]
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUNDLE=${BUNDLE:-$ROOT/tests/fixtures/run-bundle/demo-tiny-llama-run-bundle}
MODEL=${MODEL:-$ROOT/public/demo/model}
NPROC=${NPROC:-2}  # processes (GPUs); the fixture is made with 2
OUT=$(mkdir -p "${1:-run-bundle-gpu}" && cd "${1:-run-bundle-gpu}" && pwd)
[ -f "$BUNDLE/train.py" ] || { echo "No bundle at $BUNDLE: make it with RUN_BUNDLE_FIXTURE=write npx vitest run --project unit tests/run-bundle-gpu.test.ts" >&2; exit 2; }
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

WORK=$(mktemp -d)
cp -r "$BUNDLE" "$WORK/bundle"
cd "$WORK/bundle" || exit 2

LAUNCH=(accelerate launch)
command -v accelerate >/dev/null || LAUNCH=(python3 -m accelerate.commands.launch)

# name, then accelerate launch's arguments. OUT/name.status: the exit code and the tensors of the
# adapter train.py saved (their count and names).
launch() {
  local name=$1
  shift
  echo "== $name: accelerate launch $*" | tee "$OUT/$name.log"
  "${LAUNCH[@]}" "$@" >>"$OUT/$name.log" 2>&1
  local code=$?
  python3 - "$code" output/adapter_model.safetensors >"$OUT/$name.status" <<'PY'
import json, os, sys
from safetensors import safe_open
path = sys.argv[2]
names = sorted(safe_open(path, "pt").keys()) if os.path.exists(path) else []
print(json.dumps({"exit": int(sys.argv[1]), "adapter_tensors": len(names), "adapter_names": names}))
PY
  rm -rf output
}
launch ddp --config_file accelerate_config_ddp.yaml --num_processes "$NPROC" train.py --model "$MODEL" --max-steps 3
launch resume --config_file accelerate_config_ddp.yaml --num_processes "$NPROC" train.py --model "$MODEL" --resume-adapter
launch fsdp --config_file accelerate_config_fsdp.yaml --num_processes "$NPROC" --mixed_precision no train.py --model "$MODEL" --max-steps 3

python3 - "$OUT" "$BUNDLE" <<'PY'
import hashlib, json, os, subprocess, sys
out, bundle = sys.argv[1], sys.argv[2]

def version(name):
    try:
        return __import__(name).__version__
    except Exception as e:
        return "missing: %s" % e

files = {}
for d, _, names in os.walk(bundle):
    for n in names:
        p = os.path.join(d, n)
        files[os.path.relpath(p, bundle).replace(os.sep, "/")] = hashlib.sha256(open(p, "rb").read()).hexdigest()
runs = {}
for name in ("ddp", "resume", "fsdp"):
    lines = open(os.path.join(out, name + ".log"), encoding="utf-8", errors="replace").read().splitlines()
    records = []
    for line in lines:
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
    runs[name] = {
        "command": lines[0].split(": ", 1)[1] if lines else None,
        **json.load(open(os.path.join(out, name + ".status"))),
        "events": [r for r in records if "event" in r],
        "steps": [r for r in records if "step" in r and "event" not in r],
        "tail": lines[-15:],
    }
gpus = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout.split("\n")
result = {
    "gpus": [g for g in gpus if g],
    "versions": {n: version(n) for n in ("torch", "transformers", "peft", "accelerate")},
    "bundle_files": files,
    "runs": runs,
}
json.dump(result, open(os.path.join(out, "gpu-result.json"), "w"), indent=2)
for name, r in runs.items():
    print(name, "exit", r["exit"], "adapter tensors", r["adapter_tensors"], "losses", [round(s["loss"], 6) for s in r["steps"]])
PY
