package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the storage-proxy executable built once for these tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "storage-proxy-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "storage-proxy")
	build := exec.Command("go", "build", "-ldflags=-checklinkname=0 -X main.version=test", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building storage-proxy:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// handedOut holds the ports freePort returned, so that two proxies started
// one after the other never get the same port before either has bound it.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePort returns a port that was free a moment ago, with port+1 free too
// (the embedded etcd member's peer port). Neither was returned before.
func freePort(t *testing.T) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if handedOut.ports[port] || handedOut.ports[port+1] {
			continue
		}
		if next, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1)); err == nil {
			next.Close()
			handedOut.ports[port], handedOut.ports[port+1] = true, true
			return port
		}
	}
	t.Fatal("no free port pair")
	return 0
}

type testProxy struct {
	dir                 string
	clientURL, mgrURL   string
	pidFile, configFile string
	cmd                 *exec.Cmd
	stdout, stderr      *syncBuffer
	exited              chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const managerSecret = "test-manager-secret"

// writeConfig writes a config with an embedded etcd member on free ports, a
// vfs volume in the temp dir and numProc workers.
func writeConfig(t *testing.T, numProc int, etcdEmbedded bool) *testProxy {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "volumes", "local"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := &testProxy{dir: dir, pidFile: filepath.Join(dir, "sp.pid"), configFile: filepath.Join(dir, "storage-proxy.toml")}
	etcdPort, clientPort, mgrPort := freePort(t), freePort(t), freePort(t)
	p.clientURL = "http://127.0.0.1:" + strconv.Itoa(clientPort)
	p.mgrURL = "http://127.0.0.1:" + strconv.Itoa(mgrPort)
	cfg := fmt.Sprintf(`[etcd]
namespace = "test"
addr = { host = "127.0.0.1", port = %d }
embedded = %t
embedded-dir = "etcd"

[storage-proxy]
node-id = "test-node"
num-proc = %d
pid-file = "sp.pid"
secret = "test-session-secret"
session-expire = "1h"
shutdown-grace = "10s"

[api.client]
service-addr = { host = "127.0.0.1", port = %d }
ssl-enabled = false

[api.manager]
service-addr = { host = "127.0.0.1", port = %d }
ssl-enabled = false
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

[volume.local]
backend = "vfs"
path = "volumes/local"
`, etcdPort, etcdEmbedded, numProc, clientPort, mgrPort, managerSecret)
	if err := os.WriteFile(p.configFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *testProxy) start(t *testing.T, args ...string) {
	t.Helper()
	p.stdout, p.stderr = &syncBuffer{}, &syncBuffer{}
	p.cmd = exec.Command(binary, append([]string{"-f", p.configFile}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.Env = withoutBackendEnv()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.exited
		}
		if t.Failed() {
			t.Logf("proxy stderr:\n%s", p.stderr.String())
		}
	})
}

func withoutBackendEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BACKEND_") && !strings.HasPrefix(kv, "STORAGE_PROXY_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitStatus polls GET url until the response is 200 or the deadline passes.
func waitStatus(t *testing.T, url string, within time.Duration) map[string]any {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	for {
		resp, err := client.Get(url)
		if err == nil {
			var body map[string]any
			derr := json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == 200 && derr == nil {
				return body
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s did not respond 200 within %s (last error %v)", url, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestServesStatusOnBothListeners(t *testing.T) {
	p := writeConfig(t, 2, true)
	p.start(t)
	client := waitStatus(t, p.clientURL+"/", 10*time.Second)
	mgr := waitStatus(t, p.mgrURL+"/", 10*time.Second)
	if client["status"] != "ok" || client["type"] != "client-facing" || client["storage-proxy"] != "test" {
		t.Errorf("client GET / = %v", client)
	}
	if mgr["status"] != "ok" || mgr["type"] != "manager-facing" || mgr["storage-proxy"] != "test" {
		t.Errorf("manager GET / = %v", mgr)
	}
}

// children returns the pids whose parent is pid.
func children(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name in field 2 may contain spaces; fields after
		// the closing parenthesis are fixed.
		rest := string(b[bytes.LastIndexByte(b, ')')+2:])
		fields := strings.Fields(rest)
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

func TestProcessModelRestartAndStop(t *testing.T) {
	p := writeConfig(t, 2, true)
	p.start(t)
	waitStatus(t, p.clientURL+"/", 10*time.Second)

	sup := p.cmd.Process.Pid
	workers := children(sup)
	if len(workers) != 2 {
		t.Fatalf("supervisor %d has children %v, want 2 workers", sup, workers)
	}
	pid, err := os.ReadFile(p.pidFile)
	if err != nil || string(pid) != strconv.Itoa(sup) {
		t.Fatalf("pid file = %q, %v; want %d without newline", pid, err, sup)
	}

	victim := workers[0]
	syscall.Kill(victim, syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for {
		now := children(sup)
		if len(now) == 2 && now[0] != victim && now[1] != victim {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %d not replaced: children %v", victim, now)
		}
		time.Sleep(20 * time.Millisecond)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	for i := 0; i < 20; i++ {
		resp, err := client.Get(p.clientURL + "/")
		if err != nil {
			t.Fatalf("GET %d after the restart: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if !strings.Contains(p.stderr.String(), "restarting") {
		t.Errorf("no restart log line in:\n%s", p.stderr.String())
	}

	remaining := children(sup)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("supervisor did not exit within 20 s of SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	for _, w := range remaining {
		if err := syscall.Kill(w, 0); err == nil {
			t.Errorf("worker %d still running after the supervisor exited", w)
		}
	}
	if _, err := os.Stat(p.pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
}

func TestEtcdUnreachableAtStart(t *testing.T) {
	p := writeConfig(t, 1, false)
	p.start(t)
	start := time.Now()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after start with etcd down")
	}
	if code := p.cmd.ProcessState.ExitCode(); code == 0 {
		t.Errorf("exit status 0 with etcd down")
	}
	cfg, _ := os.ReadFile(p.configFile)
	port := strings.TrimSpace(strings.Split(strings.Split(string(cfg), "port = ")[1], " ")[0])
	if !strings.Contains(p.stderr.String(), "127.0.0.1:"+port) {
		t.Errorf("stderr does not name the etcd address 127.0.0.1:%s:\n%s", port, p.stderr.String())
	}
	t.Logf("exited after %s", time.Since(start))
}

func TestCheckConfigSample(t *testing.T) {
	sample, err := os.ReadFile("../../configs/sample.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	vol := filepath.Join(dir, "vfroot")
	os.MkdirAll(vol, 0o755)
	copied := strings.Replace(string(sample), `path = "/vfroot/local"`, `path = "`+vol+`"`, 1)
	if copied == string(sample) {
		t.Fatal("sample.toml has no volume path line to point at the temp dir")
	}
	path := filepath.Join(dir, "storage-proxy.toml")
	os.WriteFile(path, []byte(copied), 0o644)

	out, err := exec.Command(binary, "check-config", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
	for _, secret := range []string{"secure-token-for-users-download-upload-sessions", "secure-token-to-authenticate-manager-request"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("check-config printed the secret %q", secret)
		}
	}
	if !strings.Contains(string(out), "max-upload-size") {
		t.Errorf("check-config output lacks the effective config:\n%s", out)
	}
}

func TestCheckConfigBroken(t *testing.T) {
	bad, _ := filepath.Glob("../../control/config/testdata/bad/*.toml")
	if len(bad) < 15 {
		t.Fatalf("found %d broken configs, want at least 15", len(bad))
	}
	for _, path := range bad {
		path, _ := filepath.Abs(path)
		name := strings.TrimSuffix(filepath.Base(path), ".toml")
		t.Run(name, func(t *testing.T) {
			golden, err := os.ReadFile(strings.TrimSuffix(path, ".toml") + ".golden")
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(binary, "check-config", "-f", path)
			cmd.Dir = filepath.Dir(path)
			cmd.Env = withoutBackendEnv()
			out, err := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Fatalf("exit status %d, want 1 (%v)\n%s", code, err, out)
			}
			// The first line of the golden text names the key, and it must
			// appear in the output the operator reads.
			first := strings.SplitN(strings.TrimSpace(string(golden)), "\n", 2)[0]
			first = strings.ReplaceAll(first, "$TESTDATA", filepath.Dir(filepath.Dir(path)))
			if !strings.Contains(string(out), first) {
				t.Errorf("output lacks %q:\n%s", first, out)
			}
		})
	}
}
