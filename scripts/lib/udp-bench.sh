# Shared helpers of the benchmark scripts, UDP, HTTP and WebSocket (sourced, not run).
# Everything here talks to 127.0.0.1 only and every process started is stopped.

# A free UDP port on 127.0.0.1.
free_udp_port() {
    python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_udp_port PORT: waits up to 10 s until something listens on UDP PORT.
wait_udp_port() {
    local port="$1"
    for _ in $(seq 1 200); do
        if ss -Hlun "sport = :$port" | grep -q .; then
            return 0
        fi
        sleep 0.05
    done
    echo "nothing listens on udp port $port after 10 s" >&2
    return 1
}

# A free TCP port on 127.0.0.1.
free_tcp_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_tcp_port PORT: waits up to 10 s until something listens on TCP PORT.
wait_tcp_port() {
    local port="$1"
    for _ in $(seq 1 200); do
        if ss -Hltn "sport = :$port" | grep -q .; then
            return 0
        fi
        sleep 0.05
    done
    echo "nothing listens on tcp port $port after 10 s" >&2
    return 1
}

# CPU seconds (user + system) of process PID so far.
cpu_secs() {
    awk -v hz="$(getconf CLK_TCK)" '{
        sub(/^.*\) /, "");            # drop pid and (command name)
        split($0, f, " ");
        printf "%.3f\n", (f[12] + f[13]) / hz  # utime, stime
    }' "/proc/$1/stat"
}

# Peak and current resident memory of PID, in MB.
peak_rss_mb() {
    awk '/^VmHWM:/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"
}
current_rss_mb() {
    awk '/^VmRSS:/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"
}

# stop_process PID: SIGTERM, then SIGKILL after 5 s.
stop_process() {
    local pid="$1"
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# pinned CPUS CMD...: runs CMD under taskset when CPUS is not empty. It execs, so
# that `pinned ... &` leaves the command's own pid in $!.
pinned() {
    local cpus="$1"
    shift
    if [ -n "$cpus" ]; then
        exec taskset -c "$cpus" "$@"
    else
        exec "$@"
    fi
}

# json_field FILE KEY: a number from the load tester's --json summary.
json_field() {
    python3 -c 'import json, sys; v = json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"
}

# The directory cargo builds into, absolute.
release_dir() {
    local target_dir="${CARGO_TARGET_DIR:-target}"
    case "$target_dir" in
        /*) ;;
        *) target_dir="$repo_root/$target_dir" ;;
    esac
    echo "$target_dir/release"
}

# build_release [PACKAGE...]: builds the release binaries this script needs (by default
# tracker_udp and tracker_load_test) and sets $bin to where they are.
build_release() {
    local packages=("$@")
    if [ "${#packages[@]}" -eq 0 ]; then
        packages=(tracker_udp tracker_load_test)
    fi
    local args=()
    for package in "${packages[@]}"; do
        args+=(-p "$package")
    done
    cargo build --release --locked "${args[@]}"
    bin="$(release_dir)"
}

# merge_load_config SRC DST PORT DURATION WORKERS PID: writes to DST the load tester
# config SRC with server_address (127.0.0.1:PORT), run.duration_secs, run.workers and
# run.tracker_pid replaced, every other key kept.
merge_load_config() {
    python3 - "$@" <<'PY'
import sys, tomllib
src, dst, port, duration, workers, pid = sys.argv[1:]
with open(src, "rb") as f:
    config = tomllib.load(f)
config["server_address"] = f"127.0.0.1:{port}"
run = config.setdefault("run", {})
run.update({"duration_secs": int(duration), "workers": int(workers), "tracker_pid": int(pid)})
def value(v):
    if isinstance(v, bool): return "true" if v else "false"
    if isinstance(v, str): return '"' + v + '"'
    return repr(v)
with open(dst, "w") as out:
    for k, v in config.items():
        if not isinstance(v, dict): out.write(f"{k} = {value(v)}\n")
    for k, v in config.items():
        if isinstance(v, dict):
            out.write(f"[{k}]\n")
            for kk, vv in v.items(): out.write(f"{kk} = {value(vv)}\n")
PY
}

# one_core_tracker_toml PORT: the public-mode tracker_udp config of the one-core
# comparisons (compare-private.sh, ab-udp.sh): 127.0.0.1:PORT, one socket and one
# request worker, limits the load tester's one-address peers never reach.
one_core_tracker_toml() {
    local port="$1"
    cat <<TOML
log_level = "warn"
[network]
address = "127.0.0.1:$port"
[workers]
socket_workers = 1
request_workers = 1
[swarm]
# The load tester announces every peer from one loopback address.
max_peers_per_ip = 100000000
max_peers = 100000000
max_torrents = 100000000
[statistics]
interval_secs = 0
TOML
}

# install_aquatic CRATE...: installs the aquatic CRATEs, version 0.9.0, from crates.io
# into the git-ignored .local/aquatic (once each) and sets $aquatic_bin to their
# directory. Not --locked: the lock files of 0.9.0 pin crates that no longer build with
# current rustc (aquatic_udp's metrics 0.22.3, a newer borrow-check error).
install_aquatic() {
    local root="$repo_root/.local/aquatic"
    for crate in "$@"; do
        if [ ! -x "$root/bin/$crate" ]; then
            cargo install "$crate@0.9.0" --root "$root"
        fi
    done
    aquatic_bin="$root/bin"
}

# run_aquatic_udp_load PORT WARMUP DURATION LOAD_CPUS LOAD_WORKERS: runs
# aquatic_udp_load_test (from install_aquatic) against 127.0.0.1:PORT for WARMUP +
# DURATION seconds, summarizing the last DURATION, and samples the CPU time of the server
# whose pid is in $server_pid over the same window; prints "responses_per_sec
# cpu_secs". Its config and output go to $work.
run_aquatic_udp_load() {
    local port="$1" warmup="$2" duration="$3" load_cpus="$4" load_workers="$5"
    "$aquatic_bin/aquatic_udp_load_test" -p \
        | sed -e "s/^server_address = .*/server_address = \"127.0.0.1:$port\"/" \
              -e "s/^workers = .*/workers = $load_workers/" \
              -e "s/^duration = .*/duration = $((warmup + duration))/" \
              -e "s/^summarize_last = .*/summarize_last = $duration/" \
              -e "s/^extra_statistics = .*/extra_statistics = false/" > "$work/aquatic-load.toml"
    run_aquatic_load_sampled "$aquatic_bin/aquatic_udp_load_test" "$load_cpus" "$warmup" \
        "$duration"
}

# run_aquatic_load_sampled LOAD_BIN LOAD_CPUS WARMUP DURATION: runs one of aquatic's load
# testers with the config $work/aquatic-load.toml (its output to $work/load.log) and
# samples the CPU time of the server whose pid is in $server_pid from WARMUP seconds in
# for DURATION seconds; prints "responses_per_sec cpu_secs", the first from the tester's
# "Average responses per second" line.
run_aquatic_load_sampled() {
    local load_bin="$1" load_cpus="$2" warmup="$3" duration="$4"
    pinned "$load_cpus" "$load_bin" -c "$work/aquatic-load.toml" > "$work/load.log" 2>&1 &
    local load_pid=$!
    sleep "$warmup"
    local cpu0
    cpu0="$(cpu_secs "$server_pid")"
    sleep "$duration"
    local cpu1
    cpu1="$(cpu_secs "$server_pid")"
    wait "$load_pid"
    local rps
    rps="$(awk '/^Average responses per second:/ { print $5 }' "$work/load.log")"
    echo "$rps $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.3f", b - a }')"
}

# Makes the temporary directory $work and arranges that on exit the server whose pid
# is in $server_pid (if any) is stopped and $work removed.
start_work() {
    work="$(mktemp -d)"
    server_pid=""
    trap cleanup_work EXIT
}
cleanup_work() {
    if [ -n "$server_pid" ]; then
        stop_process "$server_pid"
    fi
    rm -rf "$work"
}

# make_test_certificate DIR: a self-signed RSA 2048 certificate for IP 127.0.0.1 in
# DIR/cert.pem, its key (PKCS #8) in DIR/key.pem. CA:FALSE: openssl marks a
# self-signed certificate as a CA by default, and rustls (webpki) refuses a CA
# certificate as the server's own (CaUsedAsEndEntity).
make_test_certificate() {
    local dir="$1"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" 2> "$dir/openssl.log" \
        || { cat "$dir/openssl.log" >&2; return 1; }
}

# set_load_tls FILE CA: rewrites the load tester config FILE with network.tls on and
# network.tls_ca_path set to CA (empty: not verified), every other key as it is.
set_load_tls() {
    python3 - "$1" "$2" <<'PY'
import sys, tomllib
path, ca = sys.argv[1:]
with open(path, "rb") as f:
    config = tomllib.load(f)
config.setdefault("network", {}).update({"tls": True, "tls_ca_path": ca})
def value(v):
    if isinstance(v, bool): return "true" if v else "false"
    if isinstance(v, str): return '"' + v + '"'
    return repr(v)
with open(path, "w") as out:
    for k, v in config.items():
        if not isinstance(v, dict): out.write(f"{k} = {value(v)}\n")
    for k, v in config.items():
        if isinstance(v, dict):
            out.write(f"[{k}]\n")
            for kk, vv in v.items(): out.write(f"{kk} = {value(vv)}\n")
PY
}
