package supervisor

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain turns the test binary into a worker when the supervisor starts
// it: it serves "worker <pid>" on the inherited socket until SIGTERM.
func TestMain(m *testing.M) {
	if os.Getenv(EnvWorkerIndex) != "" {
		runTestWorker()
		return
	}
	goleak.VerifyTestMain(m)
}

func runTestWorker() {
	logw := os.NewFile(LogFd, "log")
	fmt.Fprintf(logw, "hello from %d\n", os.Getpid())
	ln, err := net.FileListener(os.NewFile(ListenerFd, "listener"))
	if err != nil {
		os.Exit(3)
	}
	ready := os.NewFile(ReadyFd, "ready")
	ready.Write([]byte{1})
	ready.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "worker %d", os.Getpid())
	})}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() { <-sig; srv.Shutdown(context.Background()) }()
	srv.Serve(ln)
	os.Exit(0)
}

func get(t *testing.T, client *http.Client, url string) (string, error) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestWorkerRestartKeepsPort(t *testing.T) {
	files, err := ListenReusePort("127.0.0.1:0", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	addr := ListenerAddr(files[0])
	if ListenerAddr(files[1]) != addr {
		t.Fatalf("slot addresses differ: %s vs %s", addr, ListenerAddr(files[1]))
	}

	lines := make(chan string, 16)
	s := New(Options{
		Path:       os.Args[0],
		Env:        os.Environ(),
		Listeners:  files,
		MinBackoff: 10 * time.Millisecond,
		Relay: func(r io.Reader, worker, pid int) {
			b, _ := io.ReadAll(r)
			lines <- string(b)
		},
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	pids, slots := s.Workers()
	if len(pids) != 2 || slots != 2 {
		t.Fatalf("Workers() = %v, %d; want 2 running", pids, slots)
	}

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	url := "http://" + addr + "/"
	if _, err := get(t, client, url); err != nil {
		t.Fatalf("GET before kill: %v", err)
	}

	victim := pids[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		now, _ := s.Workers()
		if len(now) == 2 && now[0] != victim && now[1] != victim {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("killed worker %d not replaced: %v", victim, now)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 20; i++ {
		if body, err := get(t, client, url); err != nil || body == "worker "+strconv.Itoa(victim) {
			t.Fatalf("GET %d after restart: %q, %v", i, body, err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Stop(ctx)
	if pids, _ := s.Workers(); len(pids) != 0 {
		t.Fatalf("workers still running after Stop: %v", pids)
	}
	if len(lines) < 3 {
		t.Errorf("relayed %d log streams, want 3 (two workers and one replacement)", len(lines))
	}
}

func TestStartFailsWhenWorkerExits(t *testing.T) {
	files, err := ListenReusePort("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer files[0].Close()
	s := New(Options{Path: "/bin/false", Listeners: files, ReadyTimeout: 5 * time.Second})
	start := time.Now()
	if err := s.Start(); err == nil {
		t.Fatal("Start succeeded with a worker that exits at once")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Start took %s to notice the exit", d)
	}
	if pids, _ := s.Workers(); len(pids) != 0 {
		t.Errorf("workers left running: %v", pids)
	}
}

func TestPIDFile(t *testing.T) {
	p := t.TempDir() + "/sp.pid"
	if err := WritePIDFile(p); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if string(b) != strconv.Itoa(os.Getpid()) {
		t.Errorf("pid file = %q", b)
	}
	if err := RemovePIDFile(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("pid file still there: %v", err)
	}
	if err := RemovePIDFile("/dev/null"); err != nil {
		t.Errorf("RemovePIDFile(/dev/null): %v", err)
	}
	if _, err := os.Stat("/dev/null"); err != nil {
		t.Fatalf("/dev/null removed: %v", err)
	}
}
