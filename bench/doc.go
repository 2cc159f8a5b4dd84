// Package bench is the benchmark harness: it starts the proxy and its peers
// on 127.0.0.1, runs each scenario against each, and reports medians and
// ratios to baselines measured in the same run.
//
// It may import anything in this module; nothing imports it.
package bench
