#!/usr/bin/env bash
# Installs status: the binary, the systemd unit, the README (the unit's
# documentation) and an example environment file.
#
# Idempotent: run it again to upgrade the binary, the unit and the README; a
# running service is then restarted onto the new binary. The environment
# file holds secrets and is the operator's: it is created once (mode 0600,
# from scripts/status.env.example) and never overwritten.
#
#   cargo build --release && sudo scripts/install.sh
#
# Variables:
#   BINARY   the binary to install (default: target/release/status)
#   PREFIX   where the binary goes, under bin/ (default: /usr/local)
#   DESTDIR  a staging root to install into instead of / (packaging, tests);
#            systemctl is only called when installing into the real root, as root.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
BINARY="${BINARY:-$repo/target/release/status}"
PREFIX="${PREFIX:-/usr/local}"
DESTDIR="${DESTDIR:-}"

bin_dir="$DESTDIR$PREFIX/bin"
doc_dir="$DESTDIR$PREFIX/share/doc/status"
unit_dir="$DESTDIR/etc/systemd/system"
env_dir="$DESTDIR/etc/status"
env_file="$env_dir/status.env"

if [[ ! -x "$BINARY" ]]; then
    echo "install.sh: no binary at $BINARY; build it first (cargo build --release) or set BINARY" >&2
    exit 1
fi

install -d -m 0755 "$bin_dir" "$unit_dir" "$doc_dir"
install -m 0755 "$BINARY" "$bin_dir/status"
echo "installed $bin_dir/status"
install -m 0644 "$repo/README.md" "$doc_dir/README.md"
echo "installed $doc_dir/README.md"

# The unit names the binary and its documentation by their installed paths.
unit_tmp="$(mktemp)"
trap 'rm -f "$unit_tmp"' EXIT
sed -e "s|/usr/local/bin/status|$PREFIX/bin/status|g" \
    -e "s|/usr/local/share/doc/status/|$PREFIX/share/doc/status/|g" \
    "$repo/status.service" >"$unit_tmp"
install -m 0644 "$unit_tmp" "$unit_dir/status.service"
echo "installed $unit_dir/status.service"

install -d -m 0755 "$env_dir"
if [[ -e "$env_file" ]]; then
    echo "kept $env_file (never overwritten)"
    if [[ -n "$(find "$env_file" -perm /077)" ]]; then
        echo "install.sh: warning: $env_file is readable by others; it holds secrets: chmod 600 it" >&2
    fi
else
    install -m 0600 "$repo/scripts/status.env.example" "$env_file"
    echo "installed $env_file (mode 0600): set the hosts and secrets in it"
fi

# Only the real root, as root, with systemd running: a staged install touches no service.
if [[ -z "$DESTDIR" && "$EUID" -eq 0 ]] && command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl daemon-reload
    # Restarts the service only if it runs: an upgrade takes effect, a first install starts nothing.
    systemctl try-restart status.service
    echo "systemd reloaded and status restarted if it was running"
    echo "first install? after editing $env_file: systemctl enable --now status"
else
    echo "systemd left alone: run 'systemctl daemon-reload && systemctl try-restart status' to use the new binary and unit"
fi
