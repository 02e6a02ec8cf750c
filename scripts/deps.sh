#!/usr/bin/env bash
# Installs, with apt-get, the Debian packages Switchboard builds and tests with, when they are
# missing: the C libraries of the media path (Opus, espeak-ng), PostgreSQL for the store's
# tests, SIPp (sip-tester) and baresip (baresip-core) as real SIP peers, and Chromium for the browser pages' tests
# (driven headless by playwright-core; it never downloads a browser of its own), and
# Prometheus, which scrapes a node's /metrics in the metrics tests, espeak-ng and sox, which
# speak the greetings and make the beeps answering-machine detection is tested on, and Kamailio
# (its dispatcher module ships in the base package), the SIP edge of the several-node test.
set -euo pipefail
packages=(libopus-dev libopusfile-dev libespeak-ng-dev pkg-config postgresql sip-tester baresip-core chromium prometheus espeak-ng sox kamailio)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: missing ${missing[*]}, and this is not a Debian system: install them by hand" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "deps: missing ${missing[*]}: run 'make deps' as root" >&2; exit 1; }
  sudo=(sudo)
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq || true
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
