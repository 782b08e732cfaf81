#!/usr/bin/env bash
# One command for a GPU machine: install as the README's quick start says, then run the CUDA tests, the benchmark
# ladder at the previous system's scale and a tiny end-to-end `kedro run` with a resume, and write one JSON report
# (data/09_benchmarks/gpu_check_<UTC time>.json). Arguments go to `python -m htr_pipeline.gpu_check`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -e ".[test]"
.venv/bin/pip install -q --no-deps kraken==7.1.1
export KEDRO_DISABLE_TELEMETRY=true
exec .venv/bin/python -m htr_pipeline.gpu_check "$@"
