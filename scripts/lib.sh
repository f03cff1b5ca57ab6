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

# The script's usage: its header comment (the lines after #!, up to the first that is not one).
usage() {
    sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"
}

# answer_help ARGS: with -h or --help first, print the usage and end the script with 0, before
# it does anything else.
answer_help() {
    case ${1:-} in
        -h|--help) usage; exit 0 ;;
    esac
}

# usage_error MESSAGE: the message and the usage on stderr, exit 2.
usage_error() {
    echo "scripts/$(basename "$0"): $1" >&2
    usage >&2
    exit 2
}

# no_arguments ARGS: a script that takes none refuses any, naming it.
no_arguments() {
    [[ $# -eq 0 ]] || usage_error "takes no arguments, but was given [$1]"
}
