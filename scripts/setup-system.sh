#!/usr/bin/env bash
# Installs the system packages Patchbay's tests and CLI need on Debian bookworm, when missing:
#   - Mesa lavapipe >= 25 (mesa-vulkan-drivers from bookworm-backports): the Vulkan device Dawn
#     (npm `webgpu`) runs on in Node. Bookworm's own Mesa 22 is refused by Dawn.
#   - Debian's chromium (/usr/bin/chromium): the browser the Playwright test drives; its WebGPU
#     runs on SwiftShader. `npx playwright install` is not used because it downloads from a CDN.
#   - then scripts/setup-python.sh: the git-ignored .venv/ (CPU PyTorch, transformers, safetensors,
#     jsonschema) in which the tests run exported Python scripts; no root needed for that part.
# Idempotent and silent when everything is present. Installs system packages only as root;
# otherwise prints the command to run and exits 1.
set -euo pipefail
HERE=$(dirname "$0")

MESA_MIN_MAJOR=25
CHROMIUM=/usr/bin/chromium

have_mesa() {
  local version major
  version=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null) || return 1
  # An installed-then-removed package still has a record; require the installed state.
  [[ $(dpkg-query -W -f='${db:Status-Status}' mesa-vulkan-drivers 2>/dev/null) == installed ]] || return 1
  major=${version%%.*}
  major=${major#*:} # drop an epoch, if any
  [[ $major =~ ^[0-9]+$ ]] && ((major >= MESA_MIN_MAJOR))
}

have_chromium() {
  [[ -x $CHROMIUM ]]
}

missing=()
have_mesa || missing+=("mesa-vulkan-drivers >= ${MESA_MIN_MAJOR} (bookworm-backports)")
have_chromium || missing+=("chromium ($CHROMIUM)")
((${#missing[@]} == 0)) && exec bash "$HERE/setup-python.sh"

if [[ $(id -u) -ne 0 ]]; then
  echo "patchbay setup: missing system packages: ${missing[*]}" >&2
  echo "run: sudo bash scripts/setup-system.sh" >&2
  exit 1
fi

echo "patchbay setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive

# True when some apt source already lists bookworm-backports.
backports_listed() {
  grep -rqsE '(^|[[:space:]])bookworm-backports([[:space:]]|$)' /etc/apt/sources.list /etc/apt/sources.list.d/
}

add_backports() {
  backports_listed && return 0
  local deb822=/etc/apt/sources.list.d/debian.sources
  if [[ -f $deb822 ]]; then
    # The stock deb822 file of Debian's images: extend its main Suites line in place.
    sed -i 's/^Suites: bookworm bookworm-updates$/& bookworm-backports/' "$deb822"
  fi
  if ! backports_listed; then
    # Classic sources.list, or a deb822 file laid out differently: a separate one-line source.
    echo 'deb http://deb.debian.org/debian bookworm-backports main' >/etc/apt/sources.list.d/bookworm-backports.list
  fi
}

updated=0
if ! have_mesa; then
  add_backports
  apt-get update
  updated=1
  apt-get install -y -t bookworm-backports mesa-vulkan-drivers
fi
if ! have_chromium; then
  ((updated)) || apt-get update # reuse the index fetched above when there was one
  apt-get install -y chromium
fi

have_mesa || { echo "patchbay setup: mesa-vulkan-drivers is still older than ${MESA_MIN_MAJOR}" >&2; exit 1; }
have_chromium || { echo "patchbay setup: $CHROMIUM is still missing" >&2; exit 1; }
echo "patchbay setup: system packages ready"
exec bash "$HERE/setup-python.sh"
