package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/bai-storage/storage-proxy/control/cluster"
	"github.com/bai-storage/storage-proxy/control/config"
	"github.com/bai-storage/storage-proxy/control/logging"
	"github.com/bai-storage/storage-proxy/control/metrics"
	"github.com/bai-storage/storage-proxy/control/supervisor"
	"github.com/bai-storage/storage-proxy/dataplane"
	"github.com/bai-storage/storage-proxy/uring"
)

// runWorker serves the client API on the socket the supervisor passed in,
// until SIGTERM. Its log records go to the supervisor through a pipe.
func runWorker(args []string) int {
	index, _ := strconv.Atoi(os.Getenv(supervisor.EnvWorkerIndex))
	// SIGINT from a terminal reaches the whole process group; only the
	// supervisor decides when workers stop, so they wait for its SIGTERM.
	signal.Ignore(syscall.SIGINT)

	c, err := parseFlags("storage-proxy worker", args, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storage-proxy worker:", err)
		return 2
	}
	cfg, err := loadConfig(c)
	if err != nil {
		printConfigError(os.Stderr, err)
		return 1
	}
	logFile := os.NewFile(supervisor.LogFd, "log-pipe")
	handler, err := logging.NewWorkerHandler(logFile, cfg.Logging)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storage-proxy worker:", err)
		return 2
	}
	root := slog.New(handler)
	log := root.With("logger", "storage-proxy.dataplane")

	ln, err := net.FileListener(os.NewFile(supervisor.ListenerFd, "client-api"))
	if err != nil {
		log.Error("worker cannot use its client API socket", "err", err)
		return 1
	}
	tlsConfig, err := cfg.ClientAPI.ServerTLS()
	if err != nil {
		log.Error("client API TLS certificate", "err", err)
		return 1
	}
	tlsOn := tlsConfig != nil

	mode := ioEngineMode(cfg.StorageProxy.IOEngine)
	engine, info, err := uring.Open(mode, uring.Options{})
	if err != nil {
		log.Error("io engine failed", "err", err)
		return 1
	}
	defer engine.Close()
	// Upload writes go through the engine that measured faster for large
	// writes, unless the operator forced one engine for everything.
	fileIO := engine
	if mode == uring.ModeAuto {
		fileIO = uring.Preferred(info.Prefer.LargeWrites, engine)
	}
	if index == 0 {
		log.Info("io engine selected", "engine", info.Engine, "reason", info.Reason, "upload_writes", fileIO.Name())
	}

	// sendfile and splice cannot encrypt: under TLS every body is copied
	// through user space with large buffers.
	dataPath := effectiveDataPath(cfg)
	if tlsOn && index == 0 {
		log.Info("client API uses TLS; download bodies are copied through user space instead of sendfile")
	}

	measures := metrics.NewData()
	if dir := os.Getenv(envMetricsDir); dir != "" {
		stop, err := metrics.ServeUnix(metricsSocket(dir, index), measures.Registry)
		if err != nil {
			log.Warn("worker metrics unavailable", "err", err)
		} else {
			defer stop()
		}
	}
	volumes := map[string]string{}
	for _, v := range cfg.Volumes {
		volumes[v.Name] = v.Path
	}
	sp := cfg.StorageProxy
	var sessionLocks dataplane.SessionLocks
	if sp.UploadLock == "etcd" {
		locks, closeLocks, err := connectUploadLocks(cfg, root.With("logger", "storage-proxy.cluster"))
		if err != nil {
			log.Error("upload-lock = \"etcd\" needs etcd", "err", err)
			return 1
		}
		defer closeLocks()
		sessionLocks = locks
		if index == 0 {
			log.Info("upload sessions are locked in etcd", "lease_ttl", uploadLockTTL.String())
		}
	}

	srv, err := dataplane.New(dataplane.Options{
		TokenSecret:       []byte(sp.Secret),
		Volumes:           volumes,
		MaxUploadSize:     sp.MaxUploadSize,
		DataPath:          dataPath,
		TLS:               tlsConfig,
		SessionLocks:      sessionLocks,
		FileIO:            fileIO,
		ReadTimeout:       sp.ReadTimeout,
		WriteTimeout:      sp.WriteTimeout,
		IdleTimeout:       sp.IdleTimeout,
		UploadIdleTimeout: sp.UploadIdleTimeout,
		Version:           version,
		Metrics:           measures,
		Logger:            log,
	})
	if err != nil {
		log.Error("data plane failed to start", "err", err)
		return 1
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	// The socket is already listening and connections queue in the kernel
	// until Serve accepts them, so the worker reports ready before it
	// serves. A worker that answered a request has then always reported
	// ready, even if it dies right after.
	ready := os.NewFile(supervisor.ReadyFd, "ready")
	ready.Write([]byte{1})
	ready.Close()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Debug("worker serving", "pid", os.Getpid())

	select {
	case <-sigs:
	case err := <-serveErr:
		log.Error("client API stopped", "err", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), sp.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("in-flight transfers cut at the end of the grace period", "err", err)
	}
	return 0
}

// uploadLockTTL is how long the upload sessions of a worker that died stay
// locked in etcd (upload-lock = "etcd").
const uploadLockTTL = 5 * time.Second

// connectUploadLocks connects this worker to etcd for upload session locks.
// The returned function frees the worker's locks and disconnects.
func connectUploadLocks(cfg *config.Config, log *slog.Logger) (dataplane.SessionLocks, func(), error) {
	client, err := cluster.Connect(context.Background(), cluster.Options{
		Endpoint:  cfg.Etcd.Addr.String(),
		User:      cfg.Etcd.User,
		Password:  cfg.Etcd.Password,
		Namespace: cfg.Etcd.Namespace,
		NodeID:    cfg.StorageProxy.NodeID,
		Logger:    log,
	})
	if err != nil {
		return nil, nil, err
	}
	holder := cfg.StorageProxy.NodeID + " pid " + strconv.Itoa(os.Getpid())
	locks := client.UploadLocks(holder, uploadLockTTL)
	return etcdSessionLocks{locks}, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		locks.Close(ctx)
		client.Close()
	}, nil
}

// etcdSessionLocks adapts cluster.UploadLocks to dataplane.SessionLocks,
// which cannot name etcd types.
type etcdSessionLocks struct{ locks *cluster.UploadLocks }

func (e etcdSessionLocks) TryLock(ctx context.Context, session string) (dataplane.SessionLock, error) {
	lock, err := e.locks.TryLock(ctx, session)
	if errors.Is(err, cluster.ErrLocked) {
		return nil, fmt.Errorf("%w: %w", dataplane.ErrSessionLocked, err)
	}
	if err != nil {
		return nil, err
	}
	return lock, nil
}
