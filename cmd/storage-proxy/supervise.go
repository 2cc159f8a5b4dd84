package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bai-storage/storage-proxy/control/cluster"
	"github.com/bai-storage/storage-proxy/control/config"
	"github.com/bai-storage/storage-proxy/control/logging"
	"github.com/bai-storage/storage-proxy/control/manager"
	"github.com/bai-storage/storage-proxy/control/metrics"
	"github.com/bai-storage/storage-proxy/control/supervisor"
	"github.com/bai-storage/storage-proxy/control/volume"
	"github.com/bai-storage/storage-proxy/dataplane"
	"github.com/bai-storage/storage-proxy/uring"
)

// runSupervisor is the main process: it owns the pid file, the log drivers,
// etcd, the volumes, the manager API and the worker processes. It returns
// the process exit status.
func runSupervisor(c cli, cfg *config.Config) int {
	// Upstream runs with the config file's folder as working directory.
	if err := os.Chdir(cfg.Dir); err != nil {
		fmt.Fprintln(os.Stderr, "storage-proxy: cannot enter the config folder:", err)
		return 1
	}
	// The pid file comes first, so it exists even if start-up fails later.
	if err := supervisor.WritePIDFile(cfg.StorageProxy.PIDFile); err != nil {
		fmt.Fprintln(os.Stderr, "storage-proxy:", err)
		return 1
	}
	defer supervisor.RemovePIDFile(cfg.StorageProxy.PIDFile)

	logs, err := logging.New(cfg.Logging, logging.Options{Stderr: os.Stderr, ProcessName: "supervisor"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "storage-proxy: logging:", err)
		return 1
	}
	defer logs.Close()
	log := logs.Logger("storage-proxy")

	if err := superviseLoop(c, cfg, logs, log); err != nil {
		log.Error("start-up failed", "err", err)
		fmt.Fprintln(os.Stderr, "storage-proxy:", err)
		return 1
	}
	log.Info("exit.")
	return 0
}

func superviseLoop(c cli, cfg *config.Config, logs *logging.Logging, log *slog.Logger) error {
	sp := cfg.StorageProxy
	log.Info("Backend.AI Storage Proxy", "version", version, "runtime", runtime.Version())
	log.Info("Node ID: "+sp.NodeID, "num-proc", sp.NumProc)
	for _, key := range cfg.Ignored {
		log.Debug("config key is for the Python proxy only; ignored", "key", key)
	}

	// Stop signals during start-up are honoured at the end of start-up.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	// etcd: the embedded member for development, then the client.
	if cfg.Etcd.Embedded {
		member, err := cluster.StartMember(cfg.Etcd.EmbeddedDir, cfg.Etcd.Addr.String(), 20*time.Second)
		if err != nil {
			return err
		}
		defer member.Close()
		log.Info("embedded etcd member started", "addr", cfg.Etcd.Addr.String(), "dir", cfg.Etcd.EmbeddedDir)
	}
	etcd, err := cluster.Connect(context.Background(), cluster.Options{
		Endpoint:  cfg.Etcd.Addr.String(),
		User:      cfg.Etcd.User,
		Password:  cfg.Etcd.Password,
		Namespace: cfg.Etcd.Namespace,
		NodeID:    sp.NodeID,
		Logger:    logs.Logger("storage-proxy.control"),
	})
	if err != nil {
		return fmt.Errorf("cannot reach etcd: %w", err)
	}
	defer etcd.Close()

	// The tree walks of usage, clone and delete run on the engine the
	// kernel supports best.
	engine, info, err := uring.Open(ioEngineMode(sp.IOEngine), uring.Options{})
	if err != nil {
		return fmt.Errorf("io engine: %w", err)
	}
	defer engine.Close()
	log.Info("io engine selected", "engine", info.Engine, "reason", info.Reason)

	volumes, err := openVolumes(cfg, engine, logs)
	if err != nil {
		return err
	}
	defer func() {
		for _, v := range volumes {
			v.Close()
		}
	}()

	// Bind both listeners before dropping privileges, so ports below 1024
	// work for an unprivileged service user.
	clientSockets, err := supervisor.ListenReusePort(cfg.ClientAPI.ServiceAddr.String(), sp.NumProc)
	if err != nil {
		return fmt.Errorf("client API: %w", err)
	}
	defer closeFiles(clientSockets)
	managerLn, err := listen(cfg.ManagerAPI)
	if err != nil {
		return fmt.Errorf("manager API: %w", err)
	}
	metricsDir, err := makeMetricsDir(sp.IPCBasePath, sp.UID, sp.GID)
	if err != nil {
		return err
	}
	defer os.RemoveAll(metricsDir)
	if err := supervisor.DropPrivileges(sp.UID, sp.GID); err != nil {
		return err
	}

	workers, err := startWorkers(cfg, clientSockets, metricsDir, logs, log)
	if err != nil {
		return err
	}
	stopWorkers := func(grace time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		workers.Stop(ctx)
	}

	handler, err := manager.New(manager.Options{
		Secret:        cfg.ManagerAPI.Secret,
		Volumes:       volumes,
		TokenSecret:   []byte(sp.Secret),
		SessionExpiry: sp.SessionExpire.AddTo,
		MaxUploadSize: sp.MaxUploadSize,
		Version:       version,
		Logger:        logs.Logger("storage-proxy.control"),
		Ready:         readiness(etcd, workers),
	})
	if err != nil {
		stopWorkers(sp.ShutdownGrace)
		return err
	}
	control := metrics.NewControl()
	registerVolumeMetrics(control.Registry, volumes, info.Engine, effectiveDataPath(cfg))
	gatherer := prometheus.Gatherers{control.Registry, metrics.Workers{Sockets: func() []string {
		paths := make([]string, sp.NumProc)
		for i := range paths {
			paths[i] = metricsSocket(metricsDir, i)
		}
		return paths
	}}}
	handler = withAccessLog(withMetrics(handler, control, gatherer), logs.Logger("http.access"))
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(logs.Logger("http.access").Handler(), slog.LevelWarn)}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(managerLn) }()

	stopSweeper := startSweeper(cfg, control.UploadsExpired, log)
	defer stopSweeper()

	if sp.RegisterNode {
		entry := cluster.ProxyEntry{
			ClientAPI:  announceURL(sp.ClientURL, cfg.ClientAPI),
			ManagerAPI: announceURL(sp.ManagerURL, cfg.ManagerAPI),
			Secret:     cfg.ManagerAPI.Secret,
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		reg, err := etcd.Register(ctx, sp.NodeID, entry, 10*time.Second)
		cancel()
		if err != nil {
			stopWorkers(sp.ShutdownGrace)
			return fmt.Errorf("register-node: %w", err)
		}
		log.Info("registered in etcd", "name", sp.NodeID, "client_api", entry.ClientAPI, "manager_api", entry.ManagerAPI)
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := reg.Close(ctx); err != nil {
				log.Warn("could not remove the etcd registration", "err", err)
			}
		}()
	}

	log.Info("Started service.", "client-api", cfg.ClientAPI.ServiceAddr.String(), "manager-api", cfg.ManagerAPI.ServiceAddr.String())
	if cfg.Etcd.Embedded {
		printDevBanner(os.Stdout, cfg)
	}

	select {
	case sig := <-sigs:
		log.Info("Shutting down...", "signal", sig.String())
	case err := <-serveErr:
		log.Error("manager API stopped", "err", err)
	}

	// Stop taking new manager calls and transfers, then let in-flight ones
	// finish within the grace period. A second signal kills the workers.
	ctx, cancel := context.WithTimeout(context.Background(), sp.ShutdownGrace)
	defer cancel()
	go func() {
		select {
		case <-sigs:
			log.Warn("second stop signal; not waiting for in-flight requests")
			cancel()
		case <-ctx.Done():
		}
	}()
	done := make(chan struct{})
	go func() { workers.Stop(ctx); close(done) }()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("manager API did not finish in-flight calls in time", "err", err)
	}
	<-done
	return nil
}

// announceURL returns the configured URL, or one built from the listener's
// address, with the host name in place of a wildcard host.
func announceURL(configured string, l config.Listener) string {
	if configured != "" {
		return configured
	}
	scheme := "http"
	if l.SSLEnabled {
		scheme = "https"
	}
	host := l.ServiceAddr.Host
	if host == "" || host == "0.0.0.0" || host == "::" {
		host, _ = os.Hostname()
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(l.ServiceAddr.Port))
}

// effectiveDataPath returns how download bodies move: "copy" under TLS or
// when configured, else "sendfile".
func effectiveDataPath(cfg *config.Config) string {
	dataPath := cfg.StorageProxy.DataPath
	if env := os.Getenv("BACKEND_DATA_PATH"); env != "" {
		dataPath = env
	}
	if dataPath == "copy" || cfg.ClientAPI.SSLEnabled {
		return "copy"
	}
	return "sendfile"
}

func ioEngineMode(name string) uring.Mode {
	if env := os.Getenv("BACKEND_IO_ENGINE"); env != "" {
		name = env
	}
	mode, err := uring.ParseMode(name)
	if err != nil {
		return uring.ModeAuto
	}
	return mode
}

func openVolumes(cfg *config.Config, engine uring.Engine, logs *logging.Logging) ([]volume.Volume, error) {
	var out []volume.Volume
	for _, vc := range cfg.Volumes {
		v, err := volume.Open(volume.Config{Name: vc.Name, Backend: vc.Backend, Path: vc.Path, FSPrefix: vc.FSPrefix, Options: vc.Options},
			volume.Options{TreeIO: engine, ScandirLimit: cfg.StorageProxy.ScandirLimit, Logger: logs.Logger("storage-proxy.control")})
		if err == nil {
			// The background deleter and the clean-up of interrupted
			// clones run in the supervisor only.
			if err = v.Start(); err != nil {
				v.Close()
			}
		}
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("volume %s: %w", vc.Name, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func listen(l config.Listener) (net.Listener, error) {
	ln, err := net.Listen("tcp", l.ServiceAddr.String())
	if err != nil {
		return nil, err
	}
	tlsConfig, err := l.ServerTLS()
	if err != nil {
		ln.Close()
		return nil, err
	}
	if tlsConfig == nil {
		return ln, nil
	}
	return tls.NewListener(ln, tlsConfig), nil
}

func startWorkers(cfg *config.Config, sockets []*os.File, metricsDir string, logs *logging.Logging, log *slog.Logger) (*supervisor.Supervisor, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	env := append(os.Environ(), envConfigFile+"="+cfg.File, envMetricsDir+"="+metricsDir)
	sup := supervisor.New(supervisor.Options{
		Path:      self,
		Args:      workerArgs(cfg),
		Env:       env,
		Listeners: sockets,
		Logger:    log,
		Relay: func(r io.Reader, worker, pid int) {
			if err := logs.Relay(r, slog.Int("worker", worker), slog.Int("pid", pid)); err != nil {
				log.Warn("worker log relay ended", "worker", worker, "err", err)
			}
		},
	})
	if err := sup.Start(); err != nil {
		return nil, err
	}
	return sup, nil
}

// workerArgs passes the effective log level on, so a --debug supervisor has
// debugging workers.
func workerArgs(cfg *config.Config) []string {
	return []string{"--log-level", cfg.Logging.Level}
}

func readiness(etcd *cluster.Client, workers *supervisor.Supervisor) func(context.Context) []manager.Check {
	return func(context.Context) []manager.Check {
		var etcdErr error
		if h := etcd.Health(); !h.OK {
			etcdErr = fmt.Errorf("etcd unreachable since %s: %w", h.Since.UTC().Format(time.RFC3339), h.Err)
		}
		var workersErr error
		if pids, slots := workers.Workers(); len(pids) < slots {
			workersErr = fmt.Errorf("%d of %d workers running", len(pids), slots)
		}
		return []manager.Check{{Name: "etcd", Err: etcdErr}, {Name: "workers", Err: workersErr}}
	}
}

// startSweeper removes partial uploads and completion markers older than
// session-expire, once a minute, until the returned function is called.
func startSweeper(cfg *config.Config, expired prometheus.Counter, log *slog.Logger) func() {
	maxAge, ok := cfg.StorageProxy.SessionExpire.TimeDuration()
	if !ok {
		// Calendar durations: a month is at least 28 days.
		maxAge = time.Duration(float64(time.Second)*cfg.StorageProxy.SessionExpire.Seconds) +
			time.Duration(cfg.StorageProxy.SessionExpire.Months+12*cfg.StorageProxy.SessionExpire.Years)*28*24*time.Hour
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			for _, v := range cfg.Volumes {
				n, err := dataplane.Sweep(v.Path, maxAge, time.Now())
				if err != nil {
					log.Warn("upload sweeper failed", "volume", v.Name, "err", err)
				} else if n > 0 {
					expired.Add(float64(n))
					log.Info("removed expired upload sessions", "volume", v.Name, "count", n)
				}
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(stop); <-done }
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

func printDevBanner(w io.Writer, cfg *config.Config) {
	scheme := func(l config.Listener) string {
		if l.SSLEnabled {
			return "https"
		}
		return "http"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nstorage-proxy %s is running on the embedded development default.\n", version)
	fmt.Fprintf(&b, "  client API:     %s://%s\n", scheme(cfg.ClientAPI), cfg.ClientAPI.ServiceAddr)
	fmt.Fprintf(&b, "  manager API:    %s://%s\n", scheme(cfg.ManagerAPI), cfg.ManagerAPI.ServiceAddr)
	fmt.Fprintf(&b, "  manager secret: %s   (header X-BackendAI-Storage-Auth-Token)\n", cfg.ManagerAPI.Secret)
	fmt.Fprintf(&b, "  session secret: %s   (signs download/upload tokens)\n", cfg.StorageProxy.Secret)
	fmt.Fprintf(&b, "  etcd:           http://%s (namespace %q)\n", cfg.Etcd.Addr, cfg.Etcd.Namespace)
	for _, v := range cfg.Volumes {
		fmt.Fprintf(&b, "  volume %-8s %s (%s)\n", v.Name+":", v.Path, v.Backend)
	}
	curl := "curl -s"
	if cfg.ManagerAPI.SSLEnabled {
		// Trusting the certificate itself works when it is self-signed,
		// the usual case with the embedded development default.
		curl += " --cacert " + cfg.ManagerAPI.SSLCert
	}
	fmt.Fprintf(&b, "Try: %s -H 'X-BackendAI-Storage-Auth-Token: %s' %s://%s/volumes\n\n", curl, cfg.ManagerAPI.Secret, scheme(cfg.ManagerAPI), cfg.ManagerAPI.ServiceAddr)
	io.WriteString(w, b.String())
}
