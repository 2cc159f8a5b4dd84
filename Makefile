# giouring links only with -checklinkname=0 on Go 1.23 and later: it pulls
# syscall.munmap through go:linkname. Every go build and go test here needs
# it, so it is set once, in GOFLAGS, for every target.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
export GOFLAGS := -ldflags=-checklinkname=0
BUILD_LDFLAGS := -checklinkname=0 -X main.version=$(VERSION)
BIN := bin/storage-proxy

.PHONY: all build run test test-race e2e soak fuzz bench bench-ci clean

all: build

# CGO_ENABLED=0 makes the binary static, so it runs on a storage node with
# an older glibc than the build machine's. User and group names in the
# config then resolve through /etc/passwd and /etc/group only.
build:
	CGO_ENABLED=0 go build -ldflags='$(BUILD_LDFLAGS)' -o $(BIN) ./cmd/storage-proxy

# The README's first command: the proxy on the embedded default.
run: build
	mkdir -p var/volumes/local
	test -f var/volumes/local/version.txt || echo 3 > var/volumes/local/version.txt
	./$(BIN) -f configs/dev.toml

# The README's second command: every test a clean machine can run.
test: build
	go vet ./...
	go test -count=1 -timeout 20m ./...

# The memory soak: 32 uploads of 128 MiB and 32 downloads of 1 GiB at once
# through the real binary; fails when a worker's peak RSS reaches 64 MiB.
soak: build
	STORAGE_PROXY_SOAK=1 go test -count=1 -timeout 30m -run 'TestSoakWorkerMemory' -v ./cmd/storage-proxy/

test-race:
	go test -race -count=1 -timeout 20m ./uring/ ./control/... ./dataplane/

clean:
	rm -rf bin var

# End to end: the real binary, a real dataset, real clients (tus-js-client,
# curl, aria2c, unzip). Runs once on the default engine and once with
# io_uring forced off.
e2e: build
	bash cmd/storage-proxy-e2e/run.sh

# The benchmark harness: the proxy against nginx, tusd, net/http, aiohttp and
# the machine's own limit, side by side. Regenerates docs/benchmarks.md.
bench: build
	go run ./bench -proxy $(BIN) -markdown docs/benchmarks.md -json bench/results.json

# The short mode CI runs: smaller sizes, 3 runs, fails under bench/floors.json.
bench-ci: build
	go run ./bench -proxy $(BIN) -short -runs 3 -floors bench/floors.json -json bench/results-ci.json

# Runs every fuzz target of the module for FUZZTIME each; crashers found are
# written to the package's testdata/fuzz and then run by make test.
FUZZTIME ?= 10s
fuzz:
	@set -e; for pkg in $$(go list ./...); do \
		for target in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$target for $(FUZZTIME)"; \
			go test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done
