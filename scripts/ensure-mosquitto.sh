#!/usr/bin/env bash
# Makes sure the mosquitto broker binary is available for the MQTT tests and prints its
# path on the last line. Installs the Debian package with apt-get when it is missing and
# installing is allowed: we are root (or have passwordless sudo), apt-get exists, and
# TANDEM_NO_APT is not set. Exits 3 with a reason on stderr when it cannot be had.
set -euo pipefail

find_broker() {
  for candidate in "$(command -v mosquitto 2>/dev/null || true)" /usr/sbin/mosquitto /usr/bin/mosquitto /usr/local/sbin/mosquitto; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then echo "$candidate"; return 0; fi
  done
  return 1
}

if broker="$(find_broker)"; then echo "$broker"; exit 0; fi

if [[ -n "${TANDEM_NO_APT:-}" ]]; then
  echo "mosquitto is not installed and TANDEM_NO_APT is set" >&2; exit 3
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "mosquitto is not installed and apt-get is not available (not Debian/Ubuntu)" >&2; exit 3
fi
SUDO=""
if [[ "$(id -u)" != "0" ]]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "mosquitto is not installed and installing it needs root" >&2; exit 3
  fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "installing mosquitto with apt-get" >&2
if ! $SUDO apt-get update -qq >&2; then echo "apt-get update failed (no network?)" >&2; exit 3; fi
if ! $SUDO apt-get install -y -qq --no-install-recommends mosquitto >&2; then echo "apt-get install mosquitto failed" >&2; exit 3; fi
# The package enables a system service on port 1883; the tests start their own broker, so stop it.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true; fi
$SUDO service mosquitto stop >/dev/null 2>&1 || true

if broker="$(find_broker)"; then echo "$broker"; exit 0; fi
echo "mosquitto was installed but its binary was not found" >&2; exit 3
