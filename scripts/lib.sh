# Shared by the scripts in this folder: quiet on success, loud on failure.

# Run a command with its output saved; show the output only when it fails.
quietly() {
    local log
    log=$(mktemp)
    if "$@" >"$log" 2>&1; then
        rm -f "$log"
    else
        local rc=$?
        echo "failed ($rc): $*" >&2
        cat "$log" >&2
        rm -f "$log"
        return "$rc"
    fi
}

say() {
    echo "scripts: $*" >&2
}

# Where slow downloads and builds are kept between runs on the same machine.
GUARD_CACHE=${GUARD_CACHE:-/var/cache/guard}
