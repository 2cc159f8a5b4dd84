package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bai-storage/storage-proxy/control/metrics"
	"github.com/bai-storage/storage-proxy/control/volume"
)

// envMetricsDir is the folder where workers create their metrics sockets.
const envMetricsDir = "STORAGE_PROXY_METRICS_DIR"

// metricsSocket returns worker i's metrics socket in dir.
func metricsSocket(dir string, i int) string {
	return filepath.Join(dir, "worker-"+strconv.Itoa(i)+".sock")
}

// makeMetricsDir creates a private folder for the workers' metrics sockets
// under ipc-base-path, owned by the user the processes will run as.
func makeMetricsDir(base string, uid, gid int) (string, error) {
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("ipc-base-path: %w", err)
	}
	dir, err := os.MkdirTemp(base, "storage-proxy-"+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", fmt.Errorf("ipc-base-path: %w", err)
	}
	if os.Geteuid() == 0 {
		os.Chown(dir, uid, gid)
	}
	return dir, nil
}

// managerRoutes bounds the route label of manager API metrics.
var managerRoutes = map[string]bool{
	"/": true, "/status": true, "/health": true, "/livez": true, "/readyz": true,
	"/volumes": true, "/volume/hwinfo": true, "/quota-scope": true, "/quota-scope/quota": true,
	"/folder/create": true, "/folder/delete": true, "/folder/clone": true, "/folder/mount": true,
	"/volume/performance-metric": true, "/folder/metadata": true, "/volume/quota": true,
	"/folder/usage": true, "/folder/used-bytes": true, "/folder/fs-usage": true,
	"/folder/file/mkdir": true, "/folder/file/list": true, "/folder/file/rename": true,
	"/folder/file/move": true, "/folder/file/fetch": true, "/folder/file/download": true,
	"/folder/file/upload": true, "/folder/file/delete": true,
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// withMetrics serves /metrics (without authentication, like the health
// routes) and counts every other manager API call.
func withMetrics(next http.Handler, m *metrics.Control, gatherer prometheus.Gatherer) http.Handler {
	scrape := promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			scrape.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		route := r.URL.Path
		if !managerRoutes[route] {
			route = "other"
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		m.Requests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
		if route == "/folder/file/upload" && status == http.StatusOK {
			m.UploadsCreated.Inc()
		}
	})
}

// registerVolumeMetrics adds capacity and used bytes of each volume, read
// with statfs at scrape time, and the chosen engines as info gauges.
func registerVolumeMetrics(reg *prometheus.Registry, volumes []volume.Volume, ioEngine, dataPath string) {
	capacity := prometheus.NewDesc(metrics.Namespace+"_volume_capacity_bytes", "Capacity of the volume's filesystem.", []string{"volume"}, nil)
	used := prometheus.NewDesc(metrics.Namespace+"_volume_used_bytes", "Used bytes of the volume's filesystem.", []string{"volume"}, nil)
	reg.MustRegister(collectorFunc{descs: []*prometheus.Desc{capacity, used}, collect: func(ch chan<- prometheus.Metric) {
		for _, v := range volumes {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			u, err := v.FSUsage(ctx)
			cancel()
			if err != nil {
				continue
			}
			name := v.Info().Name
			ch <- prometheus.MustNewConstMetric(capacity, prometheus.GaugeValue, float64(u.CapacityBytes), name)
			ch <- prometheus.MustNewConstMetric(used, prometheus.GaugeValue, float64(u.UsedBytes), name)
		}
	}})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: metrics.Namespace, Name: "data_path_info",
		Help: "The io engine of tree walks and uploads (io_uring or syscall) and the download data path (sendfile or copy); always 1.",
	}, []string{"io_engine", "data_path"})
	info.WithLabelValues(ioEngine, dataPath).Set(1)
	reg.MustRegister(info)
}

type collectorFunc struct {
	descs   []*prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
