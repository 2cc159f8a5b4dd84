package cluster

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Member is an in-process, single-member etcd cluster.
type Member struct {
	etcd *embed.Etcd
	// ClientAddr is the host:port clients connect to.
	ClientAddr string
}

// StartMember starts an etcd member that keeps its data in dir and serves
// clients on clientAddr (host:port, which must be a loopback address). Its
// peer port is the client port plus one. It returns once the member can
// serve requests, or fails after timeout.
func StartMember(dir, clientAddr string, timeout time.Duration) (*Member, error) {
	host, portText, err := net.SplitHostPort(clientAddr)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: invalid address %q: %w", clientAddr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("embedded etcd: address %q is not a loopback address; the embedded member is for single-node development only", clientAddr)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port <= 0 || port >= 65535 {
		return nil, fmt.Errorf("embedded etcd: invalid port in %q", clientAddr)
	}

	cfg := embed.NewConfig()
	cfg.Name = "storage-proxy-dev"
	cfg.Dir = dir
	// Start-up failures come back from StartEtcd; at "error" the member
	// also logs a few harmless "server closed" lines on every Close.
	cfg.LogLevel = "fatal"
	cfg.LogOutputs = []string{"stderr"}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort(host, portText)}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort(host, strconv.Itoa(port+1))}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.Name + "=" + peerURL.String()

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd on %s: %w", clientAddr, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd on %s: %w", clientAddr, err)
	case <-time.After(timeout):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd on %s: not ready after %s", clientAddr, timeout)
	}
	return &Member{etcd: e, ClientAddr: clientAddr}, nil
}

// Close stops the member.
func (m *Member) Close() { m.etcd.Close() }
