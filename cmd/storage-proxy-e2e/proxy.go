package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proxyProcess is a storage-proxy binary started by the driver on a
// throw-away config: an embedded etcd member, one vfs volume and two
// worker processes, all on 127.0.0.1.
type proxyProcess struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

const (
	localVolume        = "local"
	localManagerSecret = "e2e-manager-secret"
	localSessionSecret = "e2e-session-secret"
)

// freePortPair returns a 127.0.0.1 port that was free a moment ago with
// port+1 free too, because the embedded etcd member takes the next port
// for its peer URL.
func freePortPair() (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		next, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		if err == nil {
			next.Close()
			return port, nil
		}
	}
	return 0, errors.New("no pair of free 127.0.0.1 ports found in 50 attempts")
}

// writeProxyConfig writes storage-proxy.toml into dir and returns its path
// and the target settings that reach the proxy. With certs, both APIs serve
// HTTPS with that certificate and key.
func writeProxyConfig(dir string, certs *tlsFiles) (string, target, error) {
	volumePath := filepath.Join(dir, "volumes", localVolume)
	if err := os.MkdirAll(volumePath, 0o755); err != nil {
		return "", target{}, err
	}
	var ports [3]int
	for i := range ports {
		port, err := freePortPair()
		if err != nil {
			return "", target{}, err
		}
		ports[i] = port
	}
	etcdPort, clientPort, managerPort := ports[0], ports[1], ports[2]
	if clientPort == etcdPort+1 || managerPort == etcdPort+1 || clientPort == managerPort {
		return "", target{}, fmt.Errorf("free ports overlap (etcd %d, client %d, manager %d); run again", etcdPort, clientPort, managerPort)
	}
	scheme, sslKeys := "http", "ssl-enabled = false"
	if certs != nil {
		scheme = "https"
		sslKeys = fmt.Sprintf("ssl-enabled = true\nssl-cert = %q\nssl-privkey = %q", certs.certFile, certs.keyFile)
	}

	config := fmt.Sprintf(`# Written by storage-proxy-e2e for one run; removed with its work dir.
[etcd]
namespace = "e2e"
addr = { host = "127.0.0.1", port = %d }
user = ""
password = ""
embedded = true
embedded-dir = "etcd"

[storage-proxy]
node-id = "e2e-storage-proxy"
num-proc = 2
pid-file = "storage-proxy.pid"
max-upload-size = "10g"
secret = %q
session-expire = "1h"
shutdown-grace = "20s"

[api.client]
service-addr = { host = "127.0.0.1", port = %d }
%s

[api.manager]
service-addr = { host = "127.0.0.1", port = %d }
%s
secret = %q

[debug]
enabled = false

[logging]
level = "INFO"
drivers = ["console"]

[logging.console]
colored = false
format = "simple"

[volume]

[volume.%s]
backend = "vfs"
path = %q
`, etcdPort, localSessionSecret, clientPort, sslKeys, managerPort, sslKeys, localManagerSecret, localVolume, volumePath)

	configPath := filepath.Join(dir, "storage-proxy.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return "", target{}, err
	}
	return configPath, target{
		clientURL:     scheme + "://127.0.0.1:" + strconv.Itoa(clientPort),
		managerURL:    scheme + "://127.0.0.1:" + strconv.Itoa(managerPort),
		managerSecret: localManagerSecret,
		volume:        localVolume,
	}, nil
}

// startProxy starts binary on the config at configPath with its output in
// proxy.log next to the config, and waits until both APIs return 200 for
// GET /. An https server must verify against pool (nil: the system roots).
// The environment is inherited, so BACKEND_IO_ENGINE reaches the proxy.
func startProxy(binary, configPath string, t target, pool *x509.CertPool) (*proxyProcess, error) {
	logPath := filepath.Join(filepath.Dir(configPath), "proxy.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()

	cmd := exec.Command(binary, "-f", configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	p := &proxyProcess{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()

	client := newHTTPClient(pool, 2*time.Second)
	for _, url := range []string{t.managerURL + "/", t.clientURL + "/"} {
		if err := p.waitReady(client, url, 60*time.Second); err != nil {
			p.kill()
			return nil, fmt.Errorf("%w\n%s", err, p.logTail(30))
		}
	}
	return p, nil
}

// waitReady polls GET url with client until it returns 200, the process
// exits or the timeout passes. A certificate that fails verification ends
// the wait at once, because polling cannot change it.
func (p *proxyProcess) waitReady(client *http.Client, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		var certErr *tls.CertificateVerificationError
		if errors.As(err, &certErr) {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		lastErr = err
		select {
		case <-p.exited:
			return fmt.Errorf("storage-proxy exited during start-up (%v)", p.waitErr)
		case <-tick.C:
		}
	}
	return fmt.Errorf("GET %s did not return 200 within %s (last error: %v)", url, timeout, lastErr)
}

// stop sends SIGTERM and requires exit status 0 within timeout.
func (p *proxyProcess) stop(timeout time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("send SIGTERM to storage-proxy: %w", err)
	}
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("storage-proxy did not exit within %s of SIGTERM; killed it\n%s", timeout, p.logTail(30))
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("storage-proxy exited with status %d after SIGTERM, want 0\n%s", code, p.logTail(30))
	}
	return nil
}

// kill ends the process with SIGKILL if it still runs and waits for it.
func (p *proxyProcess) kill() {
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// engineLine returns the proxy's "io engine selected" log line, or "".
func (p *proxyProcess) engineLine() string {
	for _, line := range p.logLines() {
		if strings.Contains(line, "io engine selected") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// tlsCopyLogLine is the text of the line that a worker logs when its client
// API serves TLS.
const tlsCopyLogLine = "client API uses TLS; download bodies are copied through user space instead of sendfile"

// waitLogLine polls the proxy's log until a line contains text, and returns
// that line. A worker's start-up lines may arrive after the readiness check
// passed, because another worker can have returned the 200.
func (p *proxyProcess) waitLogLine(text string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range p.logLines() {
			if strings.Contains(line, text) {
				return strings.TrimSpace(line), nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the proxy did not log %q within %s of start-up\n%s", text, timeout, p.logTail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logTail returns the last n lines of the proxy's log, indented.
func (p *proxyProcess) logTail(n int) string {
	lines := p.logLines()
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "storage-proxy log (" + p.logPath + "), last lines:\n    " + strings.Join(lines, "\n    ")
}

func (p *proxyProcess) logLines() []string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	for scanner.Scan() {
		lines = append(lines, scanner.Text())
	}
	return lines
}
