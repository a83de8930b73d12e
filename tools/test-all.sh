#!/usr/bin/env bash
# `npm test`: everything the suites need, then every suite. Used as is by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
node tools/ensure-deps.mjs
bash tools/setup-test-env.sh
# The Vulkan loader wants a writable runtime dir; CI machines may not set one.
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
npx tsc --noEmit -p tsconfig.json
npx vitest run --project unit
npx vite build
npx vitest run --project e2e
