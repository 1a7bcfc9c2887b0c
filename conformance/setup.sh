#!/usr/bin/env bash
# Installs what the real-kernel conformance tests need and pre-downloads the two Debian kernels
# they boot (src/conformance/qemu.ts), into the same cache: $VHOSTSIM_CACHE_DIR, else
# ~/.cache/vhostsim. Idempotent: installs only what is missing, runs `apt-get update` only
# when apt cannot find something, downloads a kernel only when the newest of its series is not
# cached yet (and then drops the older ones of that series).
#
# It never fails CI: whatever it cannot do (no network, not root, no apt) it says, and it exits
# 0; the tests then report "skipped: <reason>".
#
# Packages: qemu-system-x86 (qemu-system-x86_64), busybox-static (the initramfs' /bin/busybox),
# xz-utils (6.12's .ko.xz modules, 6.1's XZ vmlinux), zstd (6.12's ZSTD vmlinux: without it,
# 6.12 boots its bzImage, ~0.7 s slower), gcc + libc6-dev (gcc -static for the probes).
# No cpio: qemu.ts writes the newc archive itself.
set -u

cache="${VHOSTSIM_CACHE_DIR:-}"
if [ -z "$cache" ]; then
  if [ -n "${HOME:-}" ]; then cache="$HOME/.cache/vhostsim"; else cache="${TMPDIR:-/tmp}/vhostsim-cache"; fi
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
problems=0

say() { echo "conformance/setup: $*"; }
problem() {
  say "could not $*"
  problems=$((problems + 1))
}

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n); else sudo=(unavailable); fi
fi
have_apt=1
command -v apt-get >/dev/null && command -v apt-cache >/dev/null || have_apt=0

updated=0
apt_update() {
  [ "$updated" -eq 1 ] && return 1
  updated=1
  if "${sudo[@]}" apt-get update -qq >"$log" 2>&1; then return 0; fi
  problem "apt-get update: $(tail -n 2 "$log" | tr '\n' ' ')"
  return 1
}

# --- packages ---------------------------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
installed busybox-static || missing+=(busybox-static)
command -v xz >/dev/null || missing+=(xz-utils)
command -v zstd >/dev/null || missing+=(zstd)
command -v gcc >/dev/null || missing+=(gcc)
installed libc6-dev || missing+=(libc6-dev)

if [ "${#missing[@]}" -eq 0 ]; then
  say "packages: all present"
elif [ "$have_apt" -eq 0 ]; then
  problem "install ${missing[*]}: no apt-get"
elif [ "${sudo[0]:-}" = unavailable ]; then
  problem "install ${missing[*]}: not root and no passwordless sudo"
else
  install() {
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" \
      >"$log" 2>&1
  }
  if install || { apt_update && install; }; then
    say "packages: installed ${missing[*]}"
  else
    problem "install ${missing[*]}: $(tail -n 2 "$log" | tr '\n' ' ')"
  fi
fi

# --- kernels ----------------------------------------------------------------------------------
# series name | apt-cache regex | ERE whose group 1 orders the packages (as SERIES in qemu.ts)
kernels=(
  'debian-6.1|^linux-image-6\.1\.0-[0-9]+-amd64$|^linux-image-6\.1\.0-([0-9]+)-amd64$'
  'debian-6.12|^linux-image-6\.12\.[0-9]+\+deb[0-9]+-amd64$|^linux-image-6\.12\.([0-9]+)\+deb[0-9]+-amd64$'
)

newest() { # $1: apt regex, $2: ERE -> newest package name, or nothing
  apt-cache search --names-only "$1" 2>/dev/null | awk '{print $1}' | grep -E "$2" |
    sed -E "s/$2/\\1 &/" | sort -n -r | head -n 1 | cut -d' ' -f2
}

cached() { # $1: package -> true if unpacked or downloaded
  [ -e "$cache/unpacked-v1/$1/release" ] && return 0
  compgen -G "$cache/debs/${1}_*.deb" >/dev/null
}

prune_older() { # $1: ERE of the series, $2: the package to keep
  local f name
  for f in "$cache"/debs/*.deb "$cache"/unpacked-v1/*; do
    [ -e "$f" ] || continue
    name=$(basename "$f")
    name=${name%%_*}
    if [[ "$name" =~ $1 ]] && [ "$name" != "$2" ]; then rm -rf "$f" && say "removed older $(basename "$f")"; fi
  done
}

if [ "$have_apt" -eq 0 ]; then
  problem "download the kernels: no apt-get"
else
  mkdir -p "$cache/debs" || problem "create $cache/debs"
  for k in "${kernels[@]}"; do
    IFS='|' read -r series regex ere <<<"$k"
    pkg=$(newest "$regex" "$ere")
    if [ -z "$pkg" ] && apt_update; then pkg=$(newest "$regex" "$ere"); fi
    if [ -z "$pkg" ]; then
      problem "find a package for $series (apt-cache search '$regex' found none)"
      continue
    fi
    if cached "$pkg"; then
      say "$series: $pkg already cached"
      continue
    fi
    tmp=$(mktemp -d "$cache/debs/.download-XXXXXX") || {
      problem "create a temp dir in $cache/debs"
      continue
    }
    opts=(-q -o Acquire::Retries=0 -o Acquire::http::Timeout=20)
    [ "$(id -u)" -eq 0 ] && opts+=(-o APT::Sandbox::User=root)
    if (cd "$tmp" && apt-get download "${opts[@]}" "$pkg" >"$log" 2>&1) && mv "$tmp"/*.deb "$cache/debs/"; then
      say "$series: downloaded $pkg into $cache/debs"
      prune_older "$ere" "$pkg"
    else
      problem "download $pkg: $(tail -n 2 "$log" | tr '\n' ' ')"
    fi
    rm -rf "$tmp"
  done
fi

if [ "$problems" -gt 0 ]; then
  say "$problems step(s) could not be done; the real-kernel tests will report why they are skipped"
fi
exit 0
