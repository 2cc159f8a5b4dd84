package cluster

import (
	"context"
	"fmt"
	"regexp"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ProxyEntry is the record of one storage proxy that the manager reads under
// volumes/proxies/<name>/.
type ProxyEntry struct {
	ClientAPI  string // base URL of the client API as browsers reach it
	ManagerAPI string // base URL of the manager API
	Secret     string // the manager secret
	SSLVerify  bool   // whether the manager verifies the manager API's certificate
}

// proxyName is the manager's slug rule for proxy names.
var proxyName = regexp.MustCompile(`^[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*$`)

// Registration keeps a ProxyEntry in etcd under a lease until Close. When
// the lease is lost (an etcd outage longer than its TTL), the entry is
// written again once etcd is back.
type Registration struct {
	c      *Client
	name   string
	keys   map[string]string
	ttl    int64
	cancel context.CancelFunc
	done   chan struct{}
}

// Register writes entry under volumes/proxies/<name>/ with a lease of ttl and
// keeps the lease alive in the background.
func (c *Client) Register(ctx context.Context, name string, entry ProxyEntry, ttl time.Duration) (*Registration, error) {
	if !proxyName.MatchString(name) {
		return nil, fmt.Errorf("register proxy: name %q is not a slug of letters, digits, single '-' or '_'", name)
	}
	if ttl < 2*time.Second {
		ttl = 2 * time.Second
	}

	prefix := "volumes/proxies/" + name + "/"
	sslVerify := "false"
	if entry.SSLVerify {
		sslVerify = "true"
	}
	r := &Registration{
		c:    c,
		name: name,
		ttl:  int64(ttl / time.Second),
		keys: map[string]string{
			prefix + "client_api":  entry.ClientAPI,
			prefix + "manager_api": entry.ManagerAPI,
			prefix + "secret":      entry.Secret,
			prefix + "ssl_verify":  sslVerify,
		},
		done: make(chan struct{}),
	}

	runCtx, cancel := context.WithCancel(context.Background())
	keepalive, err := r.write(ctx, runCtx)
	if err != nil {
		cancel()
		return nil, err
	}
	r.cancel = cancel
	go r.keep(runCtx, keepalive)
	return r, nil
}

// write grants a lease and puts every key under it in one transaction; the
// lease is kept alive until life ends.
func (r *Registration) write(ctx, life context.Context) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	cli := r.c.cli
	lease, err := cli.Grant(ctx, r.ttl)
	if err != nil {
		return nil, r.c.wrap("grant lease for", r.name, err)
	}
	var ops []clientv3.Op
	for k, v := range r.keys {
		ops = append(ops, clientv3.OpPut(r.c.prefix+k, v, clientv3.WithLease(lease.ID)))
	}
	if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		return nil, r.c.wrap("register", r.name, err)
	}
	ch, err := cli.KeepAlive(life, lease.ID)
	if err != nil {
		return nil, r.c.wrap("keep lease of", r.name, err)
	}
	return ch, nil
}

func (r *Registration) keep(ctx context.Context, ch <-chan *clientv3.LeaseKeepAliveResponse) {
	defer close(r.done)
	backoff := time.Second
	for {
		for range ch {
			backoff = time.Second
		}
		if ctx.Err() != nil {
			return
		}
		r.c.log.Warn("proxy registration lease lost; registering again", "name", r.name)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			next, err := r.write(wctx, ctx)
			cancel()
			if err == nil {
				ch = next
				r.c.log.Info("proxy registered again", "name", r.name)
				break
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}
}

// Close stops the keep-alive and removes the entry from etcd.
func (r *Registration) Close(ctx context.Context) error {
	r.cancel()
	<-r.done
	var ops []clientv3.Op
	for k := range r.keys {
		ops = append(ops, clientv3.OpDelete(r.c.prefix+k))
	}
	if _, err := r.c.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		return r.c.wrap("unregister", r.name, err)
	}
	return nil
}
