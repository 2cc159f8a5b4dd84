package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const requestTimeout = 10 * time.Minute

func (b *bench) downloaders() []*server {
	return b.serversWith(func(s *server) bool { return s.filesPrefix != "" || s.proxy != nil })
}

// getOnce downloads target on conn and checks the status and length.
func getOnce(conn *httpConn, target string, headers []string, wantStatus int, wantLen int64) error {
	resp, err := conn.do(request{method: "GET", target: target, headers: headers})
	if err != nil {
		return err
	}
	if resp.status != wantStatus || (wantLen >= 0 && resp.bodyLen != wantLen) {
		return fmt.Errorf("GET %s: status %d with %d body bytes, expected %d with %d", shortTarget(target), resp.status, resp.bodyLen, wantStatus, wantLen)
	}
	return nil
}

// runD1 measures one client downloading one large cached file.
func (b *bench) runD1() {
	b.results.define(metric{ID: "D1", Title: fmt.Sprintf("D1 one client, one %s file", formatBytes(b.opts.d1Size)), Unit: "MB/s", HigherBetter: true, Baseline: "limit-sendfile", CPUUnit: "s/GiB"})
	servers := b.downloaders()
	for range b.opts.runs {
		for _, s := range servers {
			b.runMeasured([]string{"D1"}, s, func() ([]float64, float64, error) {
				target, err := s.downloadTarget(bigFile)
				if err != nil {
					return nil, 0, err
				}
				conn := newHTTPConn(s.addr, requestTimeout)
				defer conn.close()
				started := time.Now()
				if err := getOnce(conn, target, nil, 200, b.opts.d1Size); err != nil {
					return nil, 0, err
				}
				return []float64{mbPerSecond(b.opts.d1Size, time.Since(started))}, gib(b.opts.d1Size), nil
			})
		}
	}
}

// runD2 measures many clients at once, each downloading a file of its own.
func (b *bench) runD2() {
	b.results.define(metric{ID: "D2", Title: fmt.Sprintf("D2 %d clients, %s each", b.opts.d2Clients, formatBytes(b.opts.d2Size)), Unit: "MB/s", HigherBetter: true, Baseline: "limit-sendfile", CPUUnit: "s/GiB"})
	servers := b.downloaders()
	for range b.opts.runs {
		for _, s := range servers {
			b.runMeasured([]string{"D2"}, s, func() ([]float64, float64, error) {
				targets := make([]string, b.opts.d2Clients)
				for i := range targets {
					var err error
					if targets[i], err = s.downloadTarget(manyFile(i)); err != nil {
						return nil, 0, err
					}
				}
				started := time.Now()
				err := forEach(b.opts.d2Clients, b.opts.d2Clients, func(i int) error {
					conn := newHTTPConn(s.addr, requestTimeout)
					defer conn.close()
					return getOnce(conn, targets[i], nil, 200, b.opts.d2Size)
				})
				total := int64(b.opts.d2Clients) * b.opts.d2Size
				return []float64{mbPerSecond(total, time.Since(started))}, gib(total), err
			})
		}
	}
}

// runD3 measures small downloads on many keep-alive connections for a
// fixed time, for each connection count: requests/s and the 99th
// percentile latency.
func (b *bench) runD3() {
	var conns []int
	for _, field := range strings.Split(b.opts.d3Conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n < 1 {
			b.notes = append(b.notes, fmt.Sprintf("D3: invalid -d3-conns entry %q ignored", field))
			continue
		}
		conns = append(conns, n)
	}
	for _, n := range conns {
		id := fmt.Sprintf("D3-%d", n)
		title := fmt.Sprintf("D3 %s downloads, %d connections", formatBytes(b.opts.d3Size), n)
		b.results.define(metric{ID: id, Title: title, Unit: "req/s", HigherBetter: true, Baseline: "limit-sendfile", CPUUnit: "s/1k req"})
		b.results.define(metric{ID: id + " p99", Title: title + ", p99 latency", Unit: "ms", HigherBetter: false, Baseline: "limit-sendfile", CPUUnit: "s/1k req"})
	}
	servers := b.downloaders()
	for _, n := range conns {
		id := fmt.Sprintf("D3-%d", n)
		for range b.opts.runs {
			for _, s := range servers {
				b.runMeasured([]string{id, id + " p99"}, s, func() ([]float64, float64, error) {
					return b.smallLoad(s, n)
				})
			}
		}
	}
}

// smallLoad runs conns clients that each GET the small file in a loop
// until -d3-duration passes or -d3-max-requests are done.
func (b *bench) smallLoad(s *server, conns int) ([]float64, float64, error) {
	target, err := s.downloadTarget(smallFile)
	if err != nil {
		return nil, 0, err
	}
	probe := newHTTPConn(s.addr, 10*time.Second)
	err = getOnce(probe, target, nil, 200, b.opts.d3Size)
	probe.close()
	if err != nil {
		return nil, 0, err
	}

	var remaining atomic.Int64
	remaining.Store(int64(b.opts.d3MaxReqs))
	latencies := make([][]time.Duration, conns)
	deadline := time.Now().Add(b.opts.d3Duration)
	started := time.Now()
	err = forEach(conns, conns, func(i int) error {
		conn := newHTTPConn(s.addr, 30*time.Second)
		defer conn.close()
		own := make([]time.Duration, 0, 4096)
		defer func() { latencies[i] = own }()
		for remaining.Add(-1) >= 0 && time.Now().Before(deadline) {
			sent := time.Now()
			if err := getOnce(conn, target, nil, 200, b.opts.d3Size); err != nil {
				return err
			}
			own = append(own, time.Since(sent))
		}
		return nil
	})
	elapsed := time.Since(started)
	all := slices.Concat(latencies...)
	if err != nil {
		return nil, 0, err
	}
	if len(all) == 0 {
		return nil, 0, fmt.Errorf("no request completed")
	}
	slices.Sort(all)
	p99 := all[min(len(all)-1, len(all)*99/100)]
	return []float64{float64(len(all)) / elapsed.Seconds(), float64(p99.Microseconds()) / 1000}, float64(len(all)) / 1000, nil
}

// runD4 measures range reads at random offsets of the large file.
func (b *bench) runD4() {
	b.results.define(metric{ID: "D4", Title: fmt.Sprintf("D4 %d range reads of %s, %d connections", b.opts.d4Requests, formatBytes(b.opts.d4Size), b.opts.d4Conns), Unit: "MB/s", HigherBetter: true, Baseline: "limit-sendfile", CPUUnit: "s/GiB"})
	servers := b.downloaders()
	for run := range b.opts.runs {
		// Every server reads the same offsets in a run.
		random := rand.New(rand.NewPCG(uint64(run), 4))
		offsets := make([]int64, b.opts.d4Requests)
		for i := range offsets {
			offsets[i] = random.Int64N(b.opts.d1Size - b.opts.d4Size + 1)
		}
		for _, s := range servers {
			b.runMeasured([]string{"D4"}, s, func() ([]float64, float64, error) {
				target, err := s.downloadTarget(bigFile)
				if err != nil {
					return nil, 0, err
				}
				var next atomic.Int64
				started := time.Now()
				err = forEach(b.opts.d4Conns, b.opts.d4Conns, func(int) error {
					conn := newHTTPConn(s.addr, requestTimeout)
					defer conn.close()
					for i := next.Add(1) - 1; i < int64(len(offsets)); i = next.Add(1) - 1 {
						first := offsets[i]
						header := fmt.Sprintf("Range: bytes=%d-%d", first, first+b.opts.d4Size-1)
						if err := getOnce(conn, target, []string{header}, 206, b.opts.d4Size); err != nil {
							return err
						}
					}
					return nil
				})
				total := int64(len(offsets)) * b.opts.d4Size
				return []float64{mbPerSecond(total, time.Since(started))}, gib(total), err
			})
		}
	}
}

// forEach runs do(i) for i in [0, n) on workers goroutines and returns the
// first error. After an error no new index starts.
func forEach(n, workers int, do func(i int) error) error {
	var (
		next     atomic.Int64
		failed   atomic.Bool
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := do(i); err != nil {
					once.Do(func() { firstErr = err })
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}
