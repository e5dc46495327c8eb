#!/usr/bin/env bash
# Creates the Python environment the tests use to run exported scripts and check specs against
# the JSON Schema: a git-ignored virtual environment at .venv/ with CPU PyTorch, transformers,
# safetensors and jsonschema. Python is for the tests and for exported scripts only; Patchbay
# never needs it at run time.
#
# Idempotent and silent when .venv/ already imports them. Where this machine has an offline pip
# mirror (/opt/pypi/simple, with the CPU torch wheel in /opt/wheels), it installs from there and
# ignores pip's own configuration (whose extra indexes offer a larger, non-CPU torch); otherwise
# pip uses its configured index. Tests find the interpreter at .venv/bin/python, or at
# $PATCHBAY_PYTHON when that is set.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
PACKAGES=(torch transformers safetensors jsonschema)
check() { "$VENV/bin/python" -c 'import torch, transformers, safetensors, jsonschema' >/dev/null 2>&1; }

[[ -x $VENV/bin/python ]] && check && exit 0

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -m venv --help >/dev/null 2>&1; then
  echo "patchbay setup: $PYTHON has no venv module (Debian: apt-get install python3-venv)" >&2
  exit 1
fi
echo "patchbay setup: creating $VENV (${PACKAGES[*]})"
"$PYTHON" -m venv "$VENV"

pip_args=(-q --disable-pip-version-check --no-input)
if [[ -z ${PIP_INDEX_URL:-} && -d /opt/pypi/simple ]]; then
  export PIP_CONFIG_FILE=/dev/null
  pip_args+=(--index-url file:///opt/pypi/simple)
  [[ -d /opt/wheels ]] && pip_args+=(--find-links /opt/wheels)
fi
# pip warns about the mirror's flat folders it cannot read as projects; only failures matter.
"$VENV/bin/pip" install "${pip_args[@]}" "${PACKAGES[@]}" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
check || { echo "patchbay setup: $VENV still cannot import ${PACKAGES[*]}" >&2; exit 1; }
echo "patchbay setup: $VENV ready"
