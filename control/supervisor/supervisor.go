// Package supervisor runs the proxy's process model: one supervisor process
// that owns the manager API, etcd and background work, and num-proc worker
// processes that serve the client API.
//
// The supervisor binds one SO_REUSEPORT socket per worker slot before it
// drops privileges. Slot i's socket goes to worker i and to whatever worker
// replaces it, so ports below 1024 keep working across restarts. The kernel
// spreads new connections over the slots. Each worker also gets a ready
// pipe, to which it writes one byte once it serves. It also gets the write
// end of a pipe for its log records. The supervisor relays them through its
// own log drivers, so only one process writes each log file.
//
// Lifecycle: Start launches every worker and waits until each is ready. A
// worker that exits on its own is restarted after a backoff (100 ms
// doubling up to 10 s, reset after a minute of uptime) with one log line
// each time. Stop sends SIGTERM to every worker, waits up to the grace
// period for them to finish in-flight requests, then sends SIGKILL to the
// rest and reaps them.
//
// This package imports nothing from this module.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Environment variables and descriptor numbers of the worker protocol.
const (
	// EnvWorkerIndex is the worker's slot number, 0-based. When it is set,
	// the binary runs as a worker.
	EnvWorkerIndex = "STORAGE_PROXY_WORKER"
	// LogFd is the descriptor a worker writes its JSON log lines to.
	LogFd = 3
	// ListenerFd is the descriptor of the worker's client API socket.
	ListenerFd = 4
	// ReadyFd is the descriptor a worker closes (or writes a byte to) once
	// it serves requests.
	ReadyFd = 5
)

// Options configures a Supervisor.
type Options struct {
	// Path is the executable to start as a worker; Args are its arguments
	// (without argv[0]) and Env its environment, to which EnvWorkerIndex is
	// added.
	Path string
	Args []string
	Env  []string
	// Listeners holds one listening socket per worker slot; its length is
	// the number of workers.
	Listeners []*os.File
	// Relay consumes one worker's log stream until EOF. Nil discards it.
	Relay func(r io.Reader, worker, pid int)
	// Logger receives start, exit and restart lines.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the delay before a restart; zero
	// means 100 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
	// ReadyTimeout bounds how long Start waits for every worker to report
	// that it serves; zero means 30 s.
	ReadyTimeout time.Duration
}

// Supervisor starts and watches the worker processes.
type Supervisor struct {
	opts Options
	log  *slog.Logger

	stopping chan struct{}
	wg       sync.WaitGroup

	// mu guards the fields below.
	mu      sync.Mutex
	workers []*exec.Cmd
	up      []bool
}

// New returns a Supervisor; Start launches its workers.
func New(opts Options) *Supervisor {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := len(opts.Listeners)
	return &Supervisor{opts: opts, log: log, stopping: make(chan struct{}), workers: make([]*exec.Cmd, n), up: make([]bool, n)}
}

// Start launches one worker per listener and waits until each reports that
// it serves. A worker that cannot be launched, exits during start-up, or is
// not ready within ReadyTimeout is an error, and every worker is stopped.
func (s *Supervisor) Start() error {
	var all []started
	for i := range s.opts.Listeners {
		cmd, ready, err := s.launch(i)
		if err != nil {
			s.abort(all)
			return err
		}
		all = append(all, started{cmd, ready})
	}

	deadline := time.Now().Add(s.opts.ReadyTimeout)
	var firstErr error
	for i, w := range all {
		w.ready.SetReadDeadline(deadline)
		_, err := w.ready.Read(make([]byte, 1))
		w.ready.Close()
		// EOF without a byte means the worker exited (or closed the pipe
		// without reporting); a ready worker writes one byte first.
		if err != nil && firstErr == nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				firstErr = fmt.Errorf("worker %d not ready after %s", i, s.opts.ReadyTimeout)
			} else {
				firstErr = fmt.Errorf("worker %d exited during start-up", i)
			}
		}
	}
	if firstErr != nil {
		s.abortStarted()
		return firstErr
	}
	for i, w := range all {
		s.wg.Add(1)
		go s.watch(i, w.cmd)
	}
	return nil
}

// started is a worker launched by Start and the read end of its ready pipe.
type started struct {
	cmd   *exec.Cmd
	ready *os.File
}

// abort kills workers launched by a failed Start before they are watched.
func (s *Supervisor) abort(launched []started) {
	for _, w := range launched {
		w.ready.Close()
	}
	s.abortStarted()
}

func (s *Supervisor) abortStarted() {
	s.mu.Lock()
	select {
	case <-s.stopping:
	default:
		close(s.stopping)
	}
	cmds := append([]*exec.Cmd{}, s.workers...)
	s.mu.Unlock()
	for _, cmd := range cmds {
		if cmd != nil {
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
		}
	}
	s.mu.Lock()
	for i := range s.up {
		s.up[i] = false
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Supervisor) launch(i int) (*exec.Cmd, *os.File, error) {
	logR, logW, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("start worker %d: %w", i, err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		logR.Close()
		logW.Close()
		return nil, nil, fmt.Errorf("start worker %d: %w", i, err)
	}
	cmd := exec.Command(s.opts.Path, s.opts.Args...)
	cmd.Env = append(append([]string{}, s.opts.Env...), EnvWorkerIndex+"="+strconv.Itoa(i))
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{logW, s.opts.Listeners[i], readyW}
	// A worker must not outlive a supervisor that was killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: false}
	err = cmd.Start()
	logW.Close()
	readyW.Close()
	if err != nil {
		logR.Close()
		readyR.Close()
		return nil, nil, fmt.Errorf("start worker %d: %w", i, err)
	}

	pid := cmd.Process.Pid
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer logR.Close()
		if s.opts.Relay != nil {
			s.opts.Relay(logR, i, pid)
		} else {
			io.Copy(io.Discard, logR)
		}
	}()

	s.mu.Lock()
	s.workers[i], s.up[i] = cmd, true
	s.mu.Unlock()
	s.log.Info("worker started", "worker", i, "pid", pid)
	return cmd, readyR, nil
}

// watch waits for worker i and restarts it until Stop.
func (s *Supervisor) watch(i int, cmd *exec.Cmd) {
	defer s.wg.Done()
	backoff := s.opts.MinBackoff
	for {
		started := time.Now()
		err := cmd.Wait()
		s.mu.Lock()
		s.up[i] = false
		s.mu.Unlock()

		select {
		case <-s.stopping:
			s.log.Info("worker stopped", "worker", i, "pid", cmd.Process.Pid, "status", exitStatus(err))
			return
		default:
		}

		if time.Since(started) > time.Minute {
			backoff = s.opts.MinBackoff
		}
		s.log.Error("worker exited; restarting", "worker", i, "pid", cmd.Process.Pid, "status", exitStatus(err), "backoff", backoff)
		for {
			select {
			case <-s.stopping:
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, s.opts.MaxBackoff)
			next, ready, err := s.launch(i)
			if err == nil {
				// A restarted worker takes over its socket whenever it is
				// ready; nothing waits for it here.
				ready.Close()
				cmd = next
				break
			}
			s.log.Error("worker restart failed", "worker", i, "err", err, "backoff", backoff)
		}
	}
}

func exitStatus(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	if err != nil {
		return err.Error()
	}
	return "exit status 0"
}

// Workers returns the pids of the running workers and how many slots there
// are.
func (s *Supervisor) Workers() (pids []int, slots int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, cmd := range s.workers {
		if s.up[i] && cmd != nil {
			pids = append(pids, cmd.Process.Pid)
		}
	}
	return pids, len(s.workers)
}

// Stop sends SIGTERM to every worker and waits for them to exit; when ctx
// ends first, the remaining workers get SIGKILL. It is safe to call twice.
func (s *Supervisor) Stop(ctx context.Context) {
	s.mu.Lock()
	select {
	case <-s.stopping:
	default:
		close(s.stopping)
	}
	s.signalLocked(syscall.SIGTERM)
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	s.log.Warn("workers did not stop within the grace period; killing them")
	s.mu.Lock()
	s.signalLocked(syscall.SIGKILL)
	s.mu.Unlock()
	<-done
}

func (s *Supervisor) signalLocked(sig syscall.Signal) {
	for i, cmd := range s.workers {
		if s.up[i] && cmd != nil && cmd.Process != nil {
			cmd.Process.Signal(sig)
		}
	}
}

// ListenReusePort binds n TCP sockets on addr with SO_REUSEPORT and returns
// them as files to pass to workers. The listeners are closed; the files keep
// the sockets open.
func ListenReusePort(addr string, n int) ([]*os.File, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	files := make([]*os.File, 0, n)
	for i := 0; i < n; i++ {
		ln, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		f, err := ln.(*net.TCPListener).File()
		ln.Close()
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		files = append(files, f)
		if i == 0 {
			// Later sockets must bind the port the first one got, which
			// matters when addr requests port 0.
			addr = listenerAddr(f)
		}
	}
	return files, nil
}

func listenerAddr(f *os.File) string {
	sa, err := unix.Getsockname(int(f.Fd()))
	if err != nil {
		return ""
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *unix.SockaddrInet6:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	}
	return ""
}

// ListenerAddr returns the local address of a socket from ListenReusePort.
func ListenerAddr(f *os.File) string { return listenerAddr(f) }
