#!/usr/bin/env bash
# Fits y = w*x + b to data/points.csv by gradient descent, the way a training script would:
# prints progress, writes a loss curve and final metrics under results/.
set -euo pipefail

echo "host: $(hostname)  user: $(id -un)  dir: $PWD"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
else
  echo "gpu: no nvidia-smi on this machine"
fi

mkdir -p results
awk -F, -v epochs=200 -v rate=0.02 '
  NR > 1 { x[++n] = $1; y[n] = $2 }
  END {
    w = 0; b = 0
    print "epoch,loss" > "results/loss.csv"
    for (e = 1; e <= epochs; e++) {
      gw = 0; gb = 0; loss = 0
      for (i = 1; i <= n; i++) {
        err = w * x[i] + b - y[i]
        gw += 2 * err * x[i] / n; gb += 2 * err / n; loss += err * err / n
      }
      w -= rate * gw; b -= rate * gb
      printf "%d,%.6f\n", e, loss > "results/loss.csv"
      if (e % 50 == 0) printf "epoch %3d  loss %.4f  w %.3f  b %.3f\n", e, loss, w, b
    }
    printf "{\"epochs\": %d, \"loss\": %.6f, \"w\": %.4f, \"b\": %.4f}\n", epochs, loss, w, b > "results/metrics.json"
  }' data/points.csv

echo "wrote results/loss.csv and results/metrics.json"
