#!/usr/bin/env bash
# Checks the deployment artefacts. CI runs it from the repository root:
#
#   bash deploy/check.sh
#
# 1. promtool check/test of deploy/prometheus (promtool is fetched with apt if
#    missing; only the promtool binary is unpacked, no Prometheus service is
#    installed or started)
# 2. go vet + go test of the deploy/validate module (renders deploy/k8s with
#    kustomize and strictly decodes every object)
# 3. builds cmd/codewatch with the Dockerfile's exact flags into a temp dir
#    and checks the binary is static
#
# Idempotent; leaves nothing behind except the cached promtool.
# Environment: PROMTOOL=/path/to/promtool to use a specific binary;
# CODEWATCH_TOOLS_DIR (default ~/.cache/codewatch-tools) for the cache.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

section() { printf '\n==== %s ====\n' "$*"; }
die() { printf 'check.sh: %s\n' "$*" >&2; exit 1; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# ---------------------------------------------------------------------------
section "promtool"

TOOLS_DIR="${CODEWATCH_TOOLS_DIR:-${HOME:-/tmp}/.cache/codewatch-tools}"

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

install_promtool() {
	command -v apt-get >/dev/null 2>&1 || die "promtool not found and apt-get unavailable; set PROMTOOL=/path/to/promtool"
	echo "promtool not found; fetching Debian package 'prometheus' and unpacking promtool only"
	export DEBIAN_FRONTEND=noninteractive
	local dl="$TMP/apt"
	mkdir -p "$dl"
	# apt-get download needs package lists; refresh them once if it fails.
	if ! (cd "$dl" && apt-get download -qq prometheus >/dev/null 2>&1); then
		as_root apt-get update -qq >/dev/null
		(cd "$dl" && apt-get download -qq prometheus >/dev/null)
	fi
	local debs=("$dl"/prometheus_*.deb)
	[ -f "${debs[0]}" ] || die "apt-get download prometheus produced no .deb"
	dpkg-deb -x "${debs[0]}" "$dl/root"
	mkdir -p "$TOOLS_DIR"
	install -m 0755 "$dl/root/usr/bin/promtool" "$TOOLS_DIR/promtool.tmp"
	mv -f "$TOOLS_DIR/promtool.tmp" "$TOOLS_DIR/promtool"
}

if [ -n "${PROMTOOL:-}" ]; then
	:
elif command -v promtool >/dev/null 2>&1; then
	PROMTOOL="$(command -v promtool)"
elif [ -x "$TOOLS_DIR/promtool" ]; then
	PROMTOOL="$TOOLS_DIR/promtool"
else
	install_promtool
	PROMTOOL="$TOOLS_DIR/promtool"
fi
"$PROMTOOL" --version 2>&1 | sed -n 1p

section "promtool check rules deploy/prometheus/alerts.yml"
"$PROMTOOL" check rules deploy/prometheus/alerts.yml

section "promtool test rules deploy/prometheus/alerts_test.yml"
"$PROMTOOL" test rules deploy/prometheus/alerts_test.yml

# ---------------------------------------------------------------------------
section "deploy/validate: go vet"
(cd deploy/validate && go vet ./...)

section "deploy/validate: go test (kustomize render + strict decode + invariants)"
(cd deploy/validate && go test -count=1 ./...)

# ---------------------------------------------------------------------------
section "static build (flags as in deploy/Dockerfile)"
grep -qF 'CGO_ENABLED=0 go build -trimpath -ldflags="-s -w"' deploy/Dockerfile ||
	die "deploy/Dockerfile no longer uses the build flags this script checks; update both"
BIN="$TMP/codewatch"
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$BIN" ./cmd/codewatch
echo "built $(wc -c <"$BIN") bytes"

buildinfo="$(go version -m "$BIN")"
grep -q 'build[[:space:]]CGO_ENABLED=0' <<<"$buildinfo" || die "binary was not built with CGO_ENABLED=0"
grep -q 'build[[:space:]]-trimpath=true' <<<"$buildinfo" || die "binary was not built with -trimpath"
if command -v file >/dev/null 2>&1; then
	desc="$(file -b "$BIN")"
	echo "$desc"
	case "$desc" in
	*"statically linked"* | *"static-pie linked"*) ;;
	*) die "binary is not statically linked" ;;
	esac
else
	echo "file(1) not installed; relying on CGO_ENABLED=0 from go version -m"
fi
echo "static: ok"

section "deploy checks passed"
