package metrics

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// ServeUnix serves reg at /metrics on a Unix socket at path until the
// returned function is called. An old socket file at path is replaced.
func ServeUnix(path string, reg prometheus.Gatherer) (stop func(), err error) {
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("metrics socket: %w", err)
	}
	os.Chmod(path, 0o600)
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return func() {
		srv.Close()
		os.Remove(path)
	}, nil
}

// Workers gathers the metric families of every worker socket and labels
// each series with worker="<index>". Unreachable workers (restarting, for
// example) are skipped.
type Workers struct {
	// Sockets returns the socket path of each worker slot, indexed by slot.
	Sockets func() []string
	// Timeout bounds the scrape of one worker; zero means 2 s.
	Timeout time.Duration
}

// Gather implements prometheus.Gatherer.
func (w Workers) Gather() ([]*dto.MetricFamily, error) {
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	merged := map[string]*dto.MetricFamily{}
	for i, path := range w.Sockets() {
		families, err := scrapeUnix(path, timeout)
		if err != nil {
			continue
		}
		label := &dto.LabelPair{Name: proto.String("worker"), Value: proto.String(strconv.Itoa(i))}
		for name, mf := range families {
			if !strings.HasPrefix(name, Namespace+"_") {
				continue
			}
			for _, m := range mf.Metric {
				m.Label = append(m.Label, label)
			}
			if have, ok := merged[name]; ok {
				have.Metric = append(have.Metric, mf.Metric...)
			} else {
				merged[name] = mf
			}
		}
	}
	out := make([]*dto.MetricFamily, 0, len(merged))
	for _, mf := range merged {
		out = append(out, mf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, nil
}

func scrapeUnix(path string, timeout time.Duration) (map[string]*dto.MetricFamily, error) {
	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://worker/metrics", nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}
