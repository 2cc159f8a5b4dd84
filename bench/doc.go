// Command bench is the benchmark harness. It starts the storage proxy and
// its peers on 127.0.0.1 with a temp volume: nginx, tusd, @tus/server,
// net/http, aiohttp and a minimal sender and receiver of its own that mark
// the machine's limit. Then it runs each scenario against each server and
// reports medians and ratios to baselines measured in the same run.
//
//	go run ./bench -proxy bin/storage-proxy -markdown docs/benchmarks.md -json bench/results.json
//	go run ./bench -proxy bin/storage-proxy -short -runs 3 -floors bench/floors.json
//
// It stops every process it started by PID, also on Ctrl-C and on a
// failure. It may import anything in this module; nothing imports it.
package main
