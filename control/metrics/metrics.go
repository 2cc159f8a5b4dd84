// Package metrics defines the proxy's Prometheus metrics and carries the
// worker processes' metrics to the supervisor's /metrics endpoint.
//
// Each worker keeps its own registry of data-plane metrics (Data) and serves
// it on a Unix socket that only the supervisor reads. On every scrape the
// supervisor gathers each worker's families, labels them with worker="<i>"
// and serves them together with its own (manager API, upload sessions,
// volumes, Go runtime), so one scrape covers every process. Sum over the
// worker label for a node-wide figure; a restarted worker starts its counters
// from zero, which Prometheus handles as a counter reset.
//
// This package imports nothing from this module.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Namespace prefixes every metric of ours; only families with this prefix
// are taken from workers.
const Namespace = "storage_proxy"

// Data holds the metrics a worker's data plane records.
type Data struct {
	Registry *prometheus.Registry

	// Requests counts finished requests by api ("client"), route
	// ("download", "upload", "root", "other"), method and status code.
	Requests *prometheus.CounterVec
	// BodyBytes counts body bytes by route and direction ("in" for
	// uploads, "out" for downloads).
	BodyBytes *prometheus.CounterVec
	// InFlight is the number of transfers being served, by route.
	InFlight *prometheus.GaugeVec
	// Duration observes request durations in seconds, by route.
	Duration *prometheus.HistogramVec
	// UploadsCompleted counts upload sessions whose last byte arrived and
	// whose file was renamed into place.
	UploadsCompleted prometheus.Counter
	// AbortedResponses counts responses cut after their headers were sent
	// (a read error mid-body), which clients see as a broken connection.
	AbortedResponses prometheus.Counter
}

// NewData creates a worker's registry with every data-plane metric.
func NewData() *Data {
	d := &Data{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "http_requests_total",
			Help: "Finished HTTP requests by API, route, method and status code.",
		}, []string{"api", "route", "method", "status"}),
		BodyBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "body_bytes_total",
			Help: "Request and response body bytes moved by the data plane, by route and direction (in, out).",
		}, []string{"route", "direction"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "transfers_in_flight",
			Help: "Requests of the client API being served, by route.",
		}, []string{"route"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "http_request_duration_seconds",
			Help:    "Duration of client API requests, including the body, by route.",
			Buckets: []float64{0.001, 0.005, 0.025, 0.1, 0.5, 2, 10, 60, 300, 1800},
		}, []string{"route"}),
		UploadsCompleted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "upload_sessions_completed_total",
			Help: "Upload sessions whose file was completed and renamed into place.",
		}),
		AbortedResponses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "aborted_responses_total",
			Help: "Responses cut after their headers were sent, because reading the file failed.",
		}),
	}
	d.Registry.MustRegister(d.Requests, d.BodyBytes, d.InFlight, d.Duration, d.UploadsCompleted, d.AbortedResponses)
	return d
}

// Control holds the metrics the supervisor records.
type Control struct {
	Registry *prometheus.Registry

	// Requests counts manager API calls by route, method and status code.
	Requests *prometheus.CounterVec
	// UploadsCreated counts upload sessions minted by the manager API.
	UploadsCreated prometheus.Counter
	// UploadsExpired counts partial uploads the sweeper removed.
	UploadsExpired prometheus.Counter
}

// NewControl creates the supervisor's registry with the Go runtime and
// process collectors and every control-plane metric.
func NewControl() *Control {
	c := &Control{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "manager_requests_total",
			Help: "Manager API calls by route, method and status code.",
		}, []string{"route", "method", "status"}),
		UploadsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "upload_sessions_created_total",
			Help: "Upload sessions created through POST /folder/file/upload.",
		}),
		UploadsExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "upload_sessions_expired_total",
			Help: "Partial uploads and completion markers removed after session-expire.",
		}),
	}
	c.Registry.MustRegister(c.Requests, c.UploadsCreated, c.UploadsExpired,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return c
}
