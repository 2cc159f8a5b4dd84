#!/usr/bin/env bash
# End-to-end run of bin/storage-proxy (`make e2e` builds it first): installs
# tus-js-client if missing, checks the command-line clients, then runs the
# Go driver three times: on the default io engine, with io_uring forced off
# (BACKEND_IO_ENGINE=syscall), and on the default io engine with both APIs
# over HTTPS (-tls). Stops at the first failure.
# Extra arguments go to every driver run, e.g. -large-size 1073741824.
set -euo pipefail
cd "$(dirname "$0")/../.."

export GOFLAGS=-ldflags=-checklinkname=0
e2e_dir=cmd/storage-proxy-e2e

missing=()
for tool in node npm curl aria2c unzip; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
	echo "e2e: missing tools: ${missing[*]}" >&2
	echo "e2e: install the Debian packages curl, aria2 and unzip (bash .ci/run does) and Node.js 18 or later with npm" >&2
	exit 1
fi

if [[ ! -d $e2e_dir/tus/node_modules/tus-js-client ]]; then
	echo "e2e: installing tus-js-client (npm ci in $e2e_dir/tus)"
	(cd "$e2e_dir/tus" && npm ci --no-audit --no-fund)
fi

if [[ ! -x bin/storage-proxy ]]; then
	echo "e2e: bin/storage-proxy is missing; run make e2e, which builds it" >&2
	exit 1
fi

driver=$(mktemp -d "${TMPDIR:-/tmp}/storage-proxy-e2e-bin.XXXXXX")
# The runs share the generated files, so the large one is written once.
dataset=$(mktemp -d "${TMPDIR:-/tmp}/storage-proxy-e2e-dataset.XXXXXX")
trap 'rm -rf "$driver" "$dataset"' EXIT
go build -o "$driver/storage-proxy-e2e" "./$e2e_dir"

started=$SECONDS
for engine in default syscall; do
	echo "e2e: run with io engine: $engine"
	if [[ $engine == default ]]; then
		env -u BACKEND_IO_ENGINE "$driver/storage-proxy-e2e" -binary bin/storage-proxy -dataset-dir "$dataset" -tus-dir "$e2e_dir/tus" "$@"
	else
		BACKEND_IO_ENGINE=$engine "$driver/storage-proxy-e2e" -binary bin/storage-proxy -dataset-dir "$dataset" -tus-dir "$e2e_dir/tus" "$@"
	fi
done
echo "e2e: run with io engine: default, over HTTPS"
env -u BACKEND_IO_ENGINE "$driver/storage-proxy-e2e" -binary bin/storage-proxy -dataset-dir "$dataset" -tus-dir "$e2e_dir/tus" -tls "$@"
echo "e2e: all three runs passed in $((SECONDS - started)) s"
