# shellcheck shell=bash
# scripts/lib/deps.sh: install what the project's scripts need, and only that.
#
# Sourced by scripts/test, scripts/run and bench/*/run, e.g.
#   source "$(dirname "$0")/lib/deps.sh"
#
# Every machine (a developer's, CI's fresh clone) may start without what an
# earlier session installed by hand, so the scripts install what they use. They
# also run with no terminal (CI gives no stdin), hence noninteractive apt.

# Prints a line on stderr prefixed with the calling script's name.
deps_log() {
    printf '%s: %s\n' "$(basename "${0:-deps}")" "$*" >&2
}

# True when the Debian package PKG is installed (not merely known or half-removed).
deps_installed() {
    local status
    status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
    [[ $status == "install ok installed" ]]
}

# `apt-get update` at most once per shell: a second call in the same script
# (ensure_apt used by two helpers) would cost seconds for nothing.
DEPS_APT_UPDATED=${DEPS_APT_UPDATED:-0}

# ensure_apt PKG...: installs the packages of the list that are missing.
# Does nothing (and touches no network) when all are installed.
ensure_apt() {
    local missing=() pkg
    for pkg in "$@"; do
        deps_installed "$pkg" || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0

    if ((EUID != 0)); then
        deps_log "missing Debian packages: ${missing[*]} (run as root, or install them)"
        return 1
    fi
    deps_log "installing Debian packages: ${missing[*]}"
    # The package lists of a fresh machine may be empty or stale: refresh them once.
    if ((DEPS_APT_UPDATED == 0)); then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
        DEPS_APT_UPDATED=1
    fi
    # --no-install-recommends: e.g. supervisor would otherwise pull in extras we
    # never use. No stdin, no prompts: this must work under CI with no terminal.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" </dev/null >/dev/null
}

# ensure_rust: the toolchain is part of the machine (rustup), never fetched here.
# Also sets LOCKED, to pass to cargo: --locked when the repo has a Cargo.lock, so
# builds use exactly the committed versions and a stale lock file fails loudly.
ensure_rust() {
    # shellcheck disable=SC2034  # LOCKED is used by the scripts that source this file
    if [[ -f Cargo.lock ]]; then LOCKED=(--locked); else LOCKED=(); fi
    # rustup installs into ~/.cargo/bin, which a non-login shell may not have on PATH.
    if ! command -v cargo >/dev/null 2>&1 && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
        PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
        export PATH
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        deps_log "error: cargo not found on PATH nor in ${CARGO_HOME:-$HOME/.cargo}/bin."
        deps_log "       This project needs the Rust toolchain (rustup, rust-version in Cargo.toml)."
        return 1
    fi
    local comp
    for comp in fmt clippy; do
        if ! cargo "$comp" --version >/dev/null 2>&1; then
            deps_log "error: 'cargo $comp' is missing: rustup component add ${comp/fmt/rustfmt}"
            return 1
        fi
    done
}
