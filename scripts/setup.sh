#!/usr/bin/env bash
# Set up everything `make demo` and `make test` need, idempotently:
#  1. the system libraries Open3D needs (Debian/Ubuntu, when missing and we may install them), and with
#     --test also what the viewer/report tests drive: Xvfb, xdotool, ImageMagick and Chromium;
#  2. a virtual environment in .venv with CPU PyTorch pinned, and shapelatent installed editable
#     with its [dev] and [faiss] extras. Re-runs are cheap: a stamp records what was installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}
SYS_PKGS="libusb-1.0-0 libgl1 libegl1 libvulkan1 mesa-vulkan-drivers libgomp1"
TEST_PKGS="xvfb xdotool imagemagick chromium"
WANT_TEST=0
[ "${1:-}" = "--test" ] && WANT_TEST=1

missing_libs() {
  local lib
  for lib in libusb-1.0.so.0 libGL.so.1 libEGL.so.1 libvulkan.so.1 libgomp.so.1; do
    ldconfig -p 2>/dev/null | grep -q "$lib" || echo "$lib"
  done
}

missing_tools() {
  [ "$WANT_TEST" = 1 ] || return 0
  command -v Xvfb >/dev/null 2>&1 || echo xvfb
  command -v xdotool >/dev/null 2>&1 || echo xdotool
  command -v import >/dev/null 2>&1 || echo imagemagick
  command -v chromium >/dev/null 2>&1 || echo chromium
}

need_libs="$(missing_libs)"
need_tools="$(missing_tools)"
if [ -n "$need_libs$need_tools" ]; then
  pkgs=""
  [ -n "$need_libs" ] && pkgs="$SYS_PKGS"
  pkgs="$pkgs $(echo $need_tools)"
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
    if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
      echo "setup: installing system packages: $pkgs"
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
    else
      echo "setup: WARNING missing system packages; install them: apt-get install $pkgs" >&2
    fi
  else
    echo "setup: WARNING missing $need_libs $need_tools and no apt-get; install them with your package manager" >&2
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
