package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const testVFID = "user:3e1c7c7a-5f0a-4c51-9a2d-0c6a2b7f4e11/9b2f4c1d8e7a4b6c9d0e1f2a3b4c5d6e"

// managerCall sends a manager API request with a JSON body and returns the
// status and body.
func managerCall(t *testing.T, p *testProxy, method, route string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, p.mgrURL+route, bytes.NewReader(b))
	req.Header.Set("X-BackendAI-Storage-Auth-Token", managerSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, route, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func mintToken(t *testing.T, p *testProxy, route string, body map[string]any) string {
	t.Helper()
	status, out := managerCall(t, p, http.MethodPost, route, body)
	if status != http.StatusOK {
		t.Fatalf("POST %s: %d %s", route, status, out)
	}
	var reply struct{ Token string }
	if err := json.Unmarshal(out, &reply); err != nil || reply.Token == "" {
		t.Fatalf("POST %s: no token in %s", route, out)
	}
	return reply.Token
}

func uploadFile(t *testing.T, p *testProxy, relpath string, content []byte) {
	t.Helper()
	tok := mintToken(t, p, "/folder/file/upload", map[string]any{"volume": "local", "vfid": testVFID, "relpath": relpath, "size": len(content)})
	req, _ := http.NewRequest(http.MethodPatch, p.clientURL+"/upload?token="+tok, bytes.NewReader(content))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Offset", "0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH %s: %d", relpath, resp.StatusCode)
	}
}

func download(t *testing.T, p *testProxy, tok, rangeHeader string) (int, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.clientURL+"/download?token="+tok, nil)
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, int(n)
}

// scrape returns the /metrics families of the manager listener.
func scrape(t *testing.T, p *testProxy) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(p.mgrURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return families
}

// sum adds the values of every series of name whose labels include want,
// across workers.
func sum(families map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	mf := families[name]
	if mf == nil {
		return 0
	}
	var total float64
outer:
	for _, m := range mf.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue outer
			}
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		}
	}
	return total
}

func TestMetricsCountTransfers(t *testing.T) {
	p := writeConfig(t, 2, true)
	p.start(t)
	waitStatus(t, p.clientURL+"/", 10*time.Second)

	if status, out := managerCall(t, p, http.MethodPost, "/folder/create", map[string]any{"volume": "local", "vfid": testVFID}); status != http.StatusNoContent {
		t.Fatalf("create folder: %d %s", status, out)
	}
	uploadFile(t, p, "a.bin", bytes.Repeat([]byte("a"), 1000))
	uploadFile(t, p, "dir/b.bin", bytes.Repeat([]byte("b"), 2000))
	tok := mintToken(t, p, "/folder/file/download", map[string]any{"volume": "local", "vfid": testVFID, "relpath": "a.bin"})
	if status, n := download(t, p, tok, ""); status != 200 || n != 1000 {
		t.Fatalf("download: %d, %d bytes", status, n)
	}
	if status, n := download(t, p, tok, "bytes=0-99"); status != 206 || n != 100 {
		t.Fatalf("range download: %d, %d bytes", status, n)
	}

	// Workers record a request after its last byte; give the access path
	// of the final response a moment to finish.
	var families map[string]*dto.MetricFamily
	deadline := time.Now().Add(5 * time.Second)
	for {
		families = scrape(t, p)
		if sum(families, "storage_proxy_body_bytes_total", map[string]string{"route": "download", "direction": "out"}) >= 1100 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"storage_proxy_http_requests_total", map[string]string{"route": "upload", "method": "PATCH", "status": "204"}, 2},
		{"storage_proxy_http_requests_total", map[string]string{"route": "download", "method": "GET", "status": "200"}, 1},
		{"storage_proxy_http_requests_total", map[string]string{"route": "download", "method": "GET", "status": "206"}, 1},
		{"storage_proxy_body_bytes_total", map[string]string{"route": "upload", "direction": "in"}, 3000},
		{"storage_proxy_body_bytes_total", map[string]string{"route": "download", "direction": "out"}, 1100},
		{"storage_proxy_upload_sessions_completed_total", nil, 2},
		{"storage_proxy_upload_sessions_created_total", nil, 2},
		{"storage_proxy_manager_requests_total", map[string]string{"route": "/folder/file/upload", "method": "POST", "status": "200"}, 2},
		{"storage_proxy_manager_requests_total", map[string]string{"route": "/folder/file/download", "method": "POST", "status": "200"}, 1},
		{"storage_proxy_transfers_in_flight", nil, 0},
		{"storage_proxy_data_path_info", map[string]string{"data_path": "sendfile"}, 1},
	}
	for _, c := range checks {
		if got := sum(families, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if families["go_goroutines"] == nil {
		t.Error("no Go runtime metrics")
	}
	if sum(families, "storage_proxy_volume_capacity_bytes", map[string]string{"volume": "local"}) <= 0 {
		t.Error("no volume capacity")
	}
}

func readyz(t *testing.T, p *testProxy) (int, string) {
	t.Helper()
	resp, err := http.Get(p.mgrURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReadyzFollowsVolume(t *testing.T) {
	p := writeConfig(t, 1, true)
	p.start(t)
	waitStatus(t, p.mgrURL+"/readyz", 10*time.Second)

	vol := filepath.Join(p.dir, "volumes", "local")
	away := vol + ".away"
	if err := os.Rename(vol, away); err != nil {
		t.Fatal(err)
	}
	wait := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			status, body := readyz(t, p)
			if status == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz still %d after 5 s, want %d: %s", status, want, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wait(http.StatusServiceUnavailable)
	if status, body := managerCall(t, p, http.MethodPost, "/folder/create", map[string]any{"volume": "local", "vfid": testVFID}); status < 500 {
		t.Errorf("folder create on a missing volume: %d %s", status, body)
	}
	if _, err := os.Stat(vol); !os.IsNotExist(err) {
		t.Errorf("something was written at the missing volume's path: %v", err)
	}
	if err := os.Rename(away, vol); err != nil {
		t.Fatal(err)
	}
	wait(http.StatusOK)
}

func TestRegisterNodeWritesEtcdKeys(t *testing.T) {
	p := writeConfig(t, 1, true)
	cfg, _ := os.ReadFile(p.configFile)
	text := strings.Replace(string(cfg), "[storage-proxy]\n", "[storage-proxy]\nregister-node = true\nannounce-client-url = \"http://storage.example:6021\"\n", 1)
	os.WriteFile(p.configFile, []byte(text), 0o644)
	p.start(t)
	waitStatus(t, p.mgrURL+"/", 10*time.Second)

	// Read the keys back with etcd's own v3 JSON gateway. The manager API
	// may respond before the registration is written, so poll for up to 10 s.
	port := strings.TrimSpace(strings.Split(strings.Split(text, "port = ")[1], " ")[0])
	key := "/sorna/test/volumes/proxies/test-node/client_api"
	body, _ := json.Marshal(map[string]string{"key": b64(key)})
	var reply struct {
		Kvs []struct{ Value string } `json:"kvs"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Post("http://127.0.0.1:"+port+"/v3/kv/range", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&reply)
		resp.Body.Close()
		if len(reply.Kvs) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(reply.Kvs) != 1 || unb64(reply.Kvs[0].Value) != "http://storage.example:6021" {
		t.Fatalf("client_api key = %+v", reply)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func unb64(s string) string {
	b, _ := base64.StdEncoding.DecodeString(s)
	return string(b)
}

func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd)")
	}
	unit, err := os.ReadFile("../../configs/backendai-storage-proxy.service")
	if err != nil {
		t.Fatal(err)
	}
	runner, err := filepath.Abs("../../configs/run-storage-proxy.sh")
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart exists, so point it at the runner in
	// the repository instead of the installed path.
	text := strings.Replace(string(unit), "ExecStart=/home/bai/bin/run-storage-proxy.sh", "ExecStart="+runner, 1)
	if text == string(unit) {
		t.Fatal("unit has no ExecStart line for the runner script")
	}
	for _, want := range []string{"Restart=on-failure", "PIDFile=", "LimitNOFILE=5242880", "LimitNPROC=131072"} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	path := filepath.Join(t.TempDir(), "backendai-storage-proxy.service")
	os.WriteFile(path, []byte(text), 0o644)
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
