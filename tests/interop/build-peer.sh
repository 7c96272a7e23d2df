#!/bin/sh
# Build the Go interop peer (tests/interop/peer/main.go) against the Debian
# packaged bbolt 1.3.6, offline, in GOPATH mode.
#
#   tests/interop/build-peer.sh [OUT]
#
# OUT defaults to target/interop/bboltpeer under the repository root. On
# success prints the absolute path of the binary and exits 0. Exits 3 when the
# Go toolchain or the bbolt sources are missing (callers may skip interop
# tests then), 2 on any other failure.
#
# Prerequisites: apt-get install -y golang-go golang-github-coreos-bbolt-dev
set -eu

script_dir=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
root=$(CDPATH= cd -- "$script_dir/../.." && pwd)

out=${1:-$root/target/interop/bboltpeer}
case $out in
/*) ;;
*) out=$(pwd)/$out ;;
esac

go=${GO:-}
if [ -z "$go" ]; then
	if command -v go >/dev/null 2>&1; then
		go=$(command -v go)
	elif [ -x /usr/lib/go/bin/go ]; then
		go=/usr/lib/go/bin/go
	else
		echo "build-peer.sh: go not found (apt-get install -y golang-go golang-github-coreos-bbolt-dev)" >&2
		exit 3
	fi
fi
if ! command -v "$go" >/dev/null 2>&1; then
	echo "build-peer.sh: go not found ($go)" >&2
	exit 3
fi

gocode=/usr/share/gocode
if [ ! -f "$gocode/src/go.etcd.io/bbolt/db.go" ]; then
	echo "build-peer.sh: bbolt sources not found in $gocode/src/go.etcd.io/bbolt (apt-get install -y golang-github-coreos-bbolt-dev)" >&2
	exit 3
fi

work=$root/target/interop
mkdir -p "$work/gopath" "$work/gocache" "$(dirname -- "$out")"

# GOPATH mode: the writable first GOPATH entry keeps go from writing into
# /usr/share/gocode; GOPROXY=off and GOFLAGS= guarantee no network and no
# surprises from the caller's environment.
if ! env GO111MODULE=off GOPATH="$work/gopath:$gocode" GOPROXY=off GOFLAGS= \
	GOCACHE="$work/gocache" GOTOOLCHAIN=local CGO_ENABLED=0 \
	"$go" build -o "$out" "$script_dir/peer/main.go"; then
	echo "build-peer.sh: go build failed" >&2
	exit 2
fi

echo "$out"
