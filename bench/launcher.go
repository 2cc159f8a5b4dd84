package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// launcher starts every process of a run and stops each by its PID: on a
// normal end, on a failure and on SIGINT or SIGTERM.
type launcher struct {
	logDir string

	// mu guards running and stopped.
	mu      sync.Mutex
	running []*process
	stopped bool
}

// process is one started program. Its process group id equals its PID,
// so a program that forks (nginx, the proxy's workers) is stopped whole.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// start runs argv with its output in <logDir>/<name>.log. env is added to
// the harness's own environment, and BACKEND_ variables of the harness's
// environment are not passed on.
func (l *launcher) start(name string, env []string, argv ...string) (*process, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return nil, errors.New("the harness is stopping")
	}

	logPath := fmt.Sprintf("%s/%s.log", l.logDir, name)
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(environWithout("BACKEND_"), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, argv[0], err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	l.running = append(l.running, p)
	return p, nil
}

// stop sends SIGTERM to p and, after grace, SIGKILL to its process group.
func (l *launcher) stop(p *process, grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		fmt.Printf("%s (pid %d) still running %s after SIGTERM; sending SIGKILL to its process group\n", p.name, p.pid(), grace)
		syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.exited
	}
	// A forked child that outlived its parent would keep the port.
	syscall.Kill(-p.pid(), syscall.SIGKILL)
}

// stopAll stops every process still running, newest first, and makes
// later start calls fail.
func (l *launcher) stopAll() {
	l.mu.Lock()
	l.stopped = true
	procs := l.running
	l.running = nil
	l.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		l.stop(procs[i], 20*time.Second)
	}
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// alive reports whether the process has not exited.
func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// logTail returns the last n lines of the process's output.
func (p *process) logTail(n int) string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	for scanner.Scan() {
		lines = append(lines, scanner.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n    ")
}

// waitHTTP polls GET url until any HTTP response arrives, the process
// exits or timeout passes.
func (p *process) waitHTTP(url string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		lastErr = err
		if !p.alive() {
			return fmt.Errorf("%s exited during start-up (%v); last output:\n    %s", p.name, p.waitErr, p.logTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: GET %s got no response within %s (last error: %v); last output:\n    %s", p.name, url, timeout, lastErr, p.logTail(20))
}

// environWithout returns the harness's environment without the variables
// whose names start with prefix.
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// freePort returns a 127.0.0.1 port that was free a moment ago. With pair
// set, port+1 was free too, for the embedded etcd member's peer URL.
func freePort(pair bool) (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !pair {
			return port, nil
		}
		next, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		if err == nil {
			next.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free 127.0.0.1 port found in 50 attempts")
}
