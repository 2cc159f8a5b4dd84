package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// uploadProtocol is the request sequence a server takes a file with.
type uploadProtocol int

const (
	uploadNone  uploadProtocol = iota
	uploadPut                  // PUT /upload/NAME with the whole body
	uploadTus                  // tus POST (creation), then PATCH; small files in one POST (creation-with-upload)
	uploadProxy                // manager session (POST /folder/file/upload), then tus PATCH /upload?token=
)

// server is one server under test, started by the harness and listening
// on 127.0.0.1.
type server struct {
	name string
	proc *process
	addr string // host:port of the data API

	// filesPrefix is prepended to a dataset path for GET, "" when the
	// server does not serve downloads. treePrefix is the same for a folder
	// as one stream.
	filesPrefix, treePrefix string

	upload     uploadProtocol
	uploadPath string // "/upload/" for PUT, the tus base path for tus
	uploadDir  string // folder of finished uploads, emptied after each run

	// proxy is set for the storage proxy only.
	proxy *proxyInstance
}

// pids returns the server's processes: the started one and all below it
// (nginx workers, proxy workers).
func (s *server) pids() []int {
	return append([]int{s.proc.pid()}, descendants(s.proc.pid())...)
}

// memoryPIDs returns the processes whose peak RSS is reported: the
// proxy's workers (the supervisor also holds etcd), every process of any
// other server.
func (s *server) memoryPIDs() []int {
	if s.proxy != nil {
		return descendants(s.proc.pid())
	}
	return s.pids()
}

func (s *server) cpuSeconds() float64 {
	total := 0.0
	for _, pid := range s.pids() {
		total += cpuSeconds(pid)
	}
	return total
}

// downloadTarget returns the request target that downloads rel, a path of
// the dataset.
func (s *server) downloadTarget(rel string) (string, error) {
	if s.proxy != nil {
		return s.proxy.downloadTarget(dataFolder, rel, false)
	}
	return s.filesPrefix + rel, nil
}

// treeTarget returns the request target that streams the folder rel.
func (s *server) treeTarget(rel string) (string, error) {
	if s.proxy != nil {
		return s.proxy.downloadTarget(dataFolder, rel, true)
	}
	return s.treePrefix + rel, nil
}

// clearUploads removes what uploads left, outside any timed part.
func (s *server) clearUploads() error {
	entries, err := os.ReadDir(s.uploadDir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.uploadDir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// peerSet starts the peers and limits; each start that fails is reported
// and skipped.
type peerSet struct {
	launch *launcher
	opts   *options
	work   string // the run's temp folder
	data   string // the dataset root
}

func (p *peerSet) skip(name string, err error) {
	fmt.Printf("skipped   %-16s %v\n", name, err)
}

func (p *peerSet) folder(name string) (string, error) {
	dir := filepath.Join(p.work, name)
	return dir, os.MkdirAll(dir, 0o755)
}

// startSelf starts this harness's own `serve` subcommand.
func (p *peerSet) startSelf(kind string) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	uploads, err := p.folder("uploads-" + kind)
	if err != nil {
		return nil, err
	}
	port, err := freePort(false)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	proc, err := p.launch.start(kind, nil, self, "serve", "-kind", kind, "-addr", addr, "-root", p.data, "-upload-dir", uploads)
	if err != nil {
		return nil, err
	}
	if err := proc.waitHTTP("http://"+addr+"/", 20*time.Second); err != nil {
		return nil, err
	}
	return &server{name: kind, proc: proc, addr: addr, upload: uploadPut, uploadPath: "/upload/", uploadDir: uploads}, nil
}

// startLimits returns the limit's two download paths and its upload path,
// all served by one process.
func (p *peerSet) startLimits() []*server {
	base, err := p.startSelf("limit")
	if err != nil {
		p.skip("limit", err)
		return nil
	}
	sendfile := *base
	sendfile.name, sendfile.filesPrefix, sendfile.treePrefix, sendfile.upload = "limit-sendfile", "/sf/", "/tree/", uploadNone
	copying := *base
	copying.name, copying.filesPrefix, copying.upload = "limit-copy", "/cp/", uploadNone
	splice := *base
	splice.name = "limit-splice"
	return []*server{&sendfile, &copying, &splice}
}

func (p *peerSet) startNetHTTP() *server {
	s, err := p.startSelf("nethttp")
	if err != nil {
		p.skip("nethttp", err)
		return nil
	}
	s.name, s.filesPrefix, s.treePrefix = "net/http", "/files/", "/tree/"
	return s
}

func (p *peerSet) startNginx() *server {
	binary, err := p.ensureCommand("nginx", "nginx")
	if err != nil {
		p.skip("nginx", err)
		return nil
	}
	prefix, err := p.folder("nginx")
	if err != nil {
		p.skip("nginx", err)
		return nil
	}

	port, err := freePort(false)
	if err != nil {
		p.skip("nginx", err)
		return nil
	}
	conf := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConfig, prefix, port, p.data), 0o644); err != nil {
		p.skip("nginx", err)
		return nil
	}

	// -c and -p keep the distribution's default site and paths out.
	proc, err := p.launch.start("nginx", nil, binary, "-c", conf, "-p", prefix+"/")
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err == nil {
		err = proc.waitHTTP("http://"+addr+"/", 20*time.Second)
	}
	if err != nil {
		p.skip("nginx", err)
		return nil
	}
	return &server{name: "nginx", proc: proc, addr: addr, filesPrefix: "/files/"}
}

func (p *peerSet) startAiohttp() *server {
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import aiohttp").Run(); err != nil {
		if _, err := p.ensureCommand("python3-aiohttp", ""); err != nil {
			p.skip("aiohttp", err)
			return nil
		}
		if err := exec.Command(python, "-c", "import aiohttp").Run(); err != nil {
			p.skip("aiohttp", fmt.Errorf("%s cannot import aiohttp after installing python3-aiohttp: %w", python, err))
			return nil
		}
	}

	dir, err := p.folder("aiohttp")
	uploads := filepath.Join(dir, "uploads")
	if err == nil {
		err = os.MkdirAll(uploads, 0o755)
	}
	script := filepath.Join(dir, "server.py")
	if err == nil {
		err = os.WriteFile(script, []byte(aiohttpServer), 0o644)
	}
	port, perr := freePort(false)
	if err == nil {
		err = perr
	}

	var proc *process
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err == nil {
		proc, err = p.launch.start("aiohttp", nil, python, script, p.data, uploads, strconv.Itoa(port))
	}
	if err == nil {
		err = proc.waitHTTP("http://"+addr+"/", 30*time.Second)
	}
	if err != nil {
		p.skip("aiohttp", err)
		return nil
	}
	return &server{name: "aiohttp", proc: proc, addr: addr, filesPrefix: "/files/", treePrefix: "/tree/",
		upload: uploadPut, uploadPath: "/upload/", uploadDir: uploads}
}

// tusdVersion is the tusd release the harness builds; it is not a
// dependency of the module.
const tusdVersion = "v2.9.1"

func (p *peerSet) startTusd() *server {
	binary := filepath.Join(p.opts.cacheDir, "gobin", "tusd")
	if _, err := os.Stat(binary); err != nil {
		if p.opts.noInstall {
			p.skip("tusd", fmt.Errorf("%s is missing and -no-install is set", binary))
			return nil
		}
		fmt.Printf("installing tusd %s into %s (go install)\n", tusdVersion, filepath.Dir(binary))
		cmd := exec.Command("go", "install", "github.com/tus/tusd/v2/cmd/tusd@"+tusdVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(binary))
		if out, err := cmd.CombinedOutput(); err != nil {
			p.skip("tusd", fmt.Errorf("go install github.com/tus/tusd/v2/cmd/tusd@%s failed: %w\n%s", tusdVersion, err, lastLines(string(out), 5)))
			return nil
		}
	}
	uploads, err := p.folder("uploads-tusd")
	port, perr := freePort(false)
	if err == nil {
		err = perr
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var proc *process
	if err == nil {
		// tusd listens on 0.0.0.0 unless -host is given.
		proc, err = p.launch.start("tusd", nil, binary, "-host", "127.0.0.1", "-port", strconv.Itoa(port),
			"-upload-dir", uploads, "-base-path", "/files/", "-verbose=false", "-disable-download", "-disable-termination")
	}
	if err == nil {
		err = proc.waitHTTP("http://"+addr+"/", 20*time.Second)
	}
	if err != nil {
		p.skip("tusd", err)
		return nil
	}
	return &server{name: "tusd", proc: proc, addr: addr, upload: uploadTus, uploadPath: "/files/", uploadDir: uploads}
}

func (p *peerSet) startTusNode() *server {
	moduleDir := filepath.Join(p.opts.cacheDir, "node")
	if _, err := os.Stat(filepath.Join(moduleDir, "node_modules", "@tus", "file-store")); err != nil {
		if p.opts.noInstall {
			p.skip("@tus/server", fmt.Errorf("%s has no @tus/file-store and -no-install is set", moduleDir))
			return nil
		}
		fmt.Printf("installing @tus/server and @tus/file-store into %s (npm install)\n", moduleDir)
		if err := os.MkdirAll(moduleDir, 0o755); err != nil {
			p.skip("@tus/server", err)
			return nil
		}
		cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--prefix", moduleDir, "@tus/server", "@tus/file-store")
		if out, err := cmd.CombinedOutput(); err != nil {
			p.skip("@tus/server", fmt.Errorf("npm install @tus/server @tus/file-store failed: %w\n%s", err, lastLines(string(out), 5)))
			return nil
		}
	}

	script := filepath.Join(moduleDir, "bench-tus-server.mjs")
	err := os.WriteFile(script, []byte(tusNodeServer), 0o644)
	uploads, ferr := p.folder("uploads-tus-node")
	if err == nil {
		err = ferr
	}
	port, perr := freePort(false)
	if err == nil {
		err = perr
	}

	addr := "127.0.0.1:" + strconv.Itoa(port)
	var proc *process
	if err == nil {
		proc, err = p.launch.start("tus-node", nil, "node", script, strconv.Itoa(port), uploads)
	}
	if err == nil {
		err = proc.waitHTTP("http://"+addr+"/", 30*time.Second)
	}
	if err != nil {
		p.skip("@tus/server", err)
		return nil
	}
	return &server{name: "@tus/server", proc: proc, addr: addr, upload: uploadTus, uploadPath: "/files", uploadDir: uploads}
}

// ensureCommand returns the path of command, installing the Debian
// package when it is missing. An empty command only installs the package.
func (p *peerSet) ensureCommand(pkg, command string) (string, error) {
	if command != "" {
		for _, candidate := range []string{command, "/usr/sbin/" + command} {
			if path, err := exec.LookPath(candidate); err == nil {
				return path, nil
			}
		}
	}
	if p.opts.noInstall {
		return "", fmt.Errorf("package %s is not installed and -no-install is set", pkg)
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("package %s is not installed, and installing it needs root", pkg)
	}
	fmt.Printf("installing %s (apt-get install)\n", pkg)
	cmd := exec.Command("apt-get", "install", "-y", "-q", pkg)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get install %s failed: %w\n%s", pkg, err, lastLines(string(out), 5))
	}
	if command == "" {
		return "", nil
	}
	for _, candidate := range []string{command, "/usr/sbin/" + command} {
		if path, err := exec.LookPath(candidate); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s not found after apt-get install %s", command, pkg)
}

func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
