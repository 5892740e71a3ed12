#!/usr/bin/env bash
# Set up a virtualenv with torch, mmcv (with compiled ops), mmseg and
# mmseg_ext. Idempotent: a second run on a ready machine only checks.
#
# Environment knobs:
#   VENV              virtualenv folder (default: .venv in the repo)
#   PYTHON            interpreter that creates the venv (default: python3)
#   TORCH_SPEC        torch to install when none is importable
#                     (default: "torch==2.14.1 torchvision==0.29.1")
#   PIP_FIND_LINKS    wheelhouse(s) pip searches first, e.g. one holding a
#                     prebuilt mmcv-2.1.0 wheel for your torch
#                     (../shared/wheels beside the repo is added to it
#                     where it exists)
#   MMSEG_EXT_CACHE   where built mmcv wheels are cached, outside the repo
#                     (default: ~/.cache/mmseg_ext)
#   MMCV_MAX_JOBS     parallel compile jobs when building mmcv (default: nproc)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
MMCV_VERSION=2.1.0
CACHE="${MMSEG_EXT_CACHE:-$HOME/.cache/mmseg_ext}"
if [ -d "$ROOT/../shared/wheels" ]; then
  SHARED_WHEELS="$(cd "$ROOT/../shared/wheels" && pwd)"
  case " ${PIP_FIND_LINKS:-} " in
    *" $SHARED_WHEELS "*) ;;
    *) export PIP_FIND_LINKS="$SHARED_WHEELS${PIP_FIND_LINKS:+ $PIP_FIND_LINKS}" ;;
  esac
fi

log() { printf '\033[1;34m[setup_env]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup_env] error:\033[0m %s\n' "$*" >&2; exit 1; }

# 1. virtualenv. If the interpreter creating it already has torch, the venv
#    sees the system site-packages so that torch is reused, never replaced.
if [ ! -x "$VENV/bin/python" ]; then
  if "$PYTHON" -c 'import torch' 2>/dev/null; then
    log "creating $VENV (reusing the torch of $PYTHON)"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

STAMP="$VENV/.mmseg_ext_setup"
WANT_STAMP="$(cat setup.py tools/setup_env.sh mmseg_ext/version.py | sha256sum | cut -c1-16)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT_STAMP" ] \
   && "$PY" -c 'import mmseg_ext' 2>/dev/null; then
  log "environment is ready ($VENV)"
  exit 0
fi

# 2. build tools: mmengine's and mmcv's setup import pkg_resources, which
#    setuptools 81 removed.
"$PY" -c 'import setuptools, sys; v = tuple(map(int, setuptools.__version__.split(".")[:2])); sys.exit(not ((77, 0) <= v < (81, 0)))' 2>/dev/null \
  || "${PIP[@]}" install -q "setuptools>=77,<81" wheel

# 3. torch, only when none is importable.
if "$PY" -c 'import torch' 2>/dev/null; then
  log "torch $("$PY" -c 'import torch; print(torch.__version__)') found; leaving it alone"
else
  log "installing $TORCH_SPEC"
  # shellcheck disable=SC2086
  "${PIP[@]}" install -q $TORCH_SPEC
fi
TORCH_VER="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
PY_TAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
WHEEL_DIR="$CACHE/wheels/torch-$TORCH_VER-$PY_TAG"

mmcv_ok() {
  "$PY" - <<PYEOF 2>/dev/null
import mmcv, mmcv.ops
assert mmcv.__version__ == '$MMCV_VERSION', mmcv.__version__
PYEOF
}

# 4. mmcv with compiled ops: cached wheel, else wheelhouse, else source build.
#    mmcv imports mmengine, so mmengine (and its dependencies) comes first.
"$PY" -c 'import mmengine' 2>/dev/null || "${PIP[@]}" install -q "mmengine>=0.10,<0.11"
if mmcv_ok; then
  log "mmcv $MMCV_VERSION with ops found"
else
  if compgen -G "$WHEEL_DIR/mmcv-$MMCV_VERSION-*.whl" >/dev/null; then
    log "installing mmcv from the cache $WHEEL_DIR"
    "${PIP[@]}" uninstall -q -y mmcv 2>/dev/null || true
    "${PIP[@]}" install -q "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl
  elif [ -n "${PIP_FIND_LINKS:-}" ] \
       && "${PIP[@]}" install -q --only-binary=mmcv "mmcv==$MMCV_VERSION" 2>/dev/null; then
    log "installed mmcv from the wheelhouse (PIP_FIND_LINKS=$PIP_FIND_LINKS)"
  fi
  if ! mmcv_ok; then
    if "$PY" -c 'import mmcv' 2>/dev/null; then
      log "the installed mmcv does not fit torch $TORCH_VER: $("$PY" -c 'import mmcv.ops' 2>&1 | tail -n 1)"
    fi
    log "building mmcv $MMCV_VERSION with ops from source (~25 min on 2 cores)"
    "${PIP[@]}" uninstall -q -y mmcv 2>/dev/null || true
    "${PIP[@]}" install -q ninja psutil
    BUILD="$(mktemp -d)"
    trap 'rm -rf "$BUILD"' EXIT
    "${PIP[@]}" download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-$MMCV_VERSION.tar.gz -C "$BUILD"
    # New torch headers (2.14 here) need C++20; mmcv 2.1.0 hard-codes C++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$BUILD/mmcv-$MMCV_VERSION/setup.py"
    mkdir -p "$WHEEL_DIR"
    MMCV_WITH_OPS=1 MAX_JOBS="${MMCV_MAX_JOBS:-$(nproc)}" \
      "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$WHEEL_DIR" "$BUILD/mmcv-$MMCV_VERSION"
    "${PIP[@]}" install -q "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl
    mmcv_ok || die "mmcv $MMCV_VERSION was built but 'import mmcv.ops' fails"
    log "cached the mmcv wheel in $WHEEL_DIR"
  fi
fi

# 5. mmengine, mmseg, mmseg_ext (editable) and the test extras. torch is not
#    a requirement of mmseg_ext, so pip keeps the installed one.
log "installing mmseg_ext and its requirements"
"${PIP[@]}" install -q --no-build-isolation -e ".[tests]"
"$PY" -c 'import mmseg_ext, mmseg, mmcv, torch; print(f"mmseg_ext {mmseg_ext.__version__} | mmseg {mmseg.__version__} | mmcv {mmcv.__version__} | torch {torch.__version__}")'
echo "$WANT_STAMP" > "$STAMP"
log "ready: activate with '. $VENV/bin/activate'"
