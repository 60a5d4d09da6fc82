#!/usr/bin/env bash
# Install and start what the libvirt/QEMU part of the test suite needs, on Debian 12 as root.
#
# Idempotent and fast when everything is already there: apt runs only when a package
# is missing, pip only when libvirt-python or pycdlib does not import, and the daemons are started
# (without systemd, with -d) only when they are not running. Ends by waiting until
# `virsh -c qemu:///system version` answers.
#
#   VENV=/path/to/venv bash scripts/install-libvirt.sh     (default: ./.venv, else python3)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$here/.venv}"
if [[ -x "$venv/bin/python" ]]; then py="$venv/bin/python"; else py="$(command -v python3)"; fi

log() { printf 'install-libvirt: %s\n' "$*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (it installs Debian packages and starts libvirtd)"; exit 1
fi

# Debian packages: the hypervisor, libvirt (daemon + headers for libvirt-python),
# what the `tiny` image is made of (a Debian kernel and busybox-static), and gpgv to
# verify cloud image checksum files (gnupg: the tests sign a fake release with it).
packages=(
    qemu-system-x86 qemu-utils
    libvirt-daemon-system libvirt-clients libvirt-dev pkg-config
    linux-image-amd64 busybox-static
    dnsmasq-base iproute2
    gpgv gnupg
)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # --no-install-recommends keeps it to what is needed (no firmware, no GUI bits).
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ubuntu-keyring ships /usr/share/keyrings/ubuntu-cloudimage-keyring.gpg, which verifies
# the Ubuntu cloud images' SHA256SUMS (images/cloud.toml). It is in Debian from trixie on
# and in bookworm-backports; on bookworm it comes from backports through a throwaway apt
# configuration, so the system's sources stay as they are. Only the cloud images need
# it: a failure here is a warning, and those downloads then say what is missing.
if ! dpkg-query -W -f='${Status}' ubuntu-keyring 2>/dev/null | grep -q '^install ok installed$'; then
    export DEBIAN_FRONTEND=noninteractive
    candidate="$(apt-cache policy ubuntu-keyring 2>/dev/null | awk '/Candidate:/ {print $2}')"
    if [[ -n "$candidate" && "$candidate" != "(none)" ]]; then
        log "installing ubuntu-keyring"
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends ubuntu-keyring >/dev/null \
            || log "WARNING: could not install ubuntu-keyring; Ubuntu cloud images will be refused"
    else
        log "installing ubuntu-keyring from bookworm-backports"
        scratch="$(mktemp -d)"
        mkdir -p "$scratch/parts" "$scratch/lists/partial" "$scratch/cache/archives/partial"
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            >"$scratch/parts/backports.sources"
        chmod -R a+rX "$scratch"  # apt downloads as _apt
        apt_tmp=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$scratch/parts"
                 -o "Dir::State::Lists=$scratch/lists" -o "Dir::Cache=$scratch/cache")
        if apt-get "${apt_tmp[@]}" update -qq && (cd "$scratch" && apt-get "${apt_tmp[@]}" download -qq ubuntu-keyring) \
            && apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$scratch"/ubuntu-keyring_*.deb >/dev/null; then
            :
        else
            log "WARNING: could not install ubuntu-keyring from bookworm-backports; Ubuntu cloud images will be refused"
        fi
        rm -rf "$scratch"
    fi
fi

# libvirt-python builds against libvirt-dev; pycdlib writes cloud-init seed ISOs.
if ! "$py" -c 'import libvirt, pycdlib' 2>/dev/null; then
    log "installing libvirt-python and pycdlib into $("$py" -c 'import sys; print(sys.prefix)')"
    "$py" -m pip install -q --disable-pip-version-check 'libvirt-python>=9.0' 'pycdlib>=1.14' 2>&1 \
        | grep -v '^WARNING: Location' || true
    "$py" -c 'import libvirt, pycdlib'
fi

# Daemons: no systemd here, so start them by hand when they are not running.
mkdir -p /run/libvirt /var/log/libvirt
if ! pgrep -x virtlogd >/dev/null; then
    log "starting virtlogd"; virtlogd -d
fi
if ! pgrep -x libvirtd >/dev/null; then
    log "starting libvirtd"; libvirtd -d
fi

for _ in $(seq 1 100); do
    if virsh -c qemu:///system version >/dev/null 2>&1; then
        log "libvirt ready: $(virsh -c qemu:///system version --daemon 2>/dev/null | tr '\n' ' ')"
        exit 0
    fi
    sleep 0.2
done
log "libvirtd did not answer on qemu:///system within 20 s; see /var/log/libvirt/libvirtd.log"
virsh -c qemu:///system version || true
exit 1
