package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The proxy's quota scope and vfolders. Each proxy variant has a volume
// of its own, so their background deleters never touch each other's
// files.
const (
	quotaScopeUUID = "5be1c7aa-0c2f-4d5e-9b8a-3f6e2d1c0b9a"
	quotaScopeID   = "user:" + quotaScopeUUID
	dataFolder     = "da7a0000000040008000000000000001" // the dataset: D and Z scenarios
	treeFolder     = "da7a0000000040008000000000000002" // the 100,000-file tree: T1 to T3
	flatFolder     = "da7a0000000040008000000000000003" // the 100,000-entry folder: T4
	uploadFolder   = "da7a0000000040008000000000000004" // U scenarios write here
	volumeName     = "local"
	managerSecret  = "bench-manager-secret"
	uploadRelDir   = "bench-uploads"
)

// proxyInstance is one started storage proxy and its manager API client.
type proxyInstance struct {
	volume     string // the volume's folder
	managerURL string
	client     *http.Client

	// tokensMu guards tokens, the download tokens by folder and path.
	tokensMu sync.Mutex
	tokens   map[string]string
}

// folderPath returns the on-disk folder of a vfolder of the bench quota
// scope: <volume>/<quota scope hex>/<f0f1>/<f2f3>/<f4...>.
func folderPath(volume, folder string) string {
	return filepath.Join(volume, strings.ReplaceAll(quotaScopeUUID, "-", ""), folder[0:2], folder[2:4], folder[4:])
}

func vfid(folder string) string { return quotaScopeID + "/" + folder }

// newFolderID returns a random folder UUID as 32 lowercase hex digits.
func newFolderID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b)
}

// startProxy starts the storage proxy on its own volume. variant is
// "io_uring" (the default engine) or "syscall" (BACKEND_IO_ENGINE=syscall).
// prepare fills the volume before the proxy starts.
func (p *peerSet) startProxy(variant string, prepare func(volume string) error) *server {
	name := "proxy-" + variant
	s, err := p.startProxyErr(name, variant, prepare)
	if err != nil {
		p.skip(name, err)
		return nil
	}
	return s
}

func (p *peerSet) startProxyErr(name, variant string, prepare func(volume string) error) (*server, error) {
	dir, err := p.folder(name)
	if err != nil {
		return nil, err
	}
	volume := filepath.Join(dir, "volumes", volumeName)
	if err := os.MkdirAll(volume, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(volume, "version.txt"), []byte("3\n"), 0o644); err != nil {
		return nil, err
	}
	if err := prepare(volume); err != nil {
		return nil, fmt.Errorf("prepare the volume: %w", err)
	}

	etcdPort, err := freePort(true)
	if err != nil {
		return nil, err
	}
	clientPort, err := freePort(false)
	if err != nil {
		return nil, err
	}
	managerPort, err := freePort(false)
	if err != nil {
		return nil, err
	}
	config := fmt.Sprintf(proxyConfig, etcdPort, p.opts.numProc, clientPort, managerPort, managerSecret, volumeName, volume)
	configPath := filepath.Join(dir, "storage-proxy.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return nil, err
	}

	var env []string
	if variant == "syscall" {
		env = append(env, "BACKEND_IO_ENGINE=syscall")
	}
	proc, err := p.launch.start(name, env, p.opts.proxyBinary, "-f", configPath)
	if err != nil {
		return nil, err
	}
	instance := &proxyInstance{
		volume:     volume,
		managerURL: "http://127.0.0.1:" + strconv.Itoa(managerPort),
		client:     &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 256}},
		tokens:     map[string]string{},
	}
	addr := "127.0.0.1:" + strconv.Itoa(clientPort)
	for _, u := range []string{instance.managerURL + "/", "http://" + addr + "/"} {
		if err := proc.waitHTTP(u, 60*time.Second); err != nil {
			return nil, err
		}
	}
	for _, folder := range []string{dataFolder, treeFolder, flatFolder, uploadFolder} {
		if _, err := os.Stat(folderPath(volume, folder)); err == nil {
			continue
		}
		if err := instance.call("POST", "/folder/create", map[string]any{"volume": volumeName, "vfid": vfid(folder)}, 204, nil); err != nil {
			return nil, err
		}
	}
	fmt.Printf("started   %-16s pid %d, %s\n", name, proc.pid(), engineLine(proc))
	return &server{name: name, proc: proc, addr: addr, upload: uploadProxy, uploadPath: "/upload",
		uploadDir: filepath.Join(folderPath(volume, uploadFolder), uploadRelDir), proxy: instance}, nil
}

// proxyConfig is the proxy's storage-proxy.toml: an embedded etcd member,
// one vfs volume, no listing limit, everything on 127.0.0.1. The verbs
// are the etcd port, num-proc, the client and manager ports, the manager
// secret, the volume name and its folder.
const proxyConfig = `# Written by the storage-proxy benchmark harness for one run.
[etcd]
namespace = "bench"
addr = { host = "127.0.0.1", port = %d }
embedded = true
embedded-dir = "etcd"

[storage-proxy]
node-id = "bench-storage-proxy"
num-proc = %d
pid-file = "storage-proxy.pid"
scandir-limit = 0
max-upload-size = "1t"
secret = "bench-session-secret"
session-expire = "1d"
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

[volume.%s]
backend = "vfs"
path = %q
`

// engineLine returns the proxy's first "io engine selected" log line.
func engineLine(proc *process) string {
	out, _ := exec.Command("grep", "-m", "1", "io engine selected", proc.logPath).Output()
	if line := strings.TrimSpace(string(out)); line != "" {
		return line
	}
	return "no io engine line in its log"
}

// call sends a manager API request the way the Backend.AI manager does (a
// JSON body, the secret in X-BackendAI-Storage-Auth-Token), requires the
// status want and decodes the response into out unless out is nil.
func (p *proxyInstance) call(method, route string, body any, want int, out any) error {
	encoded, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, p.managerURL+route, bytes.NewReader(encoded))
	if err != nil {
		return err
	}
	req.Header.Set("X-BackendAI-Storage-Auth-Token", managerSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, route, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, route, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s with %s: status %d, expected %d; body: %.300s", method, route, encoded, resp.StatusCode, want, respBody)
	}
	if out != nil {
		if err := json.Unmarshal(respBody, out); err != nil {
			return fmt.Errorf("%s %s: decode response %.300s: %w", method, route, respBody, err)
		}
	}
	return nil
}

// downloadTarget returns /download?token=... for rel in folder, minting
// the token once per path.
func (p *proxyInstance) downloadTarget(folder, rel string, archive bool) (string, error) {
	key := folder + "/" + rel + "/" + strconv.FormatBool(archive)
	p.tokensMu.Lock()
	token, ok := p.tokens[key]
	p.tokensMu.Unlock()
	if !ok {
		var reply struct{ Token string }
		body := map[string]any{"volume": volumeName, "vfid": vfid(folder), "relpath": rel, "archive": archive}
		if err := p.call("POST", "/folder/file/download", body, 200, &reply); err != nil {
			return "", err
		}
		token = reply.Token
		p.tokensMu.Lock()
		p.tokens[key] = token
		p.tokensMu.Unlock()
	}
	target := "/download?token=" + url.QueryEscape(token)
	if archive {
		target += "&archive=true"
	}
	return target, nil
}

// uploadSession creates an upload session for rel in the upload folder
// and returns the tus PATCH target.
func (p *proxyInstance) uploadSession(rel string, size int64) (string, error) {
	var reply struct{ Token string }
	body := map[string]any{"volume": volumeName, "vfid": vfid(uploadFolder), "relpath": rel, "size": size}
	if err := p.call("POST", "/folder/file/upload", body, 200, &reply); err != nil {
		return "", err
	}
	return "/upload?token=" + url.QueryEscape(reply.Token), nil
}
