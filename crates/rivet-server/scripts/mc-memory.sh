#!/usr/bin/env bash
# Memory of rivet-server's Memcached side vs Debian memcached holding the same items.
#
#   crates/rivet-server/scripts/mc-memory.sh OUTDIR
#
# Loads N items (key:%012d, V-byte values) into each server through one connection, in
# pipelined batches of 20,000 `set ... noreply` fenced by `mn`, then reads /proc/PID/status
# (RssAnon: the process's own memory; RssFile: file pages mapped, i.e. page cache that the
# kernel can drop) and, for rivet-server, the data file's size; checks a first and a last key
# and curr_items; stops both servers; runs `rivet check` on the file.
#   rivet-server --no-sync --memcached-port P      memcached -m 4096 -t 2 -U 0
# Environment: MEM_ITEMS (default 3000000), MEM_VALUE (default 200), BENCH_DIR (default
# /work/bench-tmp), RIVET_BIN, RIVET_CLI (default REPO/target/release/{rivet-server,rivet}).
set -euo pipefail
OUT=${1:?usage: mc-memory.sh OUTDIR}
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
N=${MEM_ITEMS:-3000000}
V=${MEM_VALUE:-200}
DIR=${BENCH_DIR:-/work/bench-tmp}/mc-memory.$$
RIVET_BIN=${RIVET_BIN:-$REPO/target/release/rivet-server}
RIVET_CLI=${RIVET_CLI:-$REPO/target/release/rivet}
mkdir -p "$OUT" "$DIR"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
load() { # PORT -> prints "loaded N in S s"
python3 - "$1" "$N" "$V" <<'PY'
import socket, sys, time
port, n, vb = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for _ in range(100):
    try:
        s = socket.create_connection(("127.0.0.1", port)); break
    except OSError: time.sleep(0.1)
val = b"v" * vb
t0 = time.time()
for start in range(0, n, 20000):
    buf = b"".join(b"set key:%012d 0 0 %d noreply\r\n%s\r\n" % (i, vb, val) for i in range(start, min(n, start + 20000)))
    s.sendall(buf + b"mn\r\n")
    got = b""
    while not got.endswith(b"MN\r\n"):
        got += s.recv(65536)
    if got != b"MN\r\n":
        sys.exit("unexpected reply: %r" % got[:200])
s.sendall(b"get key:%012d key:%012d\r\nstats\r\n" % (0, n - 1))
time.sleep(0.5)
d = s.recv(1 << 20).decode()
hits = sum(1 for l in d.split("\r\n") if l.startswith("VALUE "))
items = [l for l in d.split("\r\n") if l.startswith("STAT curr_items")]
print("loaded %d items of %d bytes in %.1f s; first and last key read back: %d of 2; %s" % (n, vb, time.time() - t0, hits, items[0] if items else "?"))
PY
}
mem() { grep -E "^(VmRSS|RssAnon|RssFile)" "/proc/$1/status" | tr -s ' \t' ' ' | paste -sd' '; }
exec > >(tee "$OUT/report.txt")
{
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit: $(git -C "$REPO" rev-parse --short HEAD)  machine: $(nproc) CPUs, $(free -g | awk '/Mem:/{print $2}') GiB"
echo "$(memcached -V)"
P=$(free_port)
"$RIVET_BIN" --port 0 --memcached-port "$P" --no-sync --db "$DIR/d.db" >"$DIR/rivet.log" 2>&1 &
PIDS+=($!); RP=$!
echo "rivet-server --no-sync: $(load "$P")"
echo "rivet-server: $(mem $RP); data file $(stat -c %s "$DIR/d.db") bytes"
kill "$RP"; wait "$RP" || true
"$RIVET_CLI" check "$DIR/d.db" | tail -1 | sed 's/^/rivet check: /'
P=$(free_port)
memcached -u nobody -l 127.0.0.1 -p "$P" -U 0 -t 2 -m 4096 &
PIDS+=($!); MP=$!
echo "memcached: $(load "$P")"
echo "memcached: $(mem $MP)"
}
