#!/usr/bin/env bash
# Installs etcd 3.4 (Debian package etcd-server) for the kv-bench side-by-side benchmark, when it
# is missing. Never fails: without etcd, kv-bench prints Concord-only figures and says so.
set -uo pipefail
if command -v etcd >/dev/null 2>&1; then
  echo "etcd present: $(etcd --version 2>/dev/null | head -n 1)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "etcd not installed and not root (no sudo): kv-bench will run Concord alone"; exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# The package's own service is not wanted: kv-bench starts etcd itself on free ports.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null && $SUDO chmod +x /usr/sbin/policy-rc.d
  CLEAN_POLICY=1
fi
$SUDO apt-get install -y -q etcd-server >/dev/null 2>&1 \
  || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q etcd-server >/dev/null 2>&1; }
[ "${CLEAN_POLICY:-0}" = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
if command -v etcd >/dev/null 2>&1; then
  echo "installed etcd: $(etcd --version 2>/dev/null | head -n 1)"
else
  echo "could not install etcd-server: kv-bench will run Concord alone"
fi
exit 0
