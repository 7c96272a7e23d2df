#!/usr/bin/env bash
# rivet-server vs Debian redis-server, side by side, in the same run on the same machine.
#
#   crates/rivet-server/scripts/bench.sh OUTDIR            # the main matrix (GET, durable SET, no-sync SET)
#   crates/rivet-server/scripts/bench.sh --memory OUTDIR   # 10M keys: RSS, file size, cold/warm GET
#   crates/rivet-server/scripts/bench.sh --scale OUTDIR    # collections of 10k and 10M members
#
# Main matrix: for every row × value size (3, 150 bytes) × pipeline depth (1, 16) it runs
#   redis-benchmark -h 127.0.0.1 -p PORT -c 50 -n N -r 1000000 -d SIZE -P PIPE -t TEST --csv
# BENCH_RUNS times (default 3) against each server, alternating A B A B A B, and reports the
# median rps and the median of the per-run p99 latencies. TEST is the row's own test (get for
# the GET row, set for the SET rows), so a cell's time is spent on what the row measures.
#   row            rivet-server                  redis-server 7                                     goal (rivet/redis rps)
#   GET            default (durable)             --save '' --appendonly no                          >= 1.0x
#   durable SET    default (fsync before ack)    --save '' --appendonly yes --appendfsync always    >= 1.5x
#   no-sync SET    --no-sync                     --save '' --appendonly no                          >= 0.8x
# GET row: both servers are started once per value size and preloaded with every key
# key:000000000000 .. key:000000999999 (redis-benchmark's -r 1000000 key space), so every GET
# hits; DBSIZE is checked. SET rows: a fresh server with an empty data directory for every run.
# N: unless BENCH_N is set, a probe run per cell (on both servers) picks N so the slower server
# runs about BENCH_SECONDS (default 8) seconds and the faster at least 2 s (capped at 15 s for the slower).
# A full run takes roughly 15-20 minutes on a 2-CPU machine; run it on an otherwise idle machine.
#
# Every server gets a free port on 127.0.0.1 and a data directory under BENCH_DIR (default
# /work/bench-tmp), which must be on a real disk (not tmpfs) and outside the git checkout.
# Every server started is stopped on exit (trap EXIT); data directories are removed unless
# BENCH_KEEP=1.
#
# Environment:
#   BENCH_DIR        data directories (default /work/bench-tmp)
#   BENCH_N          fixed N for every cell (skips the probes)
#   BENCH_SECONDS    target seconds for the slower server of a cell (default 8)
#   BENCH_RUNS       runs per server per cell (default 3)
#   BENCH_SIZES      value sizes (default "3 150");  BENCH_PIPES  pipeline depths (default "1 16")
#   BENCH_ROWS       rows to run (default "get set_durable set_nosync"); also TEST_durable and
#                    TEST_nosync for TEST in lpush lpop sadd hset zadd lrange_100 (the collection
#                    rows; ratios only, no goal)
#   BENCH_LABEL      a line printed at the top of the report (e.g. "TRIAL - not for publication")
#   BENCH_BUILD      1 (default) runs `cargo build --release -p rivet-server` first; 0 skips it
#   BENCH_KEYSPACE   -r key space and GET preload (default 1000000; smaller only for smoke tests)
#   BENCH_TIMEOUT    seconds before one redis-benchmark run is killed (default 300)
#   BENCH_KEEP       1 keeps the data directories
#   RIVET_BIN        rivet-server binary (default REPO/target/release/rivet-server)
#   REDIS_SERVER, REDIS_BENCHMARK, REDIS_CLI   (default: from PATH)
# Memory mode only:
#   BENCH_MEM_KEYS   keys to load (default 10000000)   BENCH_MEM_VALUE  value bytes (default 200)
#   BENCH_MEM_GETS   GETs per cold/warm run (default 200000)
#   BENCH_MEM_MIN_FREE_GB  free space needed in BENCH_DIR, else skip (default 10)
#   BENCH_MEM_REDIS  1 (default) also loads the same keys into redis-server for a memory reference
# Scale mode only (one hash h, set s, list l and sorted set z of SIZE members %012d each, loaded
# by a --no-sync server through redis-cli --pipe, 1000 members per command; then per operation
# `redis-benchmark -c 50 -P 16 -n OPS -r SIZE --csv CMD...` with __rand_int__ = a random member,
# run twice (the first run warms the server's file mapping and is not reported);
# cost = 1e6 / rps µs of server time per operation; RssAnon and file size; then, at the largest
# size, the server is restarted in the default (durable) mode and DEL h s l z runs while GET and
# SET clients measure their latency until INFO's lazyfree_pending_objects is 0):
#   BENCH_SCALE_SIZES  collection sizes (default "10000 10000000")
#   BENCH_SCALE_OPS    operations per measurement (default 200000)
#
# Output (OUTDIR): table.md (the report), raw.csv (one line per redis-benchmark run),
# raw/ (every redis-benchmark output and server log), machine.md (machine, disk, commit, versions).
set -euo pipefail

usage() {
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    echo "(see the comment at the top of $0 for the environment variables)"
    exit 2
}

MODE=matrix
if [[ ${1:-} == --memory ]]; then MODE=memory; shift; fi
if [[ ${1:-} == --scale ]]; then MODE=scale; shift; fi
[[ $# -eq 1 && ${1:-} != -* ]] || usage

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(git -C "$SCRIPT_DIR" rev-parse --show-toplevel)
OUT=$1
mkdir -p "$OUT/raw"
OUT=$(cd "$OUT" && pwd)

BENCH_DIR=${BENCH_DIR:-/work/bench-tmp}
BENCH_SECONDS=${BENCH_SECONDS:-8}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_SIZES=${BENCH_SIZES:-"3 150"}
BENCH_PIPES=${BENCH_PIPES:-"1 16"}
BENCH_ROWS=${BENCH_ROWS:-"get set_durable set_nosync"}
BENCH_BUILD=${BENCH_BUILD:-1}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-300}
BENCH_KEEP=${BENCH_KEEP:-0}
RIVET_BIN=${RIVET_BIN:-$REPO/target/release/rivet-server}
REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || true)}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-$(command -v redis-benchmark || true)}
REDIS_CLI=${REDIS_CLI:-$(command -v redis-cli || true)}
KEYSPACE=${BENCH_KEYSPACE:-1000000}   # -r and the GET preload; override only for smoke tests
CLIENTS=50

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for b in "$REDIS_SERVER" "$REDIS_BENCHMARK" "$REDIS_CLI"; do
    [[ -n $b && -x $b ]] || die "redis-server, redis-benchmark and redis-cli are needed (apt-get install redis-server redis-tools)"
done
command -v python3 >/dev/null || die "python3 is needed"

# --- the data directory: a real disk, outside the checkout -------------------------------
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd -P)
case "$BENCH_DIR/" in "$(cd "$REPO" && pwd -P)/"*) die "BENCH_DIR ($BENCH_DIR) is inside the git checkout $REPO";; esac
FSTYPE=$(stat -f -c %T "$BENCH_DIR")
case $FSTYPE in tmpfs|ramfs) die "BENCH_DIR ($BENCH_DIR) is on $FSTYPE; durability numbers must hit a disk";; esac
RUN_DIR=$(mktemp -d "$BENCH_DIR/rivet-bench.XXXXXX")

# --- every server we start is stopped on exit ----------------------------------------------
declare -A SERVER_PIDS=()
cleanup() {
    local rc=$?
    for pid in "${!SERVER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${!SERVER_PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ $BENCH_KEEP != 1 ]]; then rm -rf "$RUN_DIR"; else log "data kept in $RUN_DIR"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Anything that looked wrong (server crashes, errors, timeouts) goes to OUT/issues.txt (a file,
# so that notes made in subshells are kept too).
: >"$OUT/issues.txt"
note_issue() { printf '%s\n' "$*" >>"$OUT/issues.txt"; log "ISSUE: $*"; }
print_issues() {
    if [[ -s $OUT/issues.txt ]]; then
        echo "**Issues seen during the run:**"; echo
        sed 's/^/- /' "$OUT/issues.txt"
    else
        echo "No server crashes, benchmark errors or timeouts during the run."
    fi
}

# start_server KIND DIR [extra server args...]  -> sets SRV_PID, SRV_PORT, SRV_LOG
start_server() {
    local kind=$1 dir=$2; shift 2
    mkdir -p "$dir"
    SRV_PORT=$(free_port)
    SRV_LOG=$dir/server.log
    case $kind in
        rivet) "$RIVET_BIN" --port "$SRV_PORT" --bind 127.0.0.1 --db "$dir/rivet.db" "$@" >"$SRV_LOG" 2>&1 & ;;
        redis) "$REDIS_SERVER" --port "$SRV_PORT" --bind 127.0.0.1 --dir "$dir" --daemonize no \
                   --logfile "$SRV_LOG" "$@" >/dev/null 2>&1 & ;;
        *) die "unknown server kind $kind" ;;
    esac
    SRV_PID=$!
    SERVER_PIDS[$SRV_PID]=1
    local t0=$SECONDS
    until [[ $("$REDIS_CLI" -h 127.0.0.1 -p "$SRV_PORT" ping 2>/dev/null) == PONG ]]; do
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            tail -20 "$SRV_LOG" >&2 || true
            die "$kind server exited at start-up (log: $SRV_LOG)"
        fi
        (( SECONDS - t0 < 120 )) || die "$kind server did not answer PING within 120 s"
        sleep 0.05
    done
}

# stop_server PID WHAT LOGFILE: SIGTERM, wait up to 60 s, then SIGKILL. Notes a server that
# had already died (a crash) and copies its log into OUT/raw.
stop_server() {
    local pid=$1 what=$2 logf=$3 rc=0
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || rc=$?
        note_issue "$what: server (pid $pid) had died before it was stopped (exit status $rc); log tail: $(tail -5 "$logf" 2>/dev/null | tr '\n' ' ')"
    else
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for i in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            note_issue "$what: server (pid $pid) still running 60 s after SIGTERM; killed"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || rc=$?
        (( rc == 0 || rc == 143 )) || note_issue "$what: server exited with status $rc after SIGTERM"
    fi
    unset "SERVER_PIDS[$pid]"
    cp "$logf" "$OUT/raw/$what.server.log" 2>/dev/null || true
    if grep -qiE 'panic|fatal|\berror\b' "$logf" 2>/dev/null; then
        note_issue "$what: server log has errors: $(grep -iE 'panic|fatal|\berror\b' "$logf" | head -3 | tr '\n' ' ')"
    fi
}

# gen_set COUNT SIZE: RESP SET commands for key:%012d (redis-benchmark's key names), 0..COUNT-1.
gen_set() {
    python3 - "$1" "$2" <<'EOF'
import sys
n, size = int(sys.argv[1]), int(sys.argv[2])
val = b"x" * size
out = sys.stdout.buffer
tail = b"\r\n$%d\r\n%s\r\n" % (size, val)
batch = []
for i in range(n):
    batch.append(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d" % i + tail)
    if len(batch) == 20000:
        out.write(b"".join(batch)); batch.clear()
out.write(b"".join(batch))
EOF
}

# preload PORT COUNT SIZE WHAT: every key through redis-cli --pipe; checks errors and DBSIZE.
preload() {
    local port=$1 count=$2 size=$3 what=$4 t0 t1 res
    t0=$(date +%s.%N)
    res=$(gen_set "$count" "$size" | "$REDIS_CLI" -h 127.0.0.1 -p "$port" --pipe --pipe-timeout 300 2>&1) \
        || note_issue "$what: redis-cli --pipe failed: $(tail -2 <<<"$res" | tr '\n' ' ')"
    t1=$(date +%s.%N)
    printf '%s\n' "$res" >"$OUT/raw/$what.preload.txt"
    grep -q 'errors: 0,' <<<"$res" || note_issue "$what: preload reported errors: $(tail -1 <<<"$res")"
    local n; n=$("$REDIS_CLI" -h 127.0.0.1 -p "$port" dbsize)
    [[ $n == "$count" ]] || note_issue "$what: DBSIZE after preload is $n, expected $count"
    log "$what: preloaded $count keys of $size bytes in $(python3 -c "print(f'{$t1-$t0:.1f}')") s (DBSIZE $n)"
}

# ---------------------------------------------------------------------------------------------
# Machine, disk, commit, versions
# ---------------------------------------------------------------------------------------------
fsync_floor() {   # median µs of 200 × (4 KiB pwrite + fdatasync) in BENCH_DIR
    python3 - "$RUN_DIR/fsync-probe" <<'EOF'
import os, sys, time, statistics
p = sys.argv[1]
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
buf = os.urandom(4096)
os.pwrite(fd, buf, 0); os.fdatasync(fd)
ts = []
for i in range(200):
    t = time.perf_counter(); os.pwrite(fd, buf, 0); os.fdatasync(fd); ts.append(time.perf_counter() - t)
os.close(fd); os.unlink(p)
print(f"{statistics.median(ts) * 1e6:.0f}")
EOF
}

busy_processes() {
    ps -eo pcpu=,pid=,comm= --sort=-pcpu | awk '$1 >= 5 {printf "%s%% %s (pid %s); ", $1, $3, $2}' | sed 's/; $//'
}

GIT_COMMIT=$(git -C "$REPO" rev-parse --short=12 HEAD)
GIT_DIRTY=$(git -C "$REPO" status --porcelain | wc -l)
START_UTC=$(date -u +%Y-%m-%dT%H:%M:%SZ)
START_S=$SECONDS
LOAD_BEFORE=$(cat /proc/loadavg)
BUSY_BEFORE=$(busy_processes)
COMMAND_LINE="$0 $OUT"
[[ $MODE == matrix ]] || COMMAND_LINE="$0 --$MODE $OUT"

if [[ $BENCH_BUILD == 1 ]]; then
    log "cargo build --release -p rivet-server"
    (cd "$REPO" && cargo build --release -p rivet-server 2>&1 | tail -2 >&2)
fi
[[ -x $RIVET_BIN ]] || die "no rivet-server binary at $RIVET_BIN (cargo build --release -p rivet-server)"
# Run a private copy, so that a rebuild of target/release during the run changes nothing.
RIVET_BIN_SOURCE=$RIVET_BIN
RIVET_BIN_BUILT=$(date -u -r "$RIVET_BIN" +%Y-%m-%dT%H:%M:%SZ)
cp "$RIVET_BIN" "$RUN_DIR/rivet-server"
RIVET_BIN=$RUN_DIR/rivet-server

write_machine() {
    local floor=$1
    {
        echo "| | |"
        echo "|---|---|"
        echo "| date (UTC) | $START_UTC (total $((SECONDS - START_S)) s) |"
        echo "| command | \`$COMMAND_LINE\` ($(env | grep -E '^(BENCH|RIVET_BIN|REDIS_)' | sort | tr '\n' ' ' | sed 's/ $//')) |"
        echo "| git commit | \`$GIT_COMMIT\`$( ((GIT_DIRTY > 0)) && echo " + $GIT_DIRTY uncommitted change(s) in the work tree") |"
        echo "| machine | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') — $(nproc) logical CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)$(v=$(systemd-detect-virt 2>/dev/null || true); [[ -n $v && $v != none ]] && echo " (virtual machine: $v)") |"
        echo "| disk / file system | \`$(findmnt -no SOURCE,FSTYPE,OPTIONS --target "$BENCH_DIR" 2>/dev/null | tr -s ' ')\` (data in \`$BENCH_DIR\`; $(lsblk -dno ROTA "$(findmnt -no SOURCE --target "$BENCH_DIR")" 2>/dev/null | sed 's/ //g; s/^/lsblk ROTA=/')) |"
        echo "| fdatasync floor | $floor (median of 200 × 4 KiB pwrite + fdatasync in BENCH_DIR) |"
        echo "| load average | before: \`$LOAD_BEFORE\`; after: \`$(cat /proc/loadavg)\` |"
        echo "| other busy processes at start | ${BUSY_BEFORE:-none above 5% CPU} |"
        echo "| versions | $("$RIVET_BIN" --version) (\`$RIVET_BIN_SOURCE\` copied at the start: sha256 $(sha256sum "$RIVET_BIN" | cut -c1-12), built $RIVET_BIN_BUILT); $("$REDIS_SERVER" --version | cut -d' ' -f1-3,5); $("$REDIS_BENCHMARK" --version 2>/dev/null | head -1 | sed 's/^/redis-benchmark /') |"
        echo "| client | redis-benchmark on the same machine (server and client share the $(nproc) CPUs), -c $CLIENTS, 127.0.0.1 |"
        echo
        echo '`df -T` of BENCH_DIR:'
        echo
        echo '```'
        df -T "$BENCH_DIR"
        echo '```'
    } >"$OUT/machine.md"
}

FLOOR_START="$(fsync_floor) µs"
log "fdatasync floor in $BENCH_DIR: $FLOOR_START; load average $LOAD_BEFORE"

# ---------------------------------------------------------------------------------------------
# Main matrix
# ---------------------------------------------------------------------------------------------
# Rows: get, and TEST_durable / TEST_nosync for TEST in set lpush lpop sadd hset zadd lrange_100
# (redis-benchmark's own tests: LPUSH/LPOP on one list, SADD/HSET/ZADD of -r random members
# into one collection, LRANGE_100 after redis-benchmark's own LPUSH prefill).
row_base()  { echo "${1%_durable}" | sed 's/_nosync$//'; }
row_title() {
    local t; t=$(row_base "$1" | tr a-z A-Z)
    case $1 in get) echo GET;; *_durable) echo "durable $t";; *_nosync) echo "no-sync $t";; esac
}
row_goal()  { case $1 in get) echo 1.0;; set_durable) echo 1.5;; set_nosync) echo 0.8;; *) echo "";; esac; }
# row_test ROW: the -t list (LPOP needs the LPUSH before it in the same run to pop anything)
row_test()  { case $(row_base "$1") in lpop) echo lpush,lpop;; *) row_base "$1";; esac; }
# row_result ROW: the result line to read
row_result() { row_base "$1"; }
# row_args ROW rivet|redis: the server's extra arguments for that row
row_args() {
    case $1/$2 in
        get/rivet|*_durable/rivet) echo "" ;;
        *_nosync/rivet) echo "--no-sync" ;;
        get/redis|*_nosync/redis) echo "--save '' --appendonly no" ;;
        *_durable/redis) echo "--save '' --appendonly yes --appendfsync always" ;;
    esac
}

RAW=$OUT/raw.csv

# bench_once WHAT PORT N SIZE PIPE TESTS [RESULT]: output kept in raw/WHAT.csv; the line of test
# RESULT (default: TESTS) without quotes in raw/WHAT.csv.line, absent on failure.
bench_once() {
    local what=$1 port=$2 n=$3 size=$4 pipe=$5 tests=$6 test=${7:-$6} f rc=0
    f=$OUT/raw/$what.csv
    timeout "$BENCH_TIMEOUT" "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$port" -c $CLIENTS -n "$n" -r $KEYSPACE \
        -d "$size" -P "$pipe" -t "$tests" --csv >"$f" 2>"$f.err" || rc=$?
    (( rc != 124 )) || note_issue "$what: redis-benchmark timed out after $BENCH_TIMEOUT s (N=$n)"
    (( rc == 0 || rc == 124 )) || note_issue "$what: redis-benchmark exited with status $rc: $(head -c 300 "$f.err" | tr '\n' ' ')"
    local line; line=$(grep -iE "^\"${test}( |\")" "$f" | head -1 || true)
    if [[ -z $line ]]; then
        note_issue "$what: no result line from redis-benchmark: $(head -c 300 "$f" "$f.err" | tr '\n' ' ')"
        return 0
    fi
    if grep -qiE 'error|refused|reset' "$f" "$f.err"; then
        note_issue "$what: redis-benchmark reported: $(grep -hiE 'error|refused|reset' "$f" "$f.err" | sort | uniq -c | head -3 | tr '\n' ' ')"
    fi
    tr -d '"' <<<"$line" >"$f.line"
}

# io_bytes PID: "write_bytes wchar" of /proc/PID/io: bytes the process caused to be sent to
# storage, and bytes it passed to write-type system calls (files and sockets)
io_bytes() { awk '/^write_bytes:/ {w=$2} /^wchar:/ {c=$2} END {printf "%.0f %.0f\n", w+0, c+0}' "/proc/$1/io" 2>/dev/null || echo 0 0; }

# run_cell ROW SIZE PIPE N SERVER REP PORT PID: one measured run, appended to raw.csv, with the
# bytes the server wrote to storage during the run (write_bytes of /proc/PID/io)
run_cell() {
    local row=$1 size=$2 pipe=$3 n=$4 srv=$5 rep=$6 port=$7 pid=$8 what t0 t1 line w0 w1 c0 c1
    what="${row}_d${size}_P${pipe}_${srv}_run${rep}"
    read -r w0 c0 <<<"$(io_bytes "$pid")"
    t0=$(date +%s.%N)
    bench_once "$what" "$port" "$n" "$size" "$pipe" "$(row_test "$row")" "$(row_result "$row")"
    t1=$(date +%s.%N)
    read -r w1 c1 <<<"$(io_bytes "$pid")"
    local wall; wall=$(python3 -c "print(f'{$t1-$t0:.2f}')")
    if [[ -f $OUT/raw/$what.csv.line ]]; then
        line=$(cat "$OUT/raw/$what.csv.line")
        echo "$row,$size,$pipe,$n,$srv,$rep,$line,$wall,$((w1 - w0)),$((c1 - c0))" >>"$RAW"
        log "$what: N=$n $(cut -d, -f2 <<<"$line") rps, p99 $(cut -d, -f7 <<<"$line") ms; per op: wchar $(( (c1 - c0) / n )) B, write_bytes $(( (w1 - w0) / n )) B"
    else
        echo "$row,$size,$pipe,$n,$srv,$rep,$(row_result "$row" | tr a-z A-Z),,,,,,,,$wall,$((w1 - w0)),$((c1 - c0))" >>"$RAW"
    fi
}

# probe ROW SIZE PIPE PORT SRV: a short run (for choosing N); sets PROBE_RPS (empty on failure)
probe() {
    local row=$1 size=$2 pipe=$3 port=$4 srv=$5 what
    what="probe_${row}_d${size}_P${pipe}_${srv}"
    bench_once "$what" "$port" $((20000 * pipe)) "$size" "$pipe" "$(row_test "$row")" "$(row_result "$row")"
    PROBE_RPS=$(cut -d, -f2 "$OUT/raw/$what.csv.line" 2>/dev/null || true)
}

choose_n() {  # choose_n RPS_A RPS_B
    python3 - "$1" "$2" "$BENCH_SECONDS" <<'EOF'
import sys, math
a, b, t = (float(x or 0) for x in sys.argv[1:4])
lo, hi = min(a, b), max(a, b)
if lo <= 0:
    lo = hi = max(hi, 1000.0)
n = max(lo * t, hi * 2)
n = min(n, lo * 15)
n = max(n, 1000)
d = 10 ** (len(str(int(n))) - 2)          # two significant digits
print(int(round(n / d) * d))
EOF
}

run_matrix() {
    echo "row,size,pipeline,n,server,run,test,rps,avg_latency_ms,min_latency_ms,p50_latency_ms,p95_latency_ms,p99_latency_ms,max_latency_ms,wall_s,server_write_bytes,server_wchar" >"$RAW"
    local row size pipe rep srv n rA rB
    for row in $BENCH_ROWS; do
        for size in $BENCH_SIZES; do
            local -A PORT=() PID=() LOGF=()
            if [[ $row == get ]]; then
                # rivet is loaded by a --no-sync server (only to save time: a durable pipelined
                # load is much slower), which is then stopped; the GETs go to a server started
                # in the default mode on that file.
                start_server rivet "$RUN_DIR/${row}_d${size}_rivet" --no-sync
                preload "$SRV_PORT" $KEYSPACE "$size" "${row}_d${size}_rivet_load"
                stop_server "$SRV_PID" "${row}_d${size}_rivet_load" "$SRV_LOG"
                mv "$SRV_LOG" "$SRV_LOG.load"
                for srv in rivet redis; do
                    eval "start_server $srv \"$RUN_DIR/${row}_d${size}_$srv\" $(row_args $row $srv)"
                    PORT[$srv]=$SRV_PORT; PID[$srv]=$SRV_PID; LOGF[$srv]=$SRV_LOG
                    if [[ $srv == redis ]]; then
                        preload "$SRV_PORT" $KEYSPACE "$size" "${row}_d${size}_$srv"
                    else
                        local nk; nk=$("$REDIS_CLI" -h 127.0.0.1 -p "$SRV_PORT" dbsize)
                        [[ $nk == "$KEYSPACE" ]] || note_issue "${row}_d${size}_rivet: DBSIZE after restart is $nk, expected $KEYSPACE"
                    fi
                done
            fi
            for pipe in $BENCH_PIPES; do
                if [[ -n ${BENCH_N:-} ]]; then
                    n=$BENCH_N
                else
                    if [[ $row == get ]]; then
                        probe $row "$size" "$pipe" "${PORT[rivet]}" rivet; rA=$PROBE_RPS
                        probe $row "$size" "$pipe" "${PORT[redis]}" redis; rB=$PROBE_RPS
                    else
                        for srv in rivet redis; do
                            eval "start_server $srv \"$RUN_DIR/probe_${row}_d${size}_P${pipe}_$srv\" $(row_args $row $srv)"
                            probe $row "$size" "$pipe" "$SRV_PORT" $srv
                            if [[ $srv == rivet ]]; then rA=$PROBE_RPS; else rB=$PROBE_RPS; fi
                            stop_server "$SRV_PID" "probe_${row}_d${size}_P${pipe}_$srv" "$SRV_LOG"
                            rm -rf "$RUN_DIR/probe_${row}_d${size}_P${pipe}_$srv"
                        done
                    fi
                    n=$(choose_n "$rA" "$rB")
                    log "$(row_title $row) d=$size P=$pipe: probe rivet ${rA:-?} rps, redis ${rB:-?} rps -> N=$n"
                fi
                for rep in $(seq "$BENCH_RUNS"); do
                    for srv in rivet redis; do
                        if [[ $row == get ]]; then
                            run_cell $row "$size" "$pipe" "$n" $srv "$rep" "${PORT[$srv]}" "${PID[$srv]}"
                        else
                            local d="$RUN_DIR/${row}_d${size}_P${pipe}_${srv}_run$rep"
                            eval "start_server $srv \"$d\" $(row_args $row $srv)"
                            run_cell $row "$size" "$pipe" "$n" $srv "$rep" "$SRV_PORT" "$SRV_PID"
                            stop_server "$SRV_PID" "${row}_d${size}_P${pipe}_${srv}_run$rep" "$SRV_LOG"
                            rm -rf "$d"
                        fi
                    done
                done
            done
            if [[ $row == get ]]; then
                for srv in rivet redis; do
                    if [[ $srv == rivet ]]; then
                        log "get d=$size rivet: $(grep -E '^(VmRSS|RssAnon|VmHWM)' /proc/${PID[rivet]}/status 2>/dev/null | tr -s ' \t' ' ' | tr '\n' ' '); file $(du -h --apparent-size "$RUN_DIR/get_d${size}_rivet/rivet.db" | cut -f1)"
                    fi
                    stop_server "${PID[$srv]}" "${row}_d${size}_$srv" "${LOGF[$srv]}"
                done
                rm -rf "$RUN_DIR/${row}_d${size}_rivet" "$RUN_DIR/${row}_d${size}_redis"
            fi
            unset PORT PID LOGF
        done
    done
}

report_matrix() {
    local floor_end=$1
    {
        echo "# rivet-server vs redis-server: $START_UTC"
        echo
        [[ -n ${BENCH_LABEL:-} ]] && { echo "**${BENCH_LABEL}**"; echo; }
        cat "$OUT/machine.md"
        echo
        echo "fdatasync floor: $FLOOR_START at the start, $floor_end at the end."
        echo
        echo "Each cell: \`redis-benchmark -h 127.0.0.1 -p PORT -c $CLIENTS -n N -r $KEYSPACE -d SIZE -P PIPE -t TEST --csv\`,"
        echo "$BENCH_RUNS runs per server alternating rivet, redis, rivet, redis, …; median rps, median of the runs' p99,"
        echo "and the spread (min–max rps) of the runs. Ratio = rivet / redis median rps (higher is better for rivet)."
        echo "GET: both servers preloaded with all $KEYSPACE keys (every GET hits). SET rows: a fresh server, empty data"
        echo "directory, for every run. rivet: default = fsync before every acknowledgement (group commit); --no-sync skips fsync."
        echo "GET preload: rivet's keys are written by a --no-sync server that is then restarted in the default mode (the"
        echo "GETs go to the default-mode server); redis is loaded directly. Preload: \`redis-cli --pipe\` of SET key:%012d."
        echo "written B/op: median over the runs of the server's /proc/PID/io wchar during the run / N: bytes it passed to"
        echo "write(2)-type calls per SET (data file or AOF, plus about 5 B of socket reply); raw.csv also has write_bytes."
        echo
        python3 - "$RAW" <<'EOF'
import csv, sys, statistics
rows = list(csv.DictReader(open(sys.argv[1])))
goals = {"get": 1.0, "set_durable": 1.5, "set_nosync": 0.8}
def title(row):
    if row == "get":
        return ("GET", "default", "--appendonly no", 1.0)
    base, mode = row.rsplit("_", 1)
    if mode == "durable":
        return (f"durable {base.upper()}", "default", "--appendonly yes --appendfsync always", goals.get(row))
    return (f"no-sync {base.upper()}", "--no-sync", "--appendonly no", goals.get(row))
order = []
for r in rows:
    if r["row"] not in order:
        order.append(r["row"])
cells = {}
for r in rows:
    cells.setdefault((r["row"], int(r["size"]), int(r["pipeline"]), int(r["n"])), {}).setdefault(r["server"], []).append(r)
def fmt(x, d=0):
    return "—" if x is None else (f"{x:,.{d}f}")
print("| row | rivet / redis config | value | -P | N | rivet rps (spread) | redis rps (spread) | ratio | goal | status | rivet p99 ms | redis p99 ms | written B/op rivet / redis |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
for key in sorted(cells, key=lambda k: (order.index(k[0]), k[1], k[2])):
    row, size, pipe, n = key
    name, rc, dc, goal = title(row)
    out = {}
    for srv in ("rivet", "redis"):
        rs = [r for r in cells[key].get(srv, []) if r["rps"]]
        rps = [float(r["rps"]) for r in rs]
        p99 = [float(r["p99_latency_ms"]) for r in rs]
        failed = len(cells[key].get(srv, [])) - len(rs)
        wb = [int(r["server_wchar"]) / n for r in rs if r.get("server_wchar")]
        out[srv] = (statistics.median(rps) if rps else None, min(rps) if rps else None,
                    max(rps) if rps else None, statistics.median(p99) if p99 else None, len(rs), failed,
                    statistics.median(wb) if wb else None)
    a, b = out["rivet"], out["redis"]
    ratio = a[0] / b[0] if a[0] and b[0] else None
    status = "—" if ratio is None or goal is None else ("met" if ratio >= goal else "**missed**")
    def cell(o):
        s = f"{fmt(o[0])} ({fmt(o[1])}–{fmt(o[2])})" if o[0] else "failed"
        if o[5]: s += f" [{o[5]} failed run(s)]"
        return s
    print(f"| {name} | {rc} / {dc} | {size} B | {pipe} | {n:,} | {cell(a)} | {cell(b)} | "
          f"{'—' if ratio is None else f'{ratio:.2f}×'} | {'—' if goal is None else f'≥ {goal}×'} | {status} | {fmt(a[3], 3)} | {fmt(b[3], 3)} | "
          f"{'—' if row == 'get' else fmt(a[6]) + ' / ' + fmt(b[6])} |")
EOF
        echo
        print_issues
        echo
        echo "Raw data: \`raw.csv\` (one line per run), \`raw/\` (redis-benchmark outputs, server logs)."
    } >"$OUT/table.md"
}

# ---------------------------------------------------------------------------------------------
# Memory mode
# ---------------------------------------------------------------------------------------------
proc_mem() {  # proc_mem PID -> "RssAnon X MiB, RssFile Y MiB, VmRSS Z MiB, VmHWM W MiB"
    awk '/^(RssAnon|RssFile|VmRSS|VmHWM):/ {printf "%s%s %.1f MiB", sep, $1, $2/1024; sep=", "}' "/proc/$1/status" | sed 's/://g'
}
rss_anon_kib() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }

run_memory() {
    local keys=${BENCH_MEM_KEYS:-10000000} vsize=${BENCH_MEM_VALUE:-200} gets=${BENCH_MEM_GETS:-200000}
    local need_gb=${BENCH_MEM_MIN_FREE_GB:-10} avail_gb
    avail_gb=$(df -P -B1G "$BENCH_DIR" | awk 'NR==2 {print $4}')
    local R=$OUT/memory.md
    if (( avail_gb < need_gb )); then
        log "only ${avail_gb} GB free in $BENCH_DIR (need $need_gb GB): memory benchmark skipped"
        MEM_TITLE="# rivet-server memory: skipped"
        echo "Memory benchmark skipped: only ${avail_gb} GB free in \`$BENCH_DIR\`, $need_gb GB needed." >"$R.body"
        return 0
    fi
    local dir=$RUN_DIR/memory_rivet lines=()
    add() { lines+=("$*"); log "$*"; }
    start_server rivet "$dir" --no-sync
    local pid=$SRV_PID port=$SRV_PORT t0 t1
    add "rivet-server started with --no-sync for the load (only to save time: a durable pipelined load is much slower); the server is then restarted in the default (durable) mode for the GETs and measured again"
    add "after start, empty: $(proc_mem $pid)"
    t0=$(date +%s.%N)
    local res
    res=$(gen_set "$keys" "$vsize" | "$REDIS_CLI" -h 127.0.0.1 -p "$port" --pipe --pipe-timeout 600 2>&1) || true
    t1=$(date +%s.%N)
    printf '%s\n' "$res" >"$OUT/raw/memory.preload.txt"
    grep -q 'errors: 0,' <<<"$res" || note_issue "memory load: $(tail -2 <<<"$res" | tr '\n' ' ')"
    local dbsize; dbsize=$("$REDIS_CLI" -h 127.0.0.1 -p "$port" dbsize)
    [[ $dbsize == "$keys" ]] || note_issue "memory load: DBSIZE is $dbsize, expected $keys"
    add "load: $keys keys key:000000000000.. of $vsize-byte values through \`redis-cli --pipe\` in $(python3 -c "print(f'{$t1-$t0:.1f}')") s; DBSIZE $dbsize"
    local anon_after_load; anon_after_load=$(rss_anon_kib $pid)
    add "after the load (--no-sync server): $(proc_mem $pid)"
    stop_server "$pid" memory_load_rivet "$SRV_LOG"
    add "data file: $(stat -c %s "$dir/rivet.db" | numfmt --to=iec-i --suffix=B) apparent, $(du -h "$dir/rivet.db" | cut -f1) on disk ($(stat -c %s "$dir/rivet.db") bytes); raw key+value bytes $(numfmt --to=iec-i --suffix=B $((keys * (16 + vsize))))"

    # Reopen in the default (durable) mode, cold.
    sync; echo 3 >/proc/sys/vm/drop_caches
    t0=$(date +%s.%N)
    start_server rivet "$dir"
    t1=$(date +%s.%N)
    pid=$SRV_PID; port=$SRV_PORT
    add "reopened in the default (durable) mode after dropping the page cache: answered PING after $(python3 -c "print(f'{$t1-$t0:.2f}')") s; $(proc_mem $pid)"
    local k=$((RANDOM * 32768 % keys)) v
    v=$("$REDIS_CLI" -h 127.0.0.1 -p "$port" strlen "$(printf 'key:%012d' $k)")
    [[ $v == "$vsize" ]] || note_issue "memory: STRLEN key:$(printf '%012d' $k) is $v, expected $vsize"
    sync; echo 3 >/proc/sys/vm/drop_caches
    [[ -x /usr/bin/fincore ]] && add "page cache before the cold run: $(fincore -nb -o RES "$dir/rivet.db" | numfmt --to=iec-i --suffix=B) of the file resident"
    local out
    for phase in cold warm; do
        bench_once "memory_get_$phase" "$port" "$gets" "$vsize" 1 get   # -r KEYSPACE = every loaded key
        out=$(awk -F, '{printf "%s rps, avg %s ms, p50 %s ms, p99 %s ms, max %s ms", $2, $3, $5, $7, $8}' "$OUT/raw/memory_get_$phase.csv.line" 2>/dev/null || echo failed)
        add "GET $phase: $out; $(proc_mem $pid)$([[ -x /usr/bin/fincore ]] && echo "; file resident after: $(fincore -nb -o RES "$dir/rivet.db" | numfmt --to=iec-i --suffix=B)")"
    done
    local anon_now; anon_now=$(rss_anon_kib $pid)
    stop_server "$pid" memory_rivet "$SRV_LOG"

    local redis_line=""
    if [[ ${BENCH_MEM_REDIS:-1} == 1 ]]; then
        start_server redis "$RUN_DIR/memory_redis" --save '' --appendonly no
        res=$(gen_set "$keys" "$vsize" | "$REDIS_CLI" -h 127.0.0.1 -p "$SRV_PORT" --pipe --pipe-timeout 600 2>&1) || true
        redis_line="redis-server (--save '' --appendonly no) with the same $("$REDIS_CLI" -h 127.0.0.1 -p "$SRV_PORT" dbsize) keys, for reference: $(proc_mem $SRV_PID); used_memory $("$REDIS_CLI" -h 127.0.0.1 -p "$SRV_PORT" info memory | awk -F: '/^used_memory_human/ {print $2}' | tr -d '\r')"
        add "$redis_line"
        stop_server "$SRV_PID" memory_redis "$SRV_LOG"
    fi

    local goal_kib=$((256 * 1024)) worst=$(( anon_after_load > anon_now ? anon_after_load : anon_now ))
    MEM_TITLE="# rivet-server memory: $keys keys × $vsize-byte values, $START_UTC"
    {
        echo "Goal: anonymous RSS (RssAnon from /proc/PID/status) under 256 MiB — largest seen: $((worst / 1024)) MiB: $( ((worst < goal_kib)) && echo met || echo '**missed**')."
        echo "GETs: \`redis-benchmark -c $CLIENTS -n $gets -r $keys -d $vsize -t get --csv\`; cold = right after \`sync; echo 3 > /proc/sys/vm/drop_caches\`, warm = the same run again."
        echo
        printf -- '- %s\n' "${lines[@]}"
        echo
        print_issues
    } >"$R.body"
}

# ---------------------------------------------------------------------------------------------
# Scale mode
# ---------------------------------------------------------------------------------------------
# gen_coll KIND COUNT: RESP commands filling one collection with members %012d (1000 per command)
gen_coll() {
    python3 - "$1" "$2" <<'EOF'
import sys
kind, n = sys.argv[1], int(sys.argv[2])
out = sys.stdout.buffer
def cmd(args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
buf = []
for start in range(0, n, 1000):
    ms = [b"%012d" % i for i in range(start, min(n, start + 1000))]
    if kind == "hash":
        args = [b"HSET", b"h"] + [x for m in ms for x in (m, b"v")]
    elif kind == "set":
        args = [b"SADD", b"s"] + ms
    elif kind == "list":
        args = [b"RPUSH", b"l"] + ms
    else:
        args = [b"ZADD", b"z"] + [x for m in ms for x in (b"%d" % int(m), m)]
    buf.append(cmd(args))
    if len(buf) >= 100:
        out.write(b"".join(buf)); buf.clear()
out.write(b"".join(buf))
EOF
}

# scale_op PORT SIZE OPS NAME CMD...: one measurement; prints "rps p50 p99" (empty on failure)
scale_op() {
    local port=$1 size=$2 ops=$3 name=$4; shift 4
    local f=$OUT/raw/scale_${size}_${name}.csv rc=0
    timeout "$BENCH_TIMEOUT" "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$port" -c $CLIENTS -P 16 -n "$ops" -r "$size" \
        --csv "$@" >"$f" 2>"$f.err" || rc=$?
    (( rc == 0 )) || note_issue "scale $size $name: redis-benchmark exited with status $rc"
    if grep -qiE 'error' "$f" "$f.err"; then
        note_issue "scale $size $name: redis-benchmark reported errors: $(grep -hi error "$f" "$f.err" | head -2 | tr '\n' ' ')"
    fi
    tail -1 "$f" | tr -d '"' | awk -F, '$2+0 > 0 {print $2, $5, $7}'
}

# latency_during PORT SECONDS TAG: GET and SET clients (-c 25 each, -P 1, 100-byte values,
# 100000 keys) for about SECONDS; prints "get_p99 get_max set_p99 set_max" in ms
latency_during() {
    local port=$1 secs=$2 tag=$3 t
    for t in get set; do
        timeout "$BENCH_TIMEOUT" "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$port" -c 25 -n $((secs * ${SCALE_RPS[$t]})) \
            -r 100000 -d 100 -t "$t" --csv >"$OUT/raw/delete_${tag}_$t.csv" 2>&1 &
    done
    wait
    for t in get set; do
        grep -i "^\"$t\"" "$OUT/raw/delete_${tag}_$t.csv" | tr -d '"' | awk -F, '{printf "%s %s ", $7, $8}'
    done
    echo
}

run_scale() {
    local sizes=${BENCH_SCALE_SIZES:-"10000 10000000"} ops=${BENCH_SCALE_OPS:-200000}
    local R=$OUT/scale.md.body size lines=() largest
    largest=$(tr ' ' '\n' <<<"$sizes" | sort -n | tail -1)
    add() { lines+=("$*"); log "$*"; }
    echo "size,op,rps,p50_ms,p99_ms" >"$OUT/scale.csv"
    for size in $sizes; do
        local dir=$RUN_DIR/scale_$size
        start_server rivet "$dir" --no-sync
        local pid=$SRV_PID port=$SRV_PORT kind t0 t1 res
        for kind in hash set list zset; do
            t0=$(date +%s.%N)
            res=$(gen_coll $kind "$size" | "$REDIS_CLI" -h 127.0.0.1 -p "$port" --pipe --pipe-timeout 900 2>&1) || true
            t1=$(date +%s.%N)
            grep -q 'errors: 0,' <<<"$res" || note_issue "scale $size: loading the $kind: $(tail -2 <<<"$res" | tr '\n' ' ')"
            add "size $size: loaded the $kind in $(python3 -c "print(f'{$t1-$t0:.1f}')") s"
        done
        local counts
        counts="HLEN $("$REDIS_CLI" -p "$port" hlen h), SCARD $("$REDIS_CLI" -p "$port" scard s), LLEN $("$REDIS_CLI" -p "$port" llen l), ZCARD $("$REDIS_CLI" -p "$port" zcard z)"
        add "size $size: $counts; after the load: $(proc_mem $pid); file $(du -h --apparent-size "$dir/rivet.db" | cut -f1)"
        local mid; mid=$(printf '%012d' $((size / 2)))
        local -a names=(HGET SISMEMBER "LINDEX 0" ZSCORE "ZRANGEBYSCORE … LIMIT 0 10" "ZREVRANK (middle)" HSET SADD LPUSH RPOP ZADD)
        local -a cmds=("HGET h __rand_int__" "SISMEMBER s __rand_int__" "LINDEX l 0" "ZSCORE z __rand_int__"
            "ZRANGEBYSCORE z __rand_int__ +inf LIMIT 0 10" "ZREVRANK z $mid" "HSET h __rand_int__ w"
            "SADD s __rand_int__" "LPUSH l x" "RPOP l" "ZADD z __rand_int__ __rand_int__")
        local i r tag
        for i in "${!names[@]}"; do
            tag=$(tr -c 'A-Za-z0-9\n' '_' <<<"${names[$i]}" | tr -s _)
            # A first run warms the server's mapping of the file (the load left most of it
            # unmapped in this process: first touches are page faults), then the measured run.
            # shellcheck disable=SC2086
            scale_op "$port" "$size" "$ops" "${tag}_warmup" ${cmds[$i]} >/dev/null
            # shellcheck disable=SC2086
            r=$(scale_op "$port" "$size" "$ops" "$tag" ${cmds[$i]})
            echo "$size,${names[$i]},${r// /,}" >>"$OUT/scale.csv"
            log "size $size ${names[$i]}: $r (rps p50 p99)"
        done
        add "size $size: after the operations: $(proc_mem $pid); file $(du -h --apparent-size "$dir/rivet.db" | cut -f1)"
        stop_server "$pid" "scale_$size" "$SRV_LOG"
        if [[ $size == "$largest" ]]; then
            t0=$(date +%s.%N)
            start_server rivet "$dir"
            t1=$(date +%s.%N)
            pid=$SRV_PID; port=$SRV_PORT
            add "size $size: the server restarted in the default (durable) mode answered PING after $(python3 -c "print(f'{$t1-$t0:.2f}')") s (it rebuilds the freelist by walking the file)"
            gen_set 100000 100 | "$REDIS_CLI" -h 127.0.0.1 -p "$port" --pipe >/dev/null 2>&1 || true
            declare -gA SCALE_RPS=([get]=20000 [set]=2000)
            local base during d0 d1 pending=1 waited=0 lat
            base=$(latency_during "$port" 10 baseline)
            add "delete test (server restarted in the default durable mode; 25 GET and 25 SET clients, -P 1): without a delete: GET p99 $(cut -d' ' -f1 <<<"$base") ms (max $(cut -d' ' -f2 <<<"$base")), SET p99 $(cut -d' ' -f3 <<<"$base") ms (max $(cut -d' ' -f4 <<<"$base"))"
            # Windows of about 5 s of GET and SET clients, from 2 s before the DEL until the
            # trash is empty; the report gives the worst window.
            rm -f "$RUN_DIR/freed"
            (
                w=0
                until [[ -f $RUN_DIR/freed ]]; do
                    w=$((w + 1))
                    latency_during "$port" 5 "during$w"
                done
            ) >"$RUN_DIR/during.txt" &
            lat=$!
            sleep 2
            d0=$(date +%s.%N)
            "$REDIS_CLI" -h 127.0.0.1 -p "$port" del h s l z >/dev/null
            d1=$(date +%s.%N)
            while (( pending > 0 && waited < 6000 )); do
                pending=$("$REDIS_CLI" -h 127.0.0.1 -p "$port" info memory | awk -F: '/^lazyfree_pending_objects/ {print $2+0}')
                sleep 0.1; waited=$((waited + 1))
            done
            t1=$(date +%s.%N)
            touch "$RUN_DIR/freed"
            wait "$lat" || true
            during=$(awk 'NF >= 4 {n++; for (i = 1; i <= 4; i++) if ($i + 0 > m[i]) m[i] = $i + 0}
                END {printf "%s %s %s %s %d", m[1], m[2], m[3], m[4], n}' "$RUN_DIR/during.txt")
            add "DEL h s l z ($size members each) answered in $(python3 -c "print(f'{($d1-$d0)*1000:.1f}')") ms; the writer then freed the entries for $(python3 -c "print(f'{$t1-$d1:.1f}')") s (until lazyfree_pending_objects was 0)"
            add "during the delete ($(cut -d' ' -f5 <<<"$during") windows of about 5 s from 2 s before the DEL until the trash was empty; the worst window): GET p99 $(cut -d' ' -f1 <<<"$during") ms (max $(cut -d' ' -f2 <<<"$during")), SET p99 $(cut -d' ' -f3 <<<"$during") ms (max $(cut -d' ' -f4 <<<"$during")); $(proc_mem $pid); file $(du -h --apparent-size "$dir/rivet.db" | cut -f1)"
            stop_server "$pid" "scale_${size}_delete" "$SRV_LOG"
        fi
        rm -rf "$dir"
    done
    {
        echo "Per-operation cost: \`redis-benchmark -c $CLIENTS -P 16 -n $ops -r SIZE --csv CMD\` against a --no-sync server holding the four collections (__rand_int__ = a random existing member), each run twice and the second run reported (the first warms the server's mapping of the file); µs/op = 1e6 / rps, the server time per operation with 16-deep pipelines from $CLIENTS clients."
        echo
        python3 - "$OUT/scale.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
sizes = sorted({int(r["size"]) for r in rows})
ops = []
for r in rows:
    if r["op"] not in ops:
        ops.append(r["op"])
cell = {(int(r["size"]), r["op"]): r for r in rows}
print("| operation | " + " | ".join(f"{s:,} members: µs/op (p99 ms)" for s in sizes) + (" | ratio largest / smallest |" if len(sizes) > 1 else ""))
print("|---|" + "---:|" * (len(sizes) + (1 if len(sizes) > 1 else 0)))
for op in ops:
    vals = []
    for s in sizes:
        r = cell.get((s, op))
        rps = float(r["rps"]) if r and r["rps"] else 0
        vals.append((1e6 / rps if rps else None, r["p99_ms"] if r else ""))
    line = "| " + op + " | " + " | ".join("failed" if v is None else f"{v:.2f} ({p})" for v, p in vals)
    if len(sizes) > 1:
        a, b = vals[0][0], vals[-1][0]
        line += " | " + ("—" if not a or not b else f"{b / a:.2f}×")
    print(line + " |")
EOF
        echo
        printf -- '- %s\n' "${lines[@]}"
        echo
        print_issues
    } >"$R"
}

if [[ $MODE == scale ]]; then
    run_scale
    write_machine "$FLOOR_START"
    {
        echo "# rivet-server collections at scale: $START_UTC"; echo
        [[ -n ${BENCH_LABEL:-} ]] && { echo "**${BENCH_LABEL}**"; echo; }
        cat "$OUT/machine.md"; echo
        cat "$OUT/scale.md.body"
    } >"$OUT/scale.md"
    rm -f "$OUT/scale.md.body"
    cat "$OUT/scale.md"
elif [[ $MODE == memory ]]; then
    KEYSPACE=${BENCH_MEM_KEYS:-10000000}   # GETs draw from every loaded key
    MEM_TITLE=""
    run_memory
    write_machine "$FLOOR_START"   # after the run: it holds the load average at the end
    {
        echo "$MEM_TITLE"; echo
        [[ -n ${BENCH_LABEL:-} ]] && { echo "**${BENCH_LABEL}**"; echo; }
        cat "$OUT/machine.md"; echo
        cat "$OUT/memory.md.body"
    } >"$OUT/memory.md"
    rm -f "$OUT/memory.md.body"
    cat "$OUT/memory.md"
else
    run_matrix
    FLOOR_END="$(fsync_floor) µs"
    write_machine "$FLOOR_START"
    report_matrix "$FLOOR_END"
    cat "$OUT/table.md"
fi
