#!/usr/bin/env bash
# The checks that need a GPU, in one run: the notebooks' `#| gpu` cells and the trainer benchmark on CUDA.
# Needs dacapo_nb importable (e.g. PYTHONPATH=.), nbdev on the PATH and a CUDA build of torch.
#     bash bench/gpu.sh [OUTDIR]     (figures go to bench/README.md, section "GPU")
set -o pipefail
out=${1:-.}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, os; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.is_available(), os.cpu_count(), 'CPUs')" | tee -a "$out/gpu.txt"
# the notebooks that hold `#| gpu` cells, run whole with the gpu flag (the cells skip themselves without CUDA)
files=$(grep -l '#| gpu' nbs/*.ipynb | xargs -n1 basename | paste -sd'|')
timeout 240 nbdev_test --path nbs --file_re "^($files)\$" --flags gpu --do_print --timing 2>&1 | tee "$out/nbdev_gpu.txt"
echo "nbdev_test exit ${PIPESTATUS[0]}" | tee -a "$out/nbdev_gpu.txt"
# the trainer against its in-memory limit on CUDA (the 3D bench of bench/train.py), data fetchers on most CPUs
fetchers=$(( $(nproc) > 4 ? $(nproc) - 2 : 2 ))
timeout 180 python3 bench/train.py --device cuda --skip-reference --fetchers $fetchers --iterations 20 --warmup 3 \
    --train-iterations 40 --train-warmup 5 --matmul-size 8192 2>&1 | tee "$out/train_gpu.txt"
