#!/usr/bin/env bash
# Shoal setup: idempotent. Installs the system prerequisites (nats-server, Mesa lavapipe Vulkan
# driver from bookworm-backports, Chromium for the dashboard's browser tests) when missing, then
# `npm ci` and the dashboard's bundle (`npm run build:ui`). Safe to run again.
set -euo pipefail

say() { printf '[setup] %s\n' "$*"; }
warn() { printf '[setup] WARNING: %s\n' "$*" >&2; }

cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

is_debian=0
codename=""
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  . /etc/os-release
  case "${ID:-}:${ID_LIKE:-}" in
    debian:*|*:*debian*) is_debian=1; codename="${VERSION_CODENAME:-}";;
  esac
fi

apt_updated=0
apt_update() {
  if [ "$apt_updated" -eq 0 ]; then
    say "apt-get update"
    $SUDO apt-get update -qq
    apt_updated=1
  fi
}

# --- nats-server -----------------------------------------------------------------------------
if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; then
  say "nats-server present: $( (command -v nats-server || echo /usr/sbin/nats-server) ) ($( (nats-server --version 2>/dev/null || /usr/sbin/nats-server --version) | head -1))"
elif [ "$is_debian" -eq 1 ]; then
  apt_update
  say "installing nats-server (Debian package)"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
  say "installed nats-server: $(/usr/sbin/nats-server --version)"
else
  warn "nats-server is missing and this is not Debian: install nats-server >= 2.9 yourself (https://nats.io) and put it on PATH, or set SHOAL_NATS_SERVER=/path/to/nats-server"
fi

# --- Mesa lavapipe (software Vulkan for WebGPU on machines without a GPU) -----------------------
# Debian 12's mesa-vulkan-drivers 22.3 is refused by Dawn; the bookworm-backports build (>= 24) works.
mesa_version() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true; }
mesa_ok() {
  local v; v=$(mesa_version)
  [ -n "$v" ] && dpkg --compare-versions "$v" ge 24
}
if [ "$is_debian" -eq 1 ]; then
  if mesa_ok; then
    say "mesa-vulkan-drivers present: $(mesa_version)"
  elif [ "$codename" = "bookworm" ]; then
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      say "adding bookworm-backports to apt sources"
      printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
      apt_updated=0
    fi
    apt_update
    say "installing mesa-vulkan-drivers from bookworm-backports (lavapipe for WebGPU)"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null
    say "installed mesa-vulkan-drivers $(mesa_version)"
  else
    apt_update
    say "installing mesa-vulkan-drivers"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers >/dev/null || true
    mesa_ok || warn "mesa-vulkan-drivers $(mesa_version) is older than 24: WebGPU will fall back to the CPU backend"
  fi
else
  warn "not Debian: install a Vulkan driver (a GPU driver, or Mesa >= 24 lavapipe) for WebGPU; without one Shoal uses its CPU backend"
fi

# --- Chromium (the dashboard's browser tests drive it with playwright-core) ----------------------
# `npx playwright install` downloads its own browser, which offline machines cannot: Debian's is used.
if [ -x /usr/bin/chromium ]; then
  say "chromium present: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
elif [ "$is_debian" -eq 1 ]; then
  apt_update
  say "installing chromium (Debian package, for the dashboard's browser tests)"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || warn "chromium could not be installed: the browser tests will be skipped"
else
  warn "not Debian: install Chromium at /usr/bin/chromium to run the dashboard's browser tests (they are skipped without it)"
fi

# --- npm dependencies --------------------------------------------------------------------------
if [ -f package-lock.json ]; then
  lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ -f node_modules/.shoal-lock-sha256 ] && [ "$(cat node_modules/.shoal-lock-sha256)" = "$lock_sum" ]; then
    say "node_modules up to date with package-lock.json"
  else
    say "npm ci"
    npm ci --no-audit --no-fund
    echo "$lock_sum" > node_modules/.shoal-lock-sha256
  fi
else
  say "npm install (no lock file yet)"
  npm install --no-audit --no-fund
fi
# --- the dashboard's bundle (ui/ → ui/dist, served by the gateway at /ui) ------------------------
say "building the dashboard (npm run build:ui)"
npm run --silent build:ui
say "done"
