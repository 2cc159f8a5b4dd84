package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
)

// targetResult is one target evaluated for one proxy variant.
type targetResult struct {
	ID    string  `json:"id"` // stable key, also the key in the floors file
	Proxy string  `json:"proxy"`
	Goal  string  `json:"goal"`
	Value float64 `json:"value"` // the ratio, or ms, or MiB
	Unit  string  `json:"unit"`  // "x", "ms" or "MiB"
	Met   bool    `json:"met"`
	// Measured is false when the proxy or the peer did not run; then
	// Value and Met mean nothing.
	Measured bool   `json:"measured"`
	Missing  string `json:"missing,omitempty"` // who did not run
}

// evaluateTargets checks the project's targets for each proxy variant.
// Every ratio compares medians of the same run.
func (b *bench) evaluateTargets() []targetResult {
	var out []targetResult
	r := b.results
	for _, proxy := range b.proxyNames() {
		ratio := func(id, metricID, peer, goal string, want float64) {
			t := targetResult{ID: proxy + " " + id, Proxy: proxy, Goal: goal, Unit: "x"}
			m, ok := r.metricByID(metricID)
			own, ownOK := r.medianOf(metricID, proxy)
			other, otherOK := r.medianOf(metricID, peer)
			switch {
			case !ok || !ownOK:
				t.Missing = proxy
			case !otherOK:
				t.Missing = peer
			default:
				t.Value = orientedRatio(m, own, other)
				t.Met, t.Measured = t.Value >= want, true
			}
			out = append(out, t)
		}

		ratio("D1/nginx", "D1", "nginx", "D1 >= 1.0x nginx", 1.0)
		out = append(out, b.bestLimitTarget(proxy))
		for _, m := range r.metrics {
			if strings.HasPrefix(m.ID, "D3-") && !strings.HasSuffix(m.ID, "p99") {
				ratio(m.ID+"/nginx", m.ID, "nginx", m.ID+" >= 1.0x nginx requests/s", 1.0)
			}
		}
		ratio("U1/tusd", "U1", "tusd", "U1 >= 3x tusd", 3.0)
		ratio("U1/limit", "U1", "limit-splice", "U1 >= 0.9x the upload limit (splice receiver)", 0.9)
		ratio("U3/tusd", "U3", "tusd", "U3 >= 2x tusd creation-with-upload", 2.0)
		for _, m := range r.metrics {
			if m.Unit == "ms" || strings.HasPrefix(m.ID, "T") {
				continue
			}
			if _, ran := r.cells[m.ID]["aiohttp"]; ran {
				ratio(m.ID+"/aiohttp", m.ID, "aiohttp", m.ID+" >= 3x aiohttp", 3.0)
			}
		}
		ratio("T1/du", "T1", "du -s", "T1 >= 2x du -s", 2.0)
		ratio("T2/cp", "T2", "cp -a", "T2 >= 1.5x cp -a", 1.5)
		out = append(out, b.absoluteTarget(proxy, "T3 call", "T3 call < 50 ms", "ms", 50, func(c *cell) float64 { return c.Median }))
		ratio("T3 free/rm", "T3 free", "rm -rf", "T3 space free at least as fast as rm -rf", 1.0)
		for _, id := range []string{"D2", "U2"} {
			out = append(out, b.absoluteTarget(proxy, id+" rss", id+" peak RSS < 64 MiB per worker", "MiB", 64, func(c *cell) float64 { return c.PeakRSSMiB }))
		}
	}
	return out
}

// bestLimitTarget is D1 against the faster of the two limit paths.
func (b *bench) bestLimitTarget(proxy string) targetResult {
	t := targetResult{ID: proxy + " D1/best-limit", Proxy: proxy, Goal: "D1 >= 0.95x the best limit path", Unit: "x"}
	own, ok := b.results.medianOf("D1", proxy)
	if !ok {
		t.Missing = proxy
		return t
	}
	best := 0.0
	for _, limit := range []string{"limit-sendfile", "limit-copy"} {
		if v, ok := b.results.medianOf("D1", limit); ok {
			best = max(best, v)
		}
	}
	if best == 0 {
		t.Missing = "limit"
		return t
	}
	t.Value = own / best
	t.Met, t.Measured = t.Value >= 0.95, true
	return t
}

// absoluteTarget checks a figure of the proxy's own cell against a limit
// it must stay below.
func (b *bench) absoluteTarget(proxy, metricID, goal, unit string, below float64, figure func(*cell) float64) targetResult {
	id := metricID
	if !strings.HasSuffix(id, " rss") {
		id += " abs"
	}
	base := strings.TrimSuffix(metricID, " rss")
	t := targetResult{ID: proxy + " " + id, Proxy: proxy, Goal: goal, Unit: unit}
	c, ok := b.results.cells[base][proxy]
	if !ok || len(c.Samples) == 0 {
		t.Missing = proxy
		return t
	}
	t.Value = figure(c)
	t.Met, t.Measured = t.Value < below, true
	return t
}

func (b *bench) proxyNames() []string {
	var names []string
	for _, s := range b.proxies() {
		names = append(names, s.name)
	}
	if len(names) == 0 {
		names = []string{"proxy-io_uring", "proxy-syscall"}
	}
	return names
}

// ratioFloors returns every ratio target that was measured, with each
// proxy cell's ratio to its metric's baseline, keyed as in the floors
// file.
func (b *bench) ratioFloors(targets []targetResult) map[string]float64 {
	out := map[string]float64{}
	for _, t := range targets {
		if t.Measured && t.Unit == "x" {
			out[t.ID] = t.Value
		}
	}
	for _, m := range b.results.metrics {
		// Tail latencies and the delete call (100x faster than rm -rf,
		// with a ratio that swings as much) vary too much between runs to
		// gate on.
		if strings.HasSuffix(m.ID, "p99") || m.ID == "T3 call" {
			continue
		}
		for _, proxy := range b.proxyNames() {
			if c, ok := b.results.cells[m.ID][proxy]; ok && c.Ratio > 0 {
				out[proxy+" "+m.ID+"/baseline"] = c.Ratio
			}
		}
	}
	return out
}

// floorsFile is bench/floors.json.
type floorsFile struct {
	Comment string             `json:"comment"`
	Floors  map[string]float64 `json:"floors"`
}

// checkFloors compares this run's ratios with the floors file and returns
// the failures. A ratio whose peer was skipped is reported and not
// counted; a ratio the proxy did not produce is a failure.
func (b *bench) checkFloors(targets []targetResult) ([]string, error) {
	raw, err := os.ReadFile(b.opts.floorsPath)
	if err != nil {
		return nil, err
	}
	var file floorsFile
	if err := json.Unmarshal(raw, &file); err != nil {
		return nil, fmt.Errorf("%s: %w", b.opts.floorsPath, err)
	}

	measured := b.ratioFloors(targets)
	missingPeer := map[string]string{}
	for _, t := range targets {
		if !t.Measured {
			missingPeer[t.ID] = t.Missing
		}
	}

	var failures []string
	keys := make([]string, 0, len(file.Floors))
	for key := range file.Floors {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		floor := file.Floors[key]
		value, ok := measured[key]
		switch {
		case ok && value < floor:
			failures = append(failures, fmt.Sprintf("%s: ratio %.2f is below its floor %.2f", key, value, floor))
		case ok:
			fmt.Printf("floor ok  %-40s %.2f >= %.2f\n", key, value, floor)
		case missingPeer[key] != "" && !slices.Contains(b.proxyNames(), missingPeer[key]):
			fmt.Printf("floor --  %-40s not measured: %s did not run\n", key, missingPeer[key])
		default:
			failures = append(failures, fmt.Sprintf("%s: not measured (the proxy did not produce this figure)", key))
		}
	}
	return failures, nil
}

// writeFloorsFile writes this run's ratios less the margin, rounded down
// to 0.01 and at least 0.01. A lower floor already in the file is kept,
// so that several runs written in turn leave the lowest floor of each.
func (b *bench) writeFloorsFile(targets []targetResult) error {
	file := floorsFile{
		Comment: fmt.Sprintf("Minimum ratios for make bench-ci (go run ./bench -short -runs 3). Each floor is the lowest ratio of the runs written with -write-floors, less %.0f%%, because ratios of one short run swing by up to 45%% on a 2-core machine shared with other jobs.", b.opts.floorMargin*100),
		Floors:  map[string]float64{},
	}
	var old floorsFile
	if raw, err := os.ReadFile(b.opts.writeFloors); err == nil {
		if err := json.Unmarshal(raw, &old); err != nil {
			return fmt.Errorf("%s: %w", b.opts.writeFloors, err)
		}
	}
	for key, value := range b.ratioFloors(targets) {
		floor := max(0.01, math.Floor(value*(1-b.opts.floorMargin)*100)/100)
		if previous, ok := old.Floors[key]; ok {
			floor = min(floor, previous)
		}
		file.Floors[key] = floor
	}
	out, err := json.MarshalIndent(file, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(b.opts.writeFloors, append(out, '\n'), 0o644)
}
