#!/usr/bin/env bash
# Set up everything `make demo` and `make test` need, idempotently:
#  1. the system libraries Open3D needs (Debian/Ubuntu, when missing and we may install them);
#  2. a virtual environment in .venv with CPU PyTorch pinned, and shapelatent installed editable
#     with its [dev] and [faiss] extras. Re-runs are cheap: a stamp records what was installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}
SYS_PKGS="libusb-1.0-0 libgl1 libegl1 libvulkan1 mesa-vulkan-drivers libgomp1"

missing_libs() {
  local lib
  for lib in libusb-1.0.so.0 libGL.so.1 libEGL.so.1 libvulkan.so.1 libgomp.so.1; do
    ldconfig -p 2>/dev/null | grep -q "$lib" || echo "$lib"
  done
}

if [ -n "$(missing_libs)" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
    if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
      echo "setup: installing system libraries for Open3D: $SYS_PKGS"
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $SYS_PKGS >/dev/null
    else
      echo "setup: WARNING missing $(missing_libs | tr '\n' ' '); install: apt-get install $SYS_PKGS" >&2
    fi
  else
    echo "setup: WARNING missing $(missing_libs | tr '\n' ' ') and no apt-get; install them with your package manager" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi

stamp=.venv/.shapelatent-installed
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1) $TORCH_PIN"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing $TORCH_PIN (CPU) and shapelatent[dev,faiss,keops] into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q "$TORCH_PIN"
  .venv/bin/python -m pip install -q -e ".[dev,faiss,keops]" "$TORCH_PIN"
  echo "$want" > "$stamp"
fi
