#!/usr/bin/env bash
# Make a Docker engine answer on this host, for the docker backend and its tests:
# installs Debian's docker.io and debootstrap where they are missing (root, apt), starts dockerd
# where no engine answers, and waits for it. Idempotent; a running engine is left alone.
set -euo pipefail
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "engine-up: need root to apt-get install ${need[*]}" >&2; exit 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi
if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then echo "engine-up: no engine answers and starting dockerd needs root" >&2; exit 1; fi
  log="${TMPDIR:-/tmp}/dockerd.log"
  nohup dockerd >"$log" 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "engine-up: dockerd did not answer in 60 s; its log:" >&2; tail -20 "$log" >&2; exit 1; }
fi
docker version --format 'docker engine {{.Server.Version}} (API {{.Server.APIVersion}})'
