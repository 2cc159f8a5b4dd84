package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// metric is one figure of one scenario, for example D3 at 32 connections
// in requests/s.
type metric struct {
	ID           string `json:"id"` // "D1", "D3-32", "D3-32 p99", "T3 free"
	Title        string `json:"title"`
	Unit         string `json:"unit"`
	HigherBetter bool   `json:"higher_is_better"`
	Baseline     string `json:"baseline"` // server whose median is ratio 1.0
	CPUUnit      string `json:"cpu_unit"` // "s/GiB", "s/1k req", "s/op"
}

// cell is one metric of one server over all runs.
type cell struct {
	Metric string `json:"metric"`
	Server string `json:"server"`
	// Samples are the per-run figures, in run order.
	Samples []float64 `json:"samples"`
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	// Ratio is the median against the baseline's median, oriented so
	// that above 1 is better: median/baseline for rates, baseline/median
	// for times. 0 when the baseline did not run.
	Ratio float64 `json:"ratio"`
	// CPU is the median of the server's CPU seconds (utime+stime of all
	// its processes) per unit of work, in the metric's CPUUnit.
	CPU float64 `json:"cpu"`
	// PeakRSSMiB is the largest VmHWM of any one of the server's
	// processes over all runs (for the proxy: of any one worker).
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	Error      string  `json:"error,omitempty"`

	cpuSamples []float64
}

// results collects cells in the order they were first measured.
type results struct {
	metrics []metric
	cells   map[string]map[string]*cell // metric id, then server name
	order   map[string][]string         // server names per metric, first-seen order
}

func newResults() *results {
	return &results{cells: map[string]map[string]*cell{}, order: map[string][]string{}}
}

func (r *results) define(m metric) {
	if _, ok := r.cells[m.ID]; ok {
		return
	}
	r.metrics = append(r.metrics, m)
	r.cells[m.ID] = map[string]*cell{}
}

func (r *results) cell(metricID, serverName string) *cell {
	byServer := r.cells[metricID]
	c, ok := byServer[serverName]
	if !ok {
		c = &cell{Metric: metricID, Server: serverName}
		byServer[serverName] = c
		r.order[metricID] = append(r.order[metricID], serverName)
	}
	return c
}

// add records one run. work is in the metric's CPU unit (GiB, thousands
// of requests or operations); cpu is the server's CPU seconds for it.
func (r *results) add(metricID, serverName string, value, work, cpu float64, peakKiB int64) {
	c := r.cell(metricID, serverName)
	c.Samples = append(c.Samples, value)
	if work > 0 {
		c.cpuSamples = append(c.cpuSamples, cpu/work)
	}
	c.PeakRSSMiB = max(c.PeakRSSMiB, float64(peakKiB)/1024)
}

// fail records an error of one run; the cell keeps its other runs.
func (r *results) fail(metricID, serverName string, err error) {
	c := r.cell(metricID, serverName)
	if c.Error == "" {
		c.Error = err.Error()
	}
	fmt.Printf("error     %-10s %-16s %v\n", metricID, serverName, err)
}

// summarize computes medians and ratios.
func (r *results) summarize() {
	for _, m := range r.metrics {
		for _, c := range r.cells[m.ID] {
			if len(c.Samples) > 0 {
				c.Median, c.Min, c.Max = median(c.Samples), slices.Min(c.Samples), slices.Max(c.Samples)
			}
			if len(c.cpuSamples) > 0 {
				c.CPU = median(c.cpuSamples)
			}
		}
		base, ok := r.cells[m.ID][m.Baseline]
		if !ok || base.Median == 0 {
			continue
		}
		for _, c := range r.cells[m.ID] {
			c.Ratio = orientedRatio(m, c.Median, base.Median)
		}
	}
}

// orientedRatio returns value against reference so that above 1 is
// better whatever the metric's direction.
func orientedRatio(m metric, value, reference float64) float64 {
	if value == 0 || reference == 0 {
		return 0
	}
	if m.HigherBetter {
		return value / reference
	}
	return reference / value
}

// medianOf returns a server's median for a metric, or false when it did
// not run.
func (r *results) medianOf(metricID, serverName string) (float64, bool) {
	c, ok := r.cells[metricID][serverName]
	if !ok || len(c.Samples) == 0 {
		return 0, false
	}
	return c.Median, true
}

func (r *results) metricByID(id string) (metric, bool) {
	for _, m := range r.metrics {
		if m.ID == id {
			return m, true
		}
	}
	return metric{}, false
}

func median(values []float64) float64 {
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// runMeasured runs fn against s once and records its figures, one per
// metric in ids, with the server's CPU time and peak RSS over the run. fn
// returns the figures and the work done in the metrics' CPU unit; a NaN
// figure is left out, and fn records its failure itself.
func (b *bench) runMeasured(ids []string, s *server, fn func() (values []float64, work float64, err error)) {
	memoryPIDs := s.memoryPIDs()
	for _, pid := range memoryPIDs {
		resetPeakRSS(pid)
	}
	cpuBefore := s.cpuSeconds()
	values, work, err := fn()
	cpu := s.cpuSeconds() - cpuBefore
	var peak int64
	for _, pid := range memoryPIDs {
		_, hwm := memoryKiB(pid)
		peak = max(peak, hwm)
	}
	if err != nil {
		b.results.fail(ids[0], s.name, err)
		return
	}
	for i, id := range ids {
		if math.IsNaN(values[i]) {
			continue // fn recorded why this figure is missing
		}
		b.results.add(id, s.name, values[i], work, cpu, peak)
	}
}

func mbPerSecond(bytes int64, elapsed time.Duration) float64 {
	return float64(bytes) / 1e6 / elapsed.Seconds()
}

func gib(bytes int64) float64 { return float64(bytes) / (1 << 30) }
