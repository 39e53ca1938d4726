# shellcheck shell=bash
# Shared helpers for scripts/provision, scripts/vm-run and scripts/test. Source, don't run.

ENFORCER_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
# Everything the VM rig downloads or builds lives here (virtme-ng venv, kernels, run dirs).
ENFORCER_VM_STATE=${ENFORCER_VM_STATE:-/var/cache/enforcer-vm}
# virtme-ng release known to work with Debian's kernels and the udevd shim below.
ENFORCER_VNG_VERSION=${ENFORCER_VNG_VERSION:-1.42}
ENFORCER_VM_KERNELS=(bookworm trixie)

_ts() { date +%s.%N; }
_elapsed() { awk -v a="$1" -v b="$(_ts)" 'BEGIN { printf "%.1f", b - a }'; }

# The kernel package each VM flavour boots: the newest ABI the distribution's meta package
# points at. bookworm = Debian 12's 6.1; trixie = the 6.12 series (Debian 13's kernel, also
# shipped to Debian 12 as linux-image-6.12-amd64 through bookworm-security).
kernel_meta_package() {
    case "$1" in
        bookworm) echo linux-image-amd64 ;;
        trixie) echo linux-image-6.12-amd64 ;;
        *) return 1 ;;
    esac
}

kernel_dir() { echo "$ENFORCER_VM_STATE/kernels/$1"; }

# Path of the unpacked vmlinuz for a flavour, empty if not provisioned.
kernel_image() {
    local f
    for f in "$(kernel_dir "$1")"/root/boot/vmlinuz-*; do
        [ -f "$f" ] && { echo "$f"; return 0; }
    done
    return 1
}

vng_bin() { echo "$ENFORCER_VM_STATE/venv/bin/vng"; }

# True if python "$1" may be pip-installed into: a venv, or an interpreter that is not
# "externally managed" (PEP 668; Debian's /usr/bin/python3 is, pyenv's is not).
python_is_installable() {
    "$1" - <<'PY' 2>/dev/null
import os, sys, sysconfig
if sys.prefix != sys.base_prefix:
    sys.exit(0)
sys.exit(1 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 0)
PY
}

# The interpreter the test suite runs with (printed as an absolute path):
#   $ENFORCER_PYTHON, else the checkout's .venv, else python3 on PATH when it may be
#   installed into, else the checkout's .venv (scripts/provision creates it).
enforcer_python() {
    local py
    if [ -n "${ENFORCER_PYTHON:-}" ]; then
        py=$ENFORCER_PYTHON
    elif [ -x "$ENFORCER_REPO/.venv/bin/python3" ]; then
        py=$ENFORCER_REPO/.venv/bin/python3
    elif command -v python3 >/dev/null && python_is_installable python3; then
        py=python3
    else
        echo "$ENFORCER_REPO/.venv/bin/python3"
        return 0
    fi
    # Resolve pyenv shims and friends to the real interpreter so the VM runs the same one.
    "$py" -c 'import sys; print(sys.executable)' 2>/dev/null || echo "$py"
}
