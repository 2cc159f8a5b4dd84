// Package cluster is the proxy's etcd client: every key lives under
// /sorna/<namespace>/, as upstream Backend.AI lays them out, and reads of
// node-scoped keys try nodes/storage/<node-id>/ before the global scope.
//
// Connect fails fast when etcd cannot be reached at start-up. After that a
// Client probes etcd in the background, logs each outage and each recovery
// once, and reports its state through Health. The manager API can then
// respond 503 and readiness can go red while transfers go on, because the
// data plane never waits on etcd.
//
// The package also runs an in-process etcd member (embedded.go) for the
// development default and for tests.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Options configures a Client. The zero value of each field is documented.
type Options struct {
	// Endpoint is the etcd address as host:port (plain HTTP).
	Endpoint string
	// User and Password are used only when User is non-empty.
	User, Password string
	// Namespace selects the key prefix /sorna/<Namespace>/.
	Namespace string
	// NodeID selects the node scope nodes/storage/<NodeID>/ for merged reads.
	NodeID string
	// ConnectTimeout bounds Connect; zero means 5 s.
	ConnectTimeout time.Duration
	// ProbeInterval is the period of the background health probe; zero
	// means 2 s.
	ProbeInterval time.Duration
	// Logger receives outage and recovery lines; nil discards them.
	Logger *slog.Logger
}

// Health is the result of the latest probe.
type Health struct {
	OK        bool
	Err       error
	CheckedAt time.Time
	// Since is when the current state (healthy or not) began.
	Since time.Time
}

// Client is a connected etcd client scoped to one namespace. Its methods are
// safe for concurrent use. Close stops the probe and the connection.
type Client struct {
	cli    *clientv3.Client
	prefix string
	node   string
	opts   Options
	log    *slog.Logger

	stop chan struct{}
	done chan struct{}

	// mu guards health.
	mu     sync.Mutex
	health Health
}

// ErrUnavailable is wrapped by errors of calls made while etcd cannot be
// reached, so callers can respond 503 with Retry-After.
var ErrUnavailable = errors.New("etcd unavailable")

// Connect dials etcd and reads one key to prove it responds. It fails within
// ConnectTimeout with an error that names the address.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = 2 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := clientv3.Config{
		Endpoints:            []string{"http://" + opts.Endpoint},
		DialTimeout:          opts.ConnectTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Logger:               zap.NewNop(),
	}
	if opts.User != "" {
		cfg.Username, cfg.Password = opts.User, opts.Password
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %s: %w", opts.Endpoint, err)
	}

	c := &Client{
		cli:    cli,
		prefix: "/sorna/" + opts.Namespace + "/",
		node:   "nodes/storage/" + opts.NodeID + "/",
		opts:   opts,
		log:    log,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	pctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	if err := c.probe(pctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd at %s did not respond within %s: %w", opts.Endpoint, opts.ConnectTimeout, err)
	}
	now := time.Now()
	c.health = Health{OK: true, CheckedAt: now, Since: now}
	go c.monitor()
	return c, nil
}

// Prefix returns the namespace's key prefix, "/sorna/<namespace>/".
func (c *Client) Prefix() string { return c.prefix }

// Raw returns the underlying etcd client for leases, transactions and
// watches. Keys passed to it must include Prefix.
func (c *Client) Raw() *clientv3.Client { return c.cli }

func (c *Client) probe(ctx context.Context) error {
	_, err := c.cli.Get(ctx, c.prefix+"config/redis", clientv3.WithPrefix(), clientv3.WithCountOnly())
	return err
}

// monitor probes etcd every ProbeInterval until Close, logging transitions.
func (c *Client) monitor() {
	defer close(c.done)
	t := time.NewTicker(c.opts.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.ProbeInterval)
		err := c.probe(ctx)
		cancel()
		c.record(err)
	}
}

func (c *Client) record(err error) {
	now := time.Now()
	c.mu.Lock()
	was := c.health.OK
	c.health.OK, c.health.Err, c.health.CheckedAt = err == nil, err, now
	if was != c.health.OK {
		c.health.Since = now
	}
	c.mu.Unlock()

	switch {
	case was && err != nil:
		c.log.Error("etcd unreachable; transfers go on, and control calls that need etcd respond 503", "addr", c.opts.Endpoint, "err", err)
	case !was && err == nil:
		c.log.Info("etcd reachable again", "addr", c.opts.Endpoint)
	}
}

// Health returns the latest probe result.
func (c *Client) Health() Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.health
}

// Get reads one key relative to the namespace prefix. found is false when
// the key does not exist.
func (c *Client) Get(ctx context.Context, key string) (value string, found bool, err error) {
	resp, err := c.cli.Get(ctx, c.prefix+key)
	if err != nil {
		return "", false, c.wrap("get", key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", false, nil
	}
	return string(resp.Kvs[0].Value), true, nil
}

// GetMerged reads key from the node scope first, then the global scope.
func (c *Client) GetMerged(ctx context.Context, key string) (string, bool, error) {
	v, ok, err := c.Get(ctx, c.node+key)
	if err != nil || ok {
		return v, ok, err
	}
	return c.Get(ctx, key)
}

// GetPrefix reads every key under prefix (relative to the namespace) and
// returns them keyed by the part after prefix.
func (c *Client) GetPrefix(ctx context.Context, prefix string) (map[string]string, error) {
	resp, err := c.cli.Get(ctx, c.prefix+prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, c.wrap("get prefix", prefix, err)
	}
	out := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), c.prefix+prefix)] = string(kv.Value)
	}
	return out, nil
}

// Put writes one key relative to the namespace prefix.
func (c *Client) Put(ctx context.Context, key, value string, opts ...clientv3.OpOption) error {
	if _, err := c.cli.Put(ctx, c.prefix+key, value, opts...); err != nil {
		return c.wrap("put", key, err)
	}
	return nil
}

// Delete removes one key, or every key under it with clientv3.WithPrefix().
func (c *Client) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) error {
	if _, err := c.cli.Delete(ctx, c.prefix+key, opts...); err != nil {
		return c.wrap("delete", key, err)
	}
	return nil
}

func (c *Client) wrap(op, key string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || !c.Health().OK {
		return fmt.Errorf("etcd %s %s: %w: %w", op, key, ErrUnavailable, err)
	}
	return fmt.Errorf("etcd %s %s: %w", op, key, err)
}

// Close stops the health probe and closes the connection.
func (c *Client) Close() error {
	close(c.stop)
	<-c.done
	return c.cli.Close()
}
