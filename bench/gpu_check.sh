#!/usr/bin/env bash
# The device check, prepared so that a lent GPU machine is used at once (≤ 8 minutes in all):
#   1. the CUDA tests (pytest -m gpu: metrics on CUDA tensors equal their CPU values);
#   2. embeddings: bench/embeddings.py on the GPU, then on the CPU, side by side;
#   3. metrics: bench/metrics.py with CUDA tensors, then with numpy arrays, on the metrics that compute on
#      the device (each row's ratio is to the Gram matrix on the same device, timed in the same process);
#   4. the OTDD Sinkhorn: bench/sinkhorn.py, the log domain on the GPU against the scaling form on the CPU;
#   5. probes: bench/probes.py steps per second of each arm on the GPU, then on the CPU.
# Each part has its own time limit, writes its log to $OUT (the device tool brings that folder back) and a
# failing part does not stop the next; the exit status says whether every part passed.
#
# The device image holds PyTorch, numpy, scipy, scikit-learn, timm and transformers but not the service's
# other dependencies. Download them once here, as wheels for its Python 3.12, into the ignored .whl/:
#     bash bench/gpu_check.sh --wheels
# then run through the device tool with carry [".whl"] and the command `bash bench/gpu_check.sh`.
set -uo pipefail
cd "$(dirname "$0")/.."

# what the service imports that the image lacks, by name (no dependency resolution: the image's own torch,
# numpy, scipy, transformers, httpx, anyio, typer, rich, click and typing-extensions stay as they are).
# Left out to stay under the tool's 64 MiB: POT (33 MB; imported lazily by OTDD/OTCE, which are not timed
# here) and the packaged MiniLM (83 MB; the checks below use the zoo and timm's resnet18).
WHEELS=(sqlalchemy greenlet alembic mako fastapi starlette "pydantic>=2.7,<3" pydantic-core pydantic-settings
        python-dotenv annotated-types annotated-doc typing-inspection "psycopg>=3.1,<4" psycopg-binary
        python-multipart fastapi-offline "uvicorn>=0.30,<1")

if [[ "${1:-}" == "--wheels" ]]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}" || exit 1
  du -sh .whl
  exit 0
fi

OUT="${OUT:-$(mktemp -d)}"   # the device tool sets OUT; elsewhere a fresh temporary folder
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
  site="$(mktemp -d)"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl \
    || { echo "installing the carried wheels failed"; exit 2; }
  export PYTHONPATH="$site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"

nvidia-smi -L || true
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print('torch', torch.__version__, torch.cuda.get_device_name())" || exit 3

failed=0
part() {  # part NAME SECONDS COMMAND...: run one part with its limit, log to $OUT/NAME.log
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*"
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  [[ $rc -eq 0 ]] || { echo "== $name failed (exit $rc)"; failed=1; }
}

GPU_METRICS=(logme hscore hscore_shrinkage transrate sfda gbc leep frechet_distance mmd)
part cuda_tests 90 python3 -m pytest -q -p no:cacheprovider -m gpu tests/transferability/test_registry.py
part embed_gpu 75 python3 bench/embeddings.py --images 2000 --device cuda --resnet-size 224 --repeats 2
part embed_cpu 60 python3 bench/embeddings.py --images 2000 --device cpu --resnet-size 224 --repeats 1 --cold-repeats 1
part metrics_gpu 60 python3 bench/metrics.py --device cuda --only "${GPU_METRICS[@]}"
part metrics_cpu 75 python3 bench/metrics.py --device cpu --only "${GPU_METRICS[@]}"
part sinkhorn 30 python3 bench/sinkhorn.py --device cuda --problems 3 --repeats 1
part probes_gpu 45 python3 bench/probes.py --device cuda --skip-verdicts --threads 4
part probes_cpu 45 python3 bench/probes.py --device cpu --skip-verdicts --threads 4
exit $failed
