#!/usr/bin/env bash
# rivet-server's Memcached protocol vs Debian memcached, side by side, in the same run on the
# same machine.
#
#   crates/rivet-server/scripts/bench-memcached.sh OUTDIR
#
# Load generator: our own `mc_load` (crates/rivet-server/examples/mc_load.rs; std threads,
# blocking sockets, text protocol), one run per cell:
#   mc_load --port PORT --conns 50 --pipeline PIPE --op OP --value-bytes SIZE --keys K --seconds S
# Each connection sends PIPE requests (`set key:%012d 0 0 SIZE` / `get key:%012d`, keys uniformly
# random over K), reads and checks the PIPE replies, and repeats for S seconds; latency = time
# from sending the batch to the request's reply; exact p50/p99 over every request.
# For every row × value size (100, 1000 bytes) × pipeline depth (1, 16) it runs BENCH_RUNS
# (default 3) runs against each server, alternating A B A B A B, and reports the median rps, the
# median of the per-run p99 latencies, and the spread (min–max rps).
#   row            rivet-server (--memcached-port)     memcached 1.6 (Debian)
#   GET            default (durable)                   -U 0 -t 2 -m 1024
#   durable SET    default (fsync before the reply)    -U 0 -t 2 -m 1024 (memcached is never durable)
#   no-sync SET    --no-sync                           -U 0 -t 2 -m 1024
# memcached runs as `memcached -u nobody -l 127.0.0.1 -p PORT -U 0 -t 2 -m 1024`. It keeps items
# in memory only: it has no durability at all, so the durable SET row compares an fsynced write
# against a memory write, and the no-sync SET row is the like-for-like one (both acknowledge
# before any disk write; rivet still writes its file, memcached writes nothing).
# GET row: both servers are started once per value size and preloaded with every key
# key:000000000000 .. key:%012d(K-1) (`mc_load --preload --seconds 0`, every reply checked);
# curr_items (stats) is checked, and every GET of the runs must hit (misses are reported).
# K (BENCH_KEYS, default 100000) keeps 1000-byte items well inside memcached's -m 1024, so it
# evicts nothing. SET rows: a fresh server with an empty data directory for every run.
# A full run (12 cells × 6 runs × BENCH_SECONDS + start-ups and preloads) takes about 9 minutes
# with the defaults; run it on an otherwise idle machine (the client shares the CPUs).
#
# Every server gets a free port on 127.0.0.1 and a data directory under BENCH_DIR (default
# /work/bench-tmp), which must be on a real disk (not tmpfs) and outside the git checkout.
# Every server started is stopped on exit (trap EXIT); data directories are removed unless
# BENCH_KEEP=1.
#
# Environment:
#   BENCH_DIR        data directories (default /work/bench-tmp)
#   BENCH_SECONDS    seconds per run (default 5)
#   BENCH_RUNS       runs per server per cell (default 3)
#   BENCH_SIZES      value sizes in bytes (default "100 1000")
#   BENCH_PIPES      pipeline depths (default "1 16")
#   BENCH_ROWS       rows to run (default "get set_durable set_nosync")
#   BENCH_KEYS       key space, and the GET preload (default 100000)
#   BENCH_CONNS      connections (default 50)
#   BENCH_MC_THREADS memcached -t (default 2);  BENCH_MC_MEM  memcached -m in MB (default 1024)
#   BENCH_LABEL      a line printed at the top of the report (e.g. "TRIAL - not for publication")
#   BENCH_BUILD      1 (default) runs `cargo build --release -p rivet-server --examples` first
#   BENCH_TIMEOUT    seconds before one mc_load run is killed (default 120)
#   BENCH_KEEP       1 keeps the data directories
#   RIVET_BIN        rivet-server binary (default REPO/target/release/rivet-server)
#   MC_LOAD          load generator (default REPO/target/release/examples/mc_load)
#   MEMCACHED        memcached binary (default: from PATH)
#
# Output (OUTDIR): table.md (the report), raw.csv (one line per mc_load run, with the server's
# CPU time and file bytes written during the run), env.txt (machine, disk, date, commit, versions,
# load), raw/ (every mc_load output and server log).
set -euo pipefail

usage() {
    sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
    echo "(see the comment at the top of $0 for the rows, the method and the environment variables)"
    exit 2
}
[[ $# -eq 1 && ${1:-} != -* ]] || usage

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(git -C "$SCRIPT_DIR" rev-parse --show-toplevel)
OUT=$1
mkdir -p "$OUT/raw"
OUT=$(cd "$OUT" && pwd)

BENCH_DIR=${BENCH_DIR:-/work/bench-tmp}
BENCH_SECONDS=${BENCH_SECONDS:-5}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_SIZES=${BENCH_SIZES:-"100 1000"}
BENCH_PIPES=${BENCH_PIPES:-"1 16"}
BENCH_ROWS=${BENCH_ROWS:-"get set_durable set_nosync"}
BENCH_KEYS=${BENCH_KEYS:-100000}
BENCH_CONNS=${BENCH_CONNS:-50}
BENCH_MC_THREADS=${BENCH_MC_THREADS:-2}
BENCH_MC_MEM=${BENCH_MC_MEM:-1024}
BENCH_BUILD=${BENCH_BUILD:-1}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}
BENCH_KEEP=${BENCH_KEEP:-0}
RIVET_BIN=${RIVET_BIN:-$REPO/target/release/rivet-server}
MC_LOAD=${MC_LOAD:-$REPO/target/release/examples/mc_load}
MEMCACHED=${MEMCACHED:-$(command -v memcached || true)}

log() { printf '[bench-mc %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ -n $MEMCACHED && -x $MEMCACHED ]] || die "memcached is needed (apt-get install memcached)"
command -v python3 >/dev/null || die "python3 is needed"
id nobody >/dev/null 2>&1 || die "user nobody is needed (memcached -u nobody)"

# --- the data directory: a real disk, outside the checkout -------------------------------
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd -P)
case "$BENCH_DIR/" in "$(cd "$REPO" && pwd -P)/"*) die "BENCH_DIR ($BENCH_DIR) is inside the git checkout $REPO";; esac
FSTYPE=$(stat -f -c %T "$BENCH_DIR")
case $FSTYPE in tmpfs|ramfs) die "BENCH_DIR ($BENCH_DIR) is on $FSTYPE; durability numbers must hit a disk";; esac
RUN_DIR=$(mktemp -d "$BENCH_DIR/rivet-bench-mc.XXXXXX")

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

# mc_cmd PORT COMMAND: one Memcached text command; prints the reply up to END/VERSION/an error
mc_cmd() {
    python3 - "$1" "$2" <<'EOF' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(sys.argv[2].encode() + b"\r\n")
buf = b""
while not (buf.endswith(b"END\r\n") or buf.startswith(b"VERSION") and buf.endswith(b"\r\n")
           or b"ERROR" in buf and buf.endswith(b"\r\n")):
    d = s.recv(65536)
    if not d:
        break
    buf += d
sys.stdout.write(buf.decode(errors="replace"))
EOF
}
mc_stat() { mc_cmd "$1" stats | awk -v k="$2" '$1 == "STAT" && $2 == k {print $3}' | tr -d '\r'; }

# Anything that looked wrong (server crashes, errors, misses, timeouts) goes to OUT/issues.txt.
: >"$OUT/issues.txt"
note_issue() { printf '%s\n' "$*" >>"$OUT/issues.txt"; log "ISSUE: $*"; }
print_issues() {
    if [[ -s $OUT/issues.txt ]]; then
        echo "**Issues seen during the run:**"; echo
        sed 's/^/- /' "$OUT/issues.txt"
    else
        echo "No server crashes, error replies, misses, protocol errors or timeouts during the run."
    fi
}

# start_server KIND DIR [extra server args...]  -> sets SRV_PID, SRV_PORT (Memcached protocol), SRV_LOG
start_server() {
    local kind=$1 dir=$2; shift 2
    mkdir -p "$dir"
    SRV_LOG=$dir/server.log
    case $kind in
        rivet)
            "$RIVET_BIN" --port 0 --bind 127.0.0.1 --db "$dir/rivet.db" --memcached-port 0 "$@" >"$SRV_LOG" 2>&1 &
            SRV_PORT="" ;;
        memcached)
            SRV_PORT=$(free_port)
            "$MEMCACHED" -u nobody -l 127.0.0.1 -p "$SRV_PORT" -U 0 -t "$BENCH_MC_THREADS" -m "$BENCH_MC_MEM" \
                "$@" >"$SRV_LOG" 2>&1 & ;;
        *) die "unknown server kind $kind" ;;
    esac
    SRV_PID=$!
    SERVER_PIDS[$SRV_PID]=1
    local t0=$SECONDS
    while :; do
        if [[ -z $SRV_PORT ]]; then   # rivet logs the port it picked
            SRV_PORT=$(sed 's/\x1b\[[0-9;]*m//g' "$SRV_LOG" 2>/dev/null | grep -m1 'memcached protocol listening' \
                | grep -oE 'addr=127\.0\.0\.1:[0-9]+' | cut -d: -f2 || true)
        fi
        if [[ -n $SRV_PORT ]] && mc_cmd "$SRV_PORT" version | grep -q '^VERSION'; then break; fi
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            tail -20 "$SRV_LOG" >&2 || true
            die "$kind server exited at start-up (log: $SRV_LOG)"
        fi
        (( SECONDS - t0 < 120 )) || die "$kind server did not answer 'version' within 120 s"
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
# (OUTDIR itself, new results inside the checkout, does not count as a change)
GIT_DIRTY=$(git -C "$REPO" status --porcelain -- . ":(exclude)$OUT" | wc -l)
START_UTC=$(date -u +%Y-%m-%dT%H:%M:%SZ)
START_S=$SECONDS
LOAD_BEFORE=$(cat /proc/loadavg)
BUSY_BEFORE=$(busy_processes)

if [[ $BENCH_BUILD == 1 ]]; then
    log "cargo build --release -p rivet-server --examples"
    (cd "$REPO" && cargo build --release -p rivet-server --examples 2>&1 | tail -2 >&2)
fi
[[ -x $RIVET_BIN ]] || die "no rivet-server binary at $RIVET_BIN (cargo build --release -p rivet-server)"
[[ -x $MC_LOAD ]] || die "no mc_load at $MC_LOAD (cargo build --release -p rivet-server --examples)"
# Run private copies, so that a rebuild of target/release during the run changes nothing.
RIVET_BIN_SOURCE=$RIVET_BIN
RIVET_BIN_BUILT=$(date -u -r "$RIVET_BIN" +%Y-%m-%dT%H:%M:%SZ)
cp "$RIVET_BIN" "$RUN_DIR/rivet-server"
RIVET_BIN=$RUN_DIR/rivet-server
cp "$MC_LOAD" "$RUN_DIR/mc_load"
MC_LOAD=$RUN_DIR/mc_load

FLOOR_START="$(fsync_floor) µs"
log "fdatasync floor in $BENCH_DIR: $FLOOR_START; load average $LOAD_BEFORE"

write_env() {
    local floor_end=$1
    {
        echo "date (UTC):        $START_UTC (total $((SECONDS - START_S)) s)"
        echo "command:           $0 $OUT"
        local knobs; knobs=$(env | grep -E '^(BENCH|RIVET_BIN|MC_LOAD|MEMCACHED)' | sort | tr '\n' ' ' | sed 's/ $//' || true)
        echo "environment:       ${knobs:-(none set: the defaults)}"
        echo "git commit:        $GIT_COMMIT$( ((GIT_DIRTY > 0)) && echo " + $GIT_DIRTY uncommitted change(s) in the work tree")"
        echo "machine:           $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') — $(nproc) logical CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)$(v=$(systemd-detect-virt 2>/dev/null || true); [[ -n $v && $v != none ]] && echo " (virtual machine: $v)")"
        echo "disk / fs:         $(findmnt -no SOURCE,FSTYPE,OPTIONS --target "$BENCH_DIR" 2>/dev/null | tr -s ' ') (data in $BENCH_DIR; $(lsblk -dno ROTA "$(findmnt -no SOURCE --target "$BENCH_DIR")" 2>/dev/null | sed 's/ //g; s/^/lsblk ROTA=/'))"
        echo "fdatasync floor:   $FLOOR_START at the start, $floor_end at the end (median of 200 × 4 KiB pwrite + fdatasync in BENCH_DIR)"
        echo "load average:      before: $LOAD_BEFORE; after: $(cat /proc/loadavg)"
        echo "busy at start:     ${BUSY_BEFORE:-no other process above 5% CPU}"
        echo "rivet-server:      $("$RIVET_BIN" --version) ($RIVET_BIN_SOURCE copied at the start: sha256 $(sha256sum "$RIVET_BIN" | cut -c1-12), built $RIVET_BIN_BUILT)"
        echo "memcached:         $("$MEMCACHED" -V) ($MEMCACHED; $(dpkg-query -W -f='Debian package ${Package} ${Version}' memcached 2>/dev/null || echo 'not a Debian package'))"
        echo "memcached args:    -u nobody -l 127.0.0.1 -p PORT -U 0 -t $BENCH_MC_THREADS -m $BENCH_MC_MEM"
        echo "client:            mc_load (examples/mc_load.rs, sha256 $(sha256sum "$MC_LOAD" | cut -c1-12)) on the same machine: $BENCH_CONNS connections = $BENCH_CONNS threads, sharing the $(nproc) CPUs with the server"
        echo "rustc:             $(rustc --version 2>/dev/null || echo unknown)"
        echo
        echo "df -T $BENCH_DIR:"
        df -T "$BENCH_DIR"
    } >"$OUT/env.txt"
}

# ---------------------------------------------------------------------------------------------
# The matrix
# ---------------------------------------------------------------------------------------------
row_title() { case $1 in get) echo GET;; set_durable) echo "durable SET";; set_nosync) echo "no-sync SET";; *) die "unknown row $1";; esac; }
row_op()    { case $1 in get) echo get;; *) echo set;; esac; }
# row_args ROW rivet|memcached: the server's extra arguments for that row
row_args() {
    case $1/$2 in
        set_nosync/rivet) echo "--no-sync" ;;
        *) echo "" ;;
    esac
}

RAW=$OUT/raw.csv

# proc_stats PID: "cpu_ticks wchar write_bytes" (utime+stime from /proc/PID/stat; bytes passed to
# write-type calls and bytes sent to storage from /proc/PID/io)
proc_stats() {
    local cpu io
    cpu=$(awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0)
    io=$(awk '/^wchar:/ {c=$2} /^write_bytes:/ {w=$2} END {printf "%.0f %.0f", c+0, w+0}' "/proc/$1/io" 2>/dev/null || echo 0 0)
    echo "$cpu $io"
}
CLK_TCK=$(getconf CLK_TCK)

# run_cell ROW SIZE PIPE SERVER REP PORT PID: one mc_load run, appended to raw.csv
run_cell() {
    local row=$1 size=$2 pipe=$3 srv=$4 rep=$5 port=$6 pid=$7 what rc=0 line
    local c0 w0 b0 c1 w1 b1
    what="${row}_d${size}_P${pipe}_${srv}_run${rep}"
    read -r c0 w0 b0 <<<"$(proc_stats "$pid")"
    timeout "$BENCH_TIMEOUT" "$MC_LOAD" --port "$port" --conns "$BENCH_CONNS" --pipeline "$pipe" \
        --op "$(row_op "$row")" --value-bytes "$size" --keys "$BENCH_KEYS" --seconds "$BENCH_SECONDS" \
        >"$OUT/raw/$what.out" 2>"$OUT/raw/$what.err" || rc=$?
    read -r c1 w1 b1 <<<"$(proc_stats "$pid")"
    (( rc != 124 )) || note_issue "$what: mc_load timed out after $BENCH_TIMEOUT s"
    (( rc == 0 || rc == 124 )) || note_issue "$what: mc_load exited with status $rc: $(head -c 300 "$OUT/raw/$what.err" | tr '\n' ' ')"
    line=$(grep -E '^(get|set),' "$OUT/raw/$what.out" | head -1 || true)
    local cpu_s; cpu_s=$(python3 -c "print(f'{($c1 - $c0) / $CLK_TCK:.2f}')")
    if [[ -z $line ]]; then
        note_issue "$what: no result line from mc_load"
        echo "$row,$size,$pipe,$srv,$rep,,,,,,,,,,,$cpu_s,$((w1 - w0)),$((b1 - b0))" >>"$RAW"
        return 0
    fi
    echo "$row,$size,$pipe,$srv,$rep,$line,$cpu_s,$((w1 - w0)),$((b1 - b0))" >>"$RAW"
    local errors misses requests
    IFS=, read -r _ _ _ _ requests _ _ _ _ errors misses <<<"$line"
    (( errors == 0 )) || note_issue "$what: $errors error replies of $requests ($(head -2 "$OUT/raw/$what.err" | tr '\n' ' '))"
    (( misses == 0 )) || note_issue "$what: $misses misses of $requests GETs"
    log "$what: $(cut -d, -f7 <<<"$line") rps, p50 $(cut -d, -f8 <<<"$line") µs, p99 $(cut -d, -f9 <<<"$line") µs; server CPU $cpu_s s; errors $errors, misses $misses"
}

run_matrix() {
    echo "row,size,pipeline_depth,server,run,op,conns,pipeline,value_bytes,requests,seconds,rps,p50_us,p99_us,errors,misses,server_cpu_s,server_wchar,server_write_bytes" >"$RAW"
    local row size pipe rep srv
    for row in $BENCH_ROWS; do
        row_title "$row" >/dev/null
        for size in $BENCH_SIZES; do
            local -A PORT=() PID=() LOGF=()
            if [[ $row == get ]]; then
                for srv in rivet memcached; do
                    # shellcheck disable=SC2046
                    start_server $srv "$RUN_DIR/${row}_d${size}_$srv" $(row_args $row $srv)
                    PORT[$srv]=$SRV_PORT; PID[$srv]=$SRV_PID; LOGF[$srv]=$SRV_LOG
                    local what="${row}_d${size}_${srv}_preload" rc=0
                    timeout "$BENCH_TIMEOUT" "$MC_LOAD" --port "$SRV_PORT" --conns "$BENCH_CONNS" --op set \
                        --value-bytes "$size" --keys "$BENCH_KEYS" --preload --seconds 0 \
                        >"$OUT/raw/$what.out" 2>"$OUT/raw/$what.err" || rc=$?
                    (( rc == 0 )) || note_issue "$what: mc_load --preload exited with status $rc: $(head -c 300 "$OUT/raw/$what.err" | tr '\n' ' ')"
                    local items; items=$(mc_stat "$SRV_PORT" curr_items)
                    [[ $items == "$BENCH_KEYS" ]] || note_issue "$what: curr_items after the preload is '$items', expected $BENCH_KEYS"
                    log "$what: $(tr '\n' ' ' <"$OUT/raw/$what.err")curr_items $items"
                done
            fi
            for pipe in $BENCH_PIPES; do
                for rep in $(seq "$BENCH_RUNS"); do
                    for srv in rivet memcached; do
                        if [[ $row == get ]]; then
                            run_cell $row "$size" "$pipe" $srv "$rep" "${PORT[$srv]}" "${PID[$srv]}"
                        else
                            local d="$RUN_DIR/${row}_d${size}_P${pipe}_${srv}_run$rep"
                            # shellcheck disable=SC2046
                            start_server $srv "$d" $(row_args $row $srv)
                            run_cell $row "$size" "$pipe" $srv "$rep" "$SRV_PORT" "$SRV_PID"
                            stop_server "$SRV_PID" "${row}_d${size}_P${pipe}_${srv}_run$rep" "$SRV_LOG"
                            rm -rf "$d"
                        fi
                    done
                done
            done
            if [[ $row == get ]]; then
                for srv in rivet memcached; do
                    local items; items=$(mc_stat "${PORT[$srv]}" curr_items)
                    [[ $items == "$BENCH_KEYS" ]] || note_issue "${row}_d${size}_$srv: curr_items after the GET runs is '$items', expected $BENCH_KEYS"
                    stop_server "${PID[$srv]}" "${row}_d${size}_$srv" "${LOGF[$srv]}"
                done
                rm -rf "$RUN_DIR/${row}_d${size}_rivet" "$RUN_DIR/${row}_d${size}_memcached"
            fi
            unset PORT PID LOGF
        done
    done
}

report() {
    local floor_end=$1
    {
        echo "# rivet-server (Memcached protocol) vs memcached: $START_UTC"
        echo
        [[ -n ${BENCH_LABEL:-} ]] && { echo "**${BENCH_LABEL}**"; echo; }
        echo '```'
        sed -n '1,/^rustc:/p' "$OUT/env.txt"
        echo '```'
        echo
        echo "Each cell: \`mc_load --port PORT --conns $BENCH_CONNS --pipeline PIPE --op OP --value-bytes SIZE --keys $BENCH_KEYS --seconds $BENCH_SECONDS\`"
        echo "(text protocol; keys key:%012d uniformly random over $BENCH_KEYS; every reply checked),"
        echo "$BENCH_RUNS runs per server alternating rivet, memcached, rivet, memcached, …; median rps, median of the runs' p99,"
        echo "and the spread (min–max rps) of the runs. Ratio = rivet / memcached median rps (higher is better for rivet)."
        echo "p99 = time from sending a batch of PIPE requests to a request's reply (so at -P 16 it includes the batch)."
        echo "GET: both servers preloaded with all $BENCH_KEYS keys (every GET must hit; misses are counted). SET rows: a fresh"
        echo "server, empty data directory, for every run. rivet default = fsync before every reply (group commit);"
        echo "--no-sync skips the fsync. memcached keeps items in memory only (no durability in any row)."
        echo "CPU µs/op: server user+system CPU time during the run / requests (median over the runs); it shows where the"
        echo "server spends its time when the client (which shares the $(nproc) CPUs) leaves it some. file B/op: the server's"
        echo "/proc/PID/io wchar during the run / requests: bytes passed to write(2)/pwrite(2), i.e. data-file writes (socket"
        echo "replies go through send(2)/sendmsg(2) and are not counted); raw.csv also has write_bytes (bytes sent to storage)."
        echo
        python3 - "$RAW" <<'EOF'
import csv, sys, statistics
rows = list(csv.DictReader(open(sys.argv[1])))
titles = {"get": ("GET", "default (durable)"), "set_durable": ("durable SET", "default (fsync)"),
          "set_nosync": ("no-sync SET", "--no-sync")}
order = []
for r in rows:
    if r["row"] not in order:
        order.append(r["row"])
cells = {}
for r in rows:
    cells.setdefault((r["row"], int(r["size"]), int(r["pipeline_depth"])), {}).setdefault(r["server"], []).append(r)
def fmt(x, d=0):
    return "—" if x is None else f"{x:,.{d}f}"
def med(xs):
    return statistics.median(xs) if xs else None
print("| row | rivet config | value | -P | rivet rps (spread) | memcached rps (spread) | ratio | rivet p99 ms | memcached p99 ms | CPU µs/op rivet / memcached | file B/op rivet / memcached | errors / misses |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for key in sorted(cells, key=lambda k: (order.index(k[0]), k[1], k[2])):
    row, size, pipe = key
    name, cfg = titles.get(row, (row, ""))
    out, bad = {}, 0
    for srv in ("rivet", "memcached"):
        all_runs = cells[key].get(srv, [])
        rs = [r for r in all_runs if r["rps"]]
        rps = [float(r["rps"]) for r in rs]
        out[srv] = {
            "rps": med(rps), "lo": min(rps) if rps else None, "hi": max(rps) if rps else None,
            "p99": med([float(r["p99_us"]) / 1000 for r in rs]),
            "cpu": med([float(r["server_cpu_s"]) * 1e6 / int(r["requests"]) for r in rs if int(r["requests"])]),
            "wb": med([int(r["server_wchar"]) / int(r["requests"]) for r in rs if int(r["requests"])]),
            "failed": len(all_runs) - len(rs),
            "err": sum(int(r["errors"]) for r in rs), "miss": sum(int(r["misses"]) for r in rs),
        }
    a, b = out["rivet"], out["memcached"]
    ratio = a["rps"] / b["rps"] if a["rps"] and b["rps"] else None
    def cell(o):
        s = f"{fmt(o['rps'])} ({fmt(o['lo'])}–{fmt(o['hi'])})" if o["rps"] else "failed"
        if o["failed"]:
            s += f" [{o['failed']} failed run(s)]"
        return s
    em = f"{a['err']}+{b['err']} / {a['miss']}+{b['miss']}"
    print(f"| {name} | {cfg} | {size} B | {pipe} | {cell(a)} | {cell(b)} | "
          f"{'—' if ratio is None else f'{ratio:.2f}×'} | {fmt(a['p99'], 3)} | {fmt(b['p99'], 3)} | "
          f"{fmt(a['cpu'], 1)} / {fmt(b['cpu'], 1)} | {fmt(a['wb'])} / {fmt(b['wb'])} | {em} |")
EOF
        echo
        echo "(errors / misses: rivet+memcached totals over the runs of the cell.)"
        echo
        print_issues
        echo
        echo "Raw data: \`raw.csv\` (one line per run), \`env.txt\`; \`raw/\` (mc_load outputs, server logs) is not kept in git."
    } >"$OUT/table.md"
}

run_matrix
FLOOR_END="$(fsync_floor) µs"
write_env "$FLOOR_END"
report "$FLOOR_END"
log "done in $((SECONDS - START_S)) s: $OUT/table.md"
cat "$OUT/table.md"
