package manager

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/token"
	"github.com/bai-storage/storage-proxy/control/vfid"
	"github.com/bai-storage/storage-proxy/control/volume"
)

// routes24_09 is the route table of upstream 24.09.14, in registration
// order.
var routes24_09 = []struct{ method, path string }{
	{"GET", "/"}, {"GET", "/status"}, {"GET", "/volumes"}, {"GET", "/volume/hwinfo"},
	{"POST", "/quota-scope"}, {"GET", "/quota-scope"}, {"PATCH", "/quota-scope"}, {"DELETE", "/quota-scope/quota"},
	{"POST", "/folder/create"}, {"POST", "/folder/delete"}, {"POST", "/folder/clone"}, {"GET", "/folder/mount"},
	{"GET", "/volume/performance-metric"}, {"GET", "/folder/metadata"}, {"POST", "/folder/metadata"},
	{"GET", "/volume/quota"}, {"PATCH", "/volume/quota"}, {"GET", "/folder/usage"}, {"GET", "/folder/used-bytes"},
	{"GET", "/folder/fs-usage"}, {"POST", "/folder/file/mkdir"}, {"POST", "/folder/file/list"},
	{"POST", "/folder/file/rename"}, {"POST", "/folder/file/move"}, {"POST", "/folder/file/fetch"},
	{"POST", "/folder/file/download"}, {"POST", "/folder/file/upload"}, {"POST", "/folder/file/delete"},
}

func TestRouteTableHas28Routes(t *testing.T) {
	if len(routes24_09) != 28 {
		t.Fatalf("test table has %d routes, want 28", len(routes24_09))
	}
	h := newHarness(t, harnessOptions{})
	for _, rt := range routes24_09 {
		// Every route exists: a wrong token gets 403 (or the open route's
		// response), never 404 or 405.
		r := h.send(rt.method, rt.path, nil, http.Header{authHeader: {"wrong"}})
		if r.status == http.StatusNotFound || r.status == http.StatusMethodNotAllowed {
			t.Errorf("%s %s: status %d, the route is missing", rt.method, rt.path, r.status)
		}
	}
}

func TestAuthPrecedesRouting(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	cases := []struct {
		name, method, path string
		token              string
		status             int
		title              string
	}{
		{"missing token", "GET", "/volumes", "", 403, "Forbidden (missing auth token)"},
		{"wrong token", "GET", "/volumes", "nope", 403, "Forbidden (invalid auth token)"},
		{"token prefix", "GET", "/volumes", testSecret[:5], 403, "Forbidden (invalid auth token)"},
		{"unknown path without token", "GET", "/nope", "", 403, "Forbidden (missing auth token)"},
		{"unknown path with token", "GET", "/nope", testSecret, 404, ""},
		{"trailing slash with token", "GET", "/volumes/", testSecret, 404, ""},
		{"wrong method without token", "DELETE", "/volumes", "", 403, "Forbidden (missing auth token)"},
		{"wrong method with token", "DELETE", "/volumes", testSecret, 405, ""},
		{"HEAD is not GET", "HEAD", "/volumes", testSecret, 405, ""},
		{"root is open", "GET", "/", "", 200, ""},
		{"status is open", "GET", "/status", "", 200, ""},
		{"health is open", "GET", "/health", "", 200, ""},
		{"livez is open", "GET", "/livez", "", 200, ""},
		{"readyz is open", "GET", "/readyz", "", 200, ""},
		{"right token", "GET", "/volumes", testSecret, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			header := http.Header{}
			if c.token != "" {
				header.Set(authHeader, c.token)
			}
			r := h.send(c.method, c.path, nil, header)
			if r.status != c.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, c.status, r.body)
			}
			if c.status == 403 {
				m := r.expectProblem(t, 403, "forbidden")
				if m["title"] != c.title {
					t.Errorf("title = %v, want %q", m["title"], c.title)
				}
			}
			if c.status == 405 && r.header.Get("Allow") != "GET" {
				t.Errorf("Allow = %q, want GET", r.header.Get("Allow"))
			}
		})
	}
	if strings.Contains(h.logs.String(), testSecret) {
		t.Errorf("the manager secret appears in the log")
	}
}

func TestStatusRoutes(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, path := range []string{"/", "/status"} {
		m := h.send("GET", path, nil, nil).expect(t, 200).object(t)
		if m["status"] != "ok" || m["type"] != "manager-facing" || m["storage-proxy"] != testVersion {
			t.Errorf("GET %s = %v", path, m)
		}
		h.send("GET", path, `{}`, nil).expectProblem(t, 400, "malformed-request")
	}
	h.call("GET", "/volumes", `{"volume":"local"}`).expectProblem(t, 400, "malformed-request")
}

func TestParameterParsing(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.folder(vfidA)

	t.Run("unknown key", func(t *testing.T) {
		m := h.call("GET", "/folder/usage", map[string]any{"volume": "local", "vfid": vfidA, "bogus": 1}).
			expectProblem(t, 400, "invalid-api-params")
		data, _ := m["data"].(map[string]any)
		if _, ok := data["bogus"]; !ok {
			t.Errorf("data does not name the unknown key: %v", m)
		}
	})
	t.Run("missing key", func(t *testing.T) {
		m := h.call("GET", "/folder/usage", map[string]any{"volume": "local"}).expectProblem(t, 400, "invalid-api-params")
		if data, _ := m["data"].(map[string]any); data["vfid"] != "is required" {
			t.Errorf("data = %v, want vfid: is required", m["data"])
		}
	})
	t.Run("invalid JSON", func(t *testing.T) {
		h.call("GET", "/folder/usage", `{"volume": "local",`).expectProblem(t, 400, "invalid-api-params")
	})
	t.Run("empty body", func(t *testing.T) {
		h.call("GET", "/folder/usage", nil).expectProblem(t, 400, "invalid-api-params")
	})
	t.Run("body not an object", func(t *testing.T) {
		m := h.call("GET", "/folder/usage", `["volume"]`).expectProblem(t, 400, "invalid-api-params")
		if m["data"] != "value is not a dict" {
			t.Errorf("data = %v, want the plain string", m["data"])
		}
	})
	t.Run("invalid UTF-8", func(t *testing.T) {
		h.call("POST", "/folder/file/mkdir", []byte("{\"volume\":\"local\",\"vfid\":\""+vfidA+"\",\"relpath\":\"\xff\xfe\"}")).
			expectProblem(t, 400, "invalid-api-params")
	})
	t.Run("unpaired surrogate", func(t *testing.T) {
		h.call("POST", "/folder/file/mkdir", `{"volume":"local","vfid":"`+vfidA+`","relpath":"a\udcff"}`).
			expectProblem(t, 400, "invalid-api-params")
	})
	t.Run("paired surrogates are fine", func(t *testing.T) {
		h.call("POST", "/folder/file/mkdir", `{"volume":"local","vfid":"`+vfidA+`","relpath":"\ud83d\ude00"}`).expect(t, 200)
	})
	t.Run("body over 1 MiB", func(t *testing.T) {
		big := `{"volume":"local","vfid":"` + vfidA + `","pad":"` + strings.Repeat("x", maxBodySize) + `"}`
		h.call("GET", "/folder/usage", big).expectProblem(t, 413, "request-too-large")
	})
	t.Run("ToBool and ToInt coercions", func(t *testing.T) {
		h.call("POST", "/folder/file/mkdir", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "c1", "parents": "yes", "exist_ok": 1}).expect(t, 200)
		h.call("POST", "/folder/file/mkdir", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "c1", "exist_ok": "on"}).expect(t, 200)
		h.call("POST", "/folder/file/mkdir", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "c2", "exist_ok": "maybe"}).
			expectProblem(t, 400, "invalid-api-params")
		h.call("POST", "/folder/file/upload", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "u1", "size": "12"}).expect(t, 200)
		h.call("POST", "/folder/file/upload", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "u2", "size": 12.0}).expect(t, 200)
		h.call("POST", "/folder/file/upload", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "u3", "size": 1.5}).
			expectProblem(t, 400, "invalid-api-params")
	})
	t.Run("invalid vfid and qsid", func(t *testing.T) {
		h.call("GET", "/folder/usage", map[string]any{"volume": "local", "vfid": "user:abc/xyz"}).expectProblem(t, 400, "invalid-api-params")
		h.call("GET", "/quota-scope", map[string]any{"volume": "local", "qsid": "domain:" + folderA}).expectProblem(t, 400, "invalid-api-params")
	})
	t.Run("unknown volume", func(t *testing.T) {
		h.call("GET", "/folder/usage", map[string]any{"volume": "nope", "vfid": vfidA}).expectProblem(t, 400, "volume/invalid")
	})
	t.Run("missing vfolder", func(t *testing.T) {
		h.call("GET", "/folder/usage", map[string]any{"volume": "local", "vfid": vfidB}).expectProblem(t, 404, "vfolder/not-found")
	})
}

func TestVolumesAndHWInfo(t *testing.T) {
	h := newHarness(t, harnessOptions{volumes: []string{"zeta", "alpha"}})
	m := h.call("GET", "/volumes", nil).expect(t, 200).object(t)
	list, _ := m["volumes"].([]any)
	if len(list) != 2 {
		t.Fatalf("volumes = %v", m)
	}
	for i, name := range []string{"zeta", "alpha"} {
		v := list[i].(map[string]any)
		if v["name"] != name || v["backend"] != "vfs" || v["path"] != h.mounts[name] || v["fsprefix"] != "." {
			t.Errorf("volume %d = %v", i, v)
		}
		if caps := fmt.Sprint(v["capabilities"]); caps != "[vfolder]" {
			t.Errorf("capabilities = %s, want [vfolder]", caps)
		}
	}

	hw := h.call("GET", "/volume/hwinfo", map[string]any{"volume": "alpha"}).expect(t, 200).object(t)
	if hw["status"] != "healthy" || hw["status_info"] != nil || fmt.Sprint(hw["metadata"]) != "map[]" {
		t.Errorf("hwinfo = %v", hw)
	}
	h.call("GET", "/volume/hwinfo", map[string]any{"volume": "local"}).expectProblem(t, 400, "volume/invalid")
}

func TestQuotaScopeLifecycle(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	params := map[string]any{"volume": "local", "qsid": qsidText}

	h.call("GET", "/quota-scope", params).expectProblem(t, 404, "quota/scope/not-found")
	h.call("DELETE", "/quota-scope/quota", params).expectProblem(t, 404, "quota/scope/not-found")

	h.call("PATCH", "/quota-scope", map[string]any{"volume": "local", "qsid": qsidText, "options": map[string]any{"limit_bytes": 1 << 30}}).expect(t, 204)
	if !exists(filepath.Join(h.mounts["local"], qsHex)) {
		t.Fatalf("PATCH did not create the quota scope directory")
	}
	m := h.call("GET", "/quota-scope", params).expect(t, 200).object(t)
	if v, ok := m["used_bytes"]; !ok || v != nil {
		t.Errorf("used_bytes = %v, want null", v)
	}
	if v, ok := m["limit_bytes"]; !ok || v != nil {
		t.Errorf("limit_bytes = %v, want null", v)
	}

	h.call("PATCH", "/quota-scope", map[string]any{"volume": "local", "qsid": qsidText, "options": map[string]any{"limit_bytes": "2048"}}).expect(t, 204)
	h.call("PATCH", "/quota-scope", params).expectProblem(t, 400, "invalid-api-params")
	h.call("PATCH", "/quota-scope", map[string]any{"volume": "local", "qsid": qsidText, "options": map[string]any{"limit": 1}}).
		expectProblem(t, 400, "invalid-api-params")

	conflict := h.call("POST", "/quota-scope", params).expectProblem(t, 409, "quota/scope/already-exists")
	if conflict["msg"] != "Volume already exists with given quota scope." {
		t.Errorf("409 msg = %v", conflict["msg"])
	}
	h.call("DELETE", "/quota-scope/quota", params).expect(t, 204)

	other := map[string]any{"volume": "local", "qsid": "project:" + folderA, "options": nil, "extra_args": nil}
	h.call("POST", "/quota-scope", other).expect(t, 204)
}

func TestFolderCreate(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	// The quota scope does not exist yet: create makes it, as upstream.
	h.call("POST", "/folder/create", map[string]any{"volume": "local", "vfid": vfidA, "options": map[string]any{"initial_max_size_for_quota_scope": 1 << 30}}).expect(t, 204)
	want := filepath.Join(h.mounts["local"], qsHex, folderA[0:2], folderA[2:4], folderA[4:])
	if fi, err := os.Stat(want); err != nil || !fi.IsDir() {
		t.Fatalf("vfolder directory %s: %v", want, err)
	}
	h.call("POST", "/folder/create", map[string]any{"volume": "local", "vfid": vfidA}).expectProblem(t, 409, "vfolder/already-exists")
	h.call("POST", "/folder/create", map[string]any{"volume": "local", "vfid": folderB}).expectProblem(t, 400, "invalid-api-params")
	h.call("POST", "/folder/create", map[string]any{"volume": "local", "vfid": vfidB, "options": nil}).expect(t, 204)
}

func TestFolderMount(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	dir := h.folder(vfidA)
	writeFile(t, filepath.Join(dir, "sub", "f.txt"), "x")
	symlink(t, "../../..", filepath.Join(dir, "up"))

	m := h.call("GET", "/folder/mount", map[string]any{"volume": "local", "vfid": vfidA, "subpath": "sub"}).expect(t, 200).object(t)
	if m["path"] != dir {
		t.Errorf("path = %v, want the vfolder root %s", m["path"], dir)
	}
	h.call("GET", "/folder/mount", map[string]any{"volume": "local", "vfid": vfidA}).expect(t, 200)
	h.call("GET", "/folder/mount", map[string]any{"volume": "local", "vfid": vfidA, "subpath": "not/yet/there"}).expect(t, 200)

	for _, subpath := range []string{"../..", "up", "up/x", "/etc"} {
		r := h.call("GET", "/folder/mount", map[string]any{"volume": "local", "vfid": vfidA, "subpath": subpath}).expect(t, 400)
		m := r.object(t)
		if m["msg"] != "Invalid vfolder subpath" || m["vfid"] != vfidA || m["subpath"] != subpath {
			t.Errorf("subpath %q: body %s", subpath, r.body)
		}
	}
	r := h.call("GET", "/folder/mount", map[string]any{"volume": "local", "vfid": vfidB}).expect(t, 400)
	if m := r.object(t); m["msg"] != "VFolder not found" || m["vfid"] != vfidB {
		t.Errorf("missing vfolder: body %s", r.body)
	}
	h.call("GET", "/folder/mount", map[string]any{"volume": "local", "vfid": vfidA, "subpath": ""}).expectProblem(t, 400, "invalid-api-params")
}

func TestUnsupportedAndDeprecatedRoutes(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.folder(vfidA)
	h.call("GET", "/volume/performance-metric", map[string]any{"volume": "local"}).expectProblem(t, 400, "unsupported-operation")

	m := h.call("GET", "/volume/quota", map[string]any{"volume": "local", "vfid": vfidA}).expectProblem(t, 400, "deprecated-api")
	if m["msg"] != "get_quota (for individual vfolder) is a deprecated API" {
		t.Errorf("GET /volume/quota msg = %v", m["msg"])
	}
	m = h.call("PATCH", "/volume/quota", map[string]any{"volume": "local", "vfid": nil, "size_bytes": "1g"}).expectProblem(t, 400, "deprecated-api")
	if m["msg"] != "set_quota (for individual vfolder) is a deprecated API" {
		t.Errorf("PATCH /volume/quota msg = %v", m["msg"])
	}

	got := h.call("GET", "/folder/metadata", map[string]any{"volume": "whatever", "vfid": vfidA}).expect(t, 200).object(t)
	if got["status"] != "ok" {
		t.Errorf("GET /folder/metadata = %v", got)
	}
	h.call("POST", "/folder/metadata", map[string]any{"volume": "local", "vfid": vfidA, "payload": "e30="}).expectProblem(t, 400, "invalid-api-params")
}

func TestUsageAndUsedBytes(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	dir := h.folder(vfidA)
	writeFile(t, filepath.Join(dir, "a.txt"), "12345")
	writeFile(t, filepath.Join(dir, "b.txt"), "1234567890")
	writeFile(t, filepath.Join(dir, "d", "c.txt"), strings.Repeat("c", 10000))
	params := map[string]any{"volume": "local", "vfid": vfidA}

	m := h.call("GET", "/folder/usage", params).expect(t, 200).object(t)
	dirSize, _ := os.Lstat(filepath.Join(dir, "d"))
	if m["file_count"] != float64(4) {
		t.Errorf("file_count = %v, want 4 (3 files and 1 directory)", m["file_count"])
	}
	if want := float64(5 + 10 + 10000 + dirSize.Size()); m["used_bytes"] != want {
		t.Errorf("used_bytes = %v, want %v", m["used_bytes"], want)
	}
	sub := h.call("GET", "/folder/usage", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "d"}).expect(t, 200).object(t)
	if sub["file_count"] != float64(1) {
		t.Errorf("usage of d = %v", sub)
	}

	used := h.call("GET", "/folder/used-bytes", params).expect(t, 200).object(t)
	out, err := exec.Command("du", "-s", "-B1", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	du, _ := strconv.ParseFloat(strings.Fields(string(out))[0], 64)
	if used["used_bytes"] != du {
		t.Errorf("used_bytes = %v, du -s -B1 = %v", used["used_bytes"], du)
	}

	fsUsage := h.call("GET", "/folder/fs-usage", map[string]any{"volume": "local"}).expect(t, 200).object(t)
	var st unix.Statfs_t
	if err := unix.Statfs(h.mounts["local"], &st); err != nil {
		t.Fatal(err)
	}
	if want := float64(int64(st.Blocks) * st.Frsize); fsUsage["capacity_bytes"] != want {
		t.Errorf("capacity_bytes = %v, want %v", fsUsage["capacity_bytes"], want)
	}
	if used, _ := fsUsage["used_bytes"].(float64); used < 0 || used > fsUsage["capacity_bytes"].(float64) {
		t.Errorf("used_bytes = %v out of range", fsUsage["used_bytes"])
	}
}

func TestMkdirMultiStatus(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	dir := h.folder(vfidA)
	mkdir := func(relpath any, extra ...any) *response {
		body := map[string]any{"volume": "local", "vfid": vfidA, "relpath": relpath}
		for i := 0; i+1 < len(extra); i += 2 {
			body[extra[i].(string)] = extra[i+1]
		}
		return h.call("POST", "/folder/file/mkdir", body)
	}
	results := func(r *response) (success, failed []any) {
		m := r.object(t)["results"].(map[string]any)
		return m["success"].([]any), m["failed"].([]any)
	}

	r := mkdir("one//two/").expect(t, 200)
	success, failed := results(r)
	if len(success) != 1 || len(failed) != 0 || success[0].(map[string]any)["item"] != "one/two" {
		t.Errorf("single mkdir: %s", r.body)
	}
	if s := success[0].(map[string]any); s["msg"] != nil {
		t.Errorf("success msg = %v, want null", s["msg"])
	}

	r = mkdir([]string{"x", "one", "y"}).expect(t, 207)
	success, failed = results(r)
	if len(success) != 2 || len(failed) != 1 {
		t.Fatalf("3 paths with one existing: %s", r.body)
	}
	f := failed[0].(map[string]any)
	if f["item"] != "one" || !strings.HasPrefix(f["msg"].(string), "FileExistsError(17,") {
		t.Errorf("failed item = %v", f)
	}

	mkdir([]string{"x", "y"}).expect(t, 422)
	mkdir([]string{}).expect(t, 422)
	mkdir([]string{"x", "y"}, "exist_ok", true).expect(t, 200)
	mkdir("p/q/r", "parents", false).expect(t, 422)

	many := make([]string, 51)
	for i := range many {
		many[i] = "m" + strconv.Itoa(i)
	}
	mkdir(many).expectProblem(t, 400, "invalid-api-params")
	mkdir(many[:50]).expect(t, 200)
	mkdir([]string{"ok", "/abs"}).expectProblem(t, 400, "invalid-api-params")

	// The .local form: parameters in the query string, no body.
	q := "/folder/file/mkdir?volume=local&vfid=" + strings.ReplaceAll(vfidA, ":", "%3A") + "&relpaths=" + folderB + "&exist_ok=true"
	h.call("POST", q, nil).expect(t, 200)
	h.call("POST", q, nil).expect(t, 200)
	h.call("POST", "/folder/file/mkdir?volume=local&vfid="+vfidA+`&relpaths=["l1","l2"]`, nil).expect(t, 200)
	h.call("POST", "/folder/file/mkdir?volume=local&vfid="+vfidA+"&relpaths=r1&relpaths=r2", nil).expect(t, 200)
	for _, name := range []string{folderB, "l1", "l2", "r1", "r2"} {
		if !exists(filepath.Join(dir, name)) {
			t.Errorf("query-form mkdir did not create %s", name)
		}
	}
	h.call("POST", "/folder/file/mkdir?volume=local&vfid="+vfidA+"&relpaths=z&bogus=1", nil).expectProblem(t, 400, "invalid-api-params")
}

// isoPattern is the timestamp format of Python's isoformat() in UTC.
var isoPattern = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$`)

func TestListFields(t *testing.T) {
	h := newHarness(t, harnessOptions{scandirLimit: 5})
	dir := h.folder(vfidA)
	writeFile(t, filepath.Join(dir, "d", "file.txt"), "hello")
	if err := os.Mkdir(filepath.Join(dir, "d", "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	symlink(t, "sub", filepath.Join(dir, "d", "link"))
	symlink(t, "/etc/passwd", filepath.Join(dir, "d", "outside"))
	mtime := time.Date(2024, 5, 1, 12, 34, 56, 789012000, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "d", "file.txt"), mtime, mtime); err != nil {
		t.Fatal(err)
	}

	items := h.call("POST", "/folder/file/list", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "d"}).expect(t, 200).object(t)["items"].([]any)
	byName := map[string]map[string]any{}
	for _, it := range items {
		m := it.(map[string]any)
		byName[m["name"].(string)] = m
		stat := m["stat"].(map[string]any)
		for _, key := range []string{"created", "modified"} {
			if !isoPattern.MatchString(stat[key].(string)) {
				t.Errorf("%s %s = %q, not ISO-8601 with +00:00", m["name"], key, stat[key])
			}
		}
	}
	if len(byName) != 4 {
		t.Fatalf("items = %v", items)
	}
	file := byName["file.txt"]
	stat := file["stat"].(map[string]any)
	if file["type"] != "FILE" || stat["size"] != float64(5) || stat["mode"] != float64(0o100644) || file["symlink_target"] != "" {
		t.Errorf("file.txt = %v", file)
	}
	if stat["modified"] != "2024-05-01T12:34:56.789012+00:00" {
		t.Errorf("modified = %v", stat["modified"])
	}
	if sub := byName["sub"]; sub["type"] != "DIRECTORY" || sub["stat"].(map[string]any)["mode"] != float64(0o40750) {
		t.Errorf("sub = %v", sub)
	}
	if link := byName["link"]; link["type"] != "SYMLINK" || link["symlink_target"] != "sub" {
		t.Errorf("link = %v", link)
	}
	if out := byName["outside"]; out["type"] != "SYMLINK" || out["symlink_target"] != "" {
		t.Errorf("outside = %v", out)
	}

	for i := 0; i < 9; i++ {
		writeFile(t, filepath.Join(dir, "nine", strconv.Itoa(i)), "")
	}
	items = h.call("POST", "/folder/file/list", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "nine"}).expect(t, 200).object(t)["items"].([]any)
	if len(items) != 5 {
		t.Errorf("scandir-limit 5 on 9 entries returned %d", len(items))
	}

	h.call("POST", "/folder/file/list", map[string]any{"volume": "local", "vfid": vfidA, "relpath": ""}).expect(t, 200)
	h.call("POST", "/folder/file/list", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "missing"}).expectFSError(t, 2)
	h.call("POST", "/folder/file/list", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "d/file.txt"}).expectFSError(t, 20)
}

func TestIsoTimeFormat(t *testing.T) {
	cases := map[time.Time]string{
		time.Date(2024, 5, 1, 12, 34, 56, 789012345, time.UTC):               "2024-05-01T12:34:56.789012+00:00",
		time.Date(2024, 5, 1, 12, 34, 56, 0, time.UTC):                       "2024-05-01T12:34:56+00:00",
		time.Date(2024, 5, 1, 12, 34, 56, 100000000, time.UTC):               "2024-05-01T12:34:56.100000+00:00",
		time.Date(2024, 5, 1, 14, 34, 56, 999, time.FixedZone("CEST", 7200)): "2024-05-01T12:34:56+00:00",
	}
	for in, want := range cases {
		if got := isoTime(in); got != want {
			t.Errorf("isoTime(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestRenameAndMove(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	dir := h.folder(vfidA)
	writeFile(t, filepath.Join(dir, "a.txt"), "a")
	writeFile(t, filepath.Join(dir, "b.txt"), "b")
	writeFile(t, filepath.Join(dir, "target", "b.txt"), "old b")
	move := func(src, dst string) *response {
		return h.call("POST", "/folder/file/move", map[string]any{"volume": "local", "vfid": vfidA, "src_relpath": src, "dst_relpath": dst})
	}
	rename := func(relpath, newName string) *response {
		return h.call("POST", "/folder/file/rename", map[string]any{"volume": "local", "vfid": vfidA, "relpath": relpath, "new_name": newName, "is_dir": false})
	}

	move("a.txt", "target").expect(t, 204)
	if !exists(filepath.Join(dir, "target", "a.txt")) || exists(filepath.Join(dir, "a.txt")) {
		t.Errorf("move into an existing directory did not move inside")
	}
	m := move("b.txt", "target").expectFSError(t, 0)
	if m["msg"] != "Destination path 'target/b.txt' already exists" || len(m["paths"].([]any)) != 0 {
		t.Errorf("existing destination: %v", m)
	}
	move("b.txt", "renamed.txt").expect(t, 204)
	writeFile(t, filepath.Join(dir, "c.txt"), "new c")
	move("c.txt", "renamed.txt").expect(t, 204)
	if data, _ := os.ReadFile(filepath.Join(dir, "renamed.txt")); string(data) != "new c" {
		t.Errorf("move onto a file did not replace it: %q", data)
	}
	move("missing", "x").expectFSError(t, 2)
	move("renamed.txt", "no/such/dir/x").expectFSError(t, 2)
	move(".", "x").expectProblem(t, 400, "invalid-api-params")

	rename("renamed.txt", "final.txt").expect(t, 204)
	if !exists(filepath.Join(dir, "final.txt")) {
		t.Errorf("rename did not rename")
	}
	rename("final.txt", "target").expect(t, 204)
	if !exists(filepath.Join(dir, "target", "final.txt")) {
		t.Errorf("rename onto a directory name did not move inside, like upstream's move")
	}
	writeFile(t, filepath.Join(dir, "target", "dd", "final.txt"), "")
	rename("target/final.txt", "dd").expectFSError(t, 0)
	rename("target/a.txt", "x/y").expectProblem(t, 400, "invalid-api-params")
	rename("target/a.txt", "..").expectProblem(t, 400, "invalid-api-params")
	rename(".", "x").expectProblem(t, 400, "invalid-api-params")

	symlink(t, "target", filepath.Join(dir, "link"))
	rename("link", "link2").expect(t, 204)
	if target, err := os.Readlink(filepath.Join(dir, "link2")); err != nil || target != "target" {
		t.Errorf("renaming a symlink must rename the link itself: %q, %v", target, err)
	}
}

func TestFetch(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	dir := h.folder(vfidA)
	content := strings.Repeat("log line\n", 10000)
	writeFile(t, filepath.Join(dir, "task", "ab", "cd", "ef.log"), content)
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	r := h.call("POST", "/folder/file/fetch", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "task/ab/cd/ef.log"}).expect(t, 200)
	if string(r.body) != content || r.header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("fetch: %d bytes, Content-Type %q", len(r.body), r.header.Get("Content-Type"))
	}
	h.call("POST", "/folder/file/fetch", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "nope.log"}).expectProblem(t, 404, "file-not-found")
	h.call("POST", "/folder/file/fetch", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "task"}).expectFSError(t, 21)
	h.call("POST", "/folder/file/fetch", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "fifo"}).expect(t, 400)
}

func TestDeleteFiles(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	dir := h.folder(vfidA)
	outside := memTempDir(t)
	writeFile(t, filepath.Join(outside, "keep.txt"), "keep")
	writeFile(t, filepath.Join(dir, "d", "x.txt"), "x")
	writeFile(t, filepath.Join(dir, "f.txt"), "f")
	symlink(t, outside, filepath.Join(dir, "out-dir"))
	symlink(t, filepath.Join(outside, "keep.txt"), filepath.Join(dir, "out-file"))
	symlink(t, "nowhere", filepath.Join(dir, "dangling"))
	del := func(recursive bool, relpaths ...string) *response {
		return h.call("POST", "/folder/file/delete", map[string]any{"volume": "local", "vfid": vfidA, "relpaths": relpaths, "recursive": recursive})
	}

	m := del(false, "d").expectFSError(t, 21)
	if fmt.Sprint(m["paths"]) != "[d]" {
		t.Errorf("paths = %v, want [d]", m["paths"])
	}
	del(false, "missing").expectFSError(t, 2)
	del(true, ".").expectProblem(t, 400, "invalid-api-params")
	del(true, "d", "..").expectProblem(t, 400, "subpath/invalid")
	del(true, "out-dir/keep.txt").expectProblem(t, 400, "subpath/invalid")
	if !exists(filepath.Join(dir, "d", "x.txt")) {
		t.Fatalf("a rejected request deleted something")
	}

	if got := del(false, "f.txt", "out-dir", "out-file", "dangling").expect(t, 200).object(t); got["status"] != "ok" {
		t.Errorf("delete response = %v", got)
	}
	for _, name := range []string{"f.txt", "out-dir", "out-file", "dangling"} {
		if exists(filepath.Join(dir, name)) {
			t.Errorf("%s still exists", name)
		}
	}
	if data, err := os.ReadFile(filepath.Join(outside, "keep.txt")); err != nil || string(data) != "keep" {
		t.Errorf("a symlink target outside was touched: %q, %v", data, err)
	}

	del(true, "d").expect(t, 200)
	if exists(filepath.Join(dir, "d")) {
		t.Errorf("recursive delete left d")
	}
	if err := h.vols["local"].FlushTrash(context.Background()); err != nil {
		t.Fatal(err)
	}

	writeFile(t, filepath.Join(dir, "s1"), "")
	writeFile(t, filepath.Join(dir, "s3"), "")
	del(false, "s1", "s2", "s3").expectFSError(t, 2)
	if exists(filepath.Join(dir, "s1")) || !exists(filepath.Join(dir, "s3")) {
		t.Errorf("delete must stop at the first error and keep earlier deletions")
	}
}

func TestDownloadToken(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.folder(vfidA)
	r := h.call("POST", "/folder/file/download", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "a//b.txt", "archive": "true", "unmanaged_path": nil}).expect(t, 200)
	tok := r.object(t)["token"].(string)

	claims, err := token.VerifyDownload(testTokenSecret, tok, h.now)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Volume != "local" || claims.VFID.String() != vfidA || claims.Relpath != "a/b.txt" || !claims.Archive || claims.UnmanagedPath != "" {
		t.Errorf("download claims = %+v", claims)
	}
	if !claims.Expires.Equal(h.now.Add(time.Hour)) {
		t.Errorf("exp = %v, want now + session-expire", claims.Expires)
	}
	if _, err := token.VerifyUpload(testTokenSecret, tok, h.now); err == nil {
		t.Errorf("a download token verified as an upload token")
	}

	r = h.call("POST", "/folder/file/download", map[string]any{"volume": "local", "vfid": vfidB, "relpath": "x", "unmanaged_path": "/srv/data"}).expect(t, 200)
	claims, err = token.VerifyDownload(testTokenSecret, r.object(t)["token"].(string), h.now)
	if err != nil || claims.UnmanagedPath != "/srv/data" || claims.Archive {
		t.Errorf("unmanaged download claims = %+v, %v", claims, err)
	}
	h.call("POST", "/folder/file/download", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "../x"}).expectProblem(t, 400, "subpath/invalid")
	h.call("POST", "/folder/file/download", map[string]any{"volume": "nope", "vfid": vfidA, "relpath": "x"}).expectProblem(t, 400, "volume/invalid")
}

func TestUploadSession(t *testing.T) {
	h := newHarness(t, harnessOptions{maxUpload: 1 << 20})
	dir := h.folder(vfidA)
	staging := filepath.Join(h.mounts["local"], qsHex, vfid.StagingDirName)
	upload := func(relpath string, size any) *response {
		return h.call("POST", "/folder/file/upload", map[string]any{"volume": "local", "vfid": vfidA, "relpath": relpath, "size": size})
	}

	h.call("POST", "/folder/file/upload", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "x", "size": -1}).expectProblem(t, 400, "invalid-api-params")
	upload("x", (1<<20)+1).expectProblem(t, 413, "upload-too-large")
	upload("../escape", 10).expectProblem(t, 400, "subpath/invalid")
	if exists(staging) {
		t.Fatalf("rejected sessions created the staging directory")
	}

	tok := upload("in/a.bin", 1000).expect(t, 200).object(t)["token"].(string)
	claims, err := token.VerifyUpload(testTokenSecret, tok, h.now)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Volume != "local" || claims.VFID.String() != vfidA || claims.Relpath != "in/a.bin" || claims.Size != 1000 || !claims.Expires.Equal(h.now.Add(time.Hour)) {
		t.Errorf("upload claims = %+v", claims)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(claims.Session) {
		t.Errorf("session = %q", claims.Session)
	}
	fi, err := os.Stat(filepath.Join(staging, claims.Session))
	if err != nil || fi.Size() != 0 || fi.Mode().Perm() != 0o644 {
		t.Errorf("partial file: %v, %v", fi, err)
	}
	if sfi, err := os.Stat(staging); err != nil || sfi.Mode().Perm() != 0o755 {
		t.Errorf("staging directory: %v, %v", sfi, err)
	}
	if exists(filepath.Join(dir, "in")) {
		t.Errorf("a non-empty session created its target early")
	}

	tok = upload("empty/dir/zero.txt", 0).expect(t, 200).object(t)["token"].(string)
	claims, _ = token.VerifyUpload(testTokenSecret, tok, h.now)
	if fi, err := os.Stat(filepath.Join(dir, "empty", "dir", "zero.txt")); err != nil || fi.Size() != 0 || !fi.Mode().IsRegular() {
		t.Errorf("0-byte target: %v, %v", fi, err)
	}
	if exists(filepath.Join(staging, claims.Session)) || !exists(filepath.Join(staging, claims.Session+".done")) {
		t.Errorf("0-byte session: partial must be gone and the .done marker present")
	}

	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	upload("adir", 0).expectFSError(t, 21)
	upload("adir", 10).expectFSError(t, 21)
	upload(".", 10).expectProblem(t, 400, "invalid-api-params")
	h.call("POST", "/folder/file/upload", map[string]any{"volume": "local", "vfid": vfidB, "relpath": "x", "size": 1}).expectProblem(t, 404, "vfolder/not-found")
}

func TestCloneRoute(t *testing.T) {
	h := newHarness(t, harnessOptions{volumes: []string{"local", "second"}})
	src := h.folder(vfidA)
	outside := memTempDir(t)
	writeFile(t, filepath.Join(outside, "secret.txt"), "SECRET")
	writeFile(t, filepath.Join(src, "a.txt"), "alpha")
	writeFile(t, filepath.Join(src, "d", "b.txt"), "beta")
	symlink(t, filepath.Join(outside, "secret.txt"), filepath.Join(src, "out"))
	symlink(t, outside, filepath.Join(src, "out-dir"))
	symlink(t, "..", filepath.Join(src, "d", "up"))
	clone := func(dstVolume any, dst string) *response {
		return h.call("POST", "/folder/clone", map[string]any{"src_volume": "local", "src_vfid": vfidA, "dst_volume": dstVolume, "dst_vfid": dst})
	}

	clone(nil, vfidB).expect(t, 204)
	dst := h.dir("local", vfidB)
	for name, want := range map[string]string{"out": filepath.Join(outside, "secret.txt"), "out-dir": outside, "d/up": ".."} {
		if got, err := os.Readlink(filepath.Join(dst, name)); err != nil || got != want {
			t.Errorf("cloned %s -> %q, %v; want a symlink to %q", name, got, err, want)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(dst, "d", "b.txt")); string(data) != "beta" {
		t.Errorf("cloned d/b.txt = %q", data)
	}
	err := filepath.WalkDir(dst, func(name string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if data, _ := os.ReadFile(name); strings.Contains(string(data), "SECRET") {
			t.Errorf("the clone copied the content of a file outside the vfolder into %s", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	srcUsage := h.call("GET", "/folder/usage", map[string]any{"volume": "local", "vfid": vfidA}).expect(t, 200).object(t)
	dstUsage := h.call("GET", "/folder/usage", map[string]any{"volume": "local", "vfid": vfidB}).expect(t, 200).object(t)
	if fmt.Sprint(srcUsage) != fmt.Sprint(dstUsage) {
		t.Errorf("usage of clone %v != source %v", dstUsage, srcUsage)
	}

	clone("local", vfidB).expectProblem(t, 409, "vfolder/already-exists")
	clone("second", qsidText+"/"+strings.Repeat("1", 32)).expectProblem(t, 400, "unsupported-operation")
	h.call("POST", "/folder/clone", map[string]any{"src_volume": "local", "src_vfid": vfidA, "dst_vfid": vfidB}).expectProblem(t, 400, "invalid-api-params")
	h.call("POST", "/folder/clone", map[string]any{"src_volume": "local", "src_vfid": qsidText + "/" + strings.Repeat("2", 32), "dst_volume": nil, "dst_vfid": qsidText + "/" + strings.Repeat("3", 32)}).
		expectProblem(t, 404, "vfolder/not-found")
	h.call("POST", "/folder/clone", map[string]any{"src_volume": "local", "src_vfid": vfidA, "dst_volume": nil, "dst_vfid": "project:" + folderA + "/" + strings.Repeat("4", 32)}).
		expectProblem(t, 404, "quota/scope/not-found")
	if names, _ := os.ReadDir(filepath.Join(h.mounts["local"], qsHex, vfid.CloneDirName)); len(names) != 0 {
		t.Errorf(".clone is not empty after clones: %v", names)
	}
}

func TestDeleteFolderRoute(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	dir := h.folder(vfidA)
	for i := 0; i < 2000; i++ {
		writeFile(t, filepath.Join(dir, "many", strconv.Itoa(i%20), strconv.Itoa(i)), "some data")
	}

	started := time.Now()
	h.call("POST", "/folder/delete", map[string]any{"volume": "local", "vfid": vfidA}).expect(t, 204)
	if elapsed := time.Since(started); elapsed > 2*time.Second {
		t.Errorf("delete took %v; it must return before the tree is removed", elapsed)
	}
	if exists(dir) {
		t.Errorf("vfolder directory still visible after delete")
	}
	if err := h.vols["local"].FlushTrash(context.Background()); err != nil {
		t.Fatal(err)
	}
	trash := filepath.Join(h.mounts["local"], qsHex, vfid.TrashDirName)
	if names, _ := os.ReadDir(trash); len(names) != 0 {
		t.Errorf("trash not emptied: %v", names)
	}
	h.call("POST", "/folder/delete", map[string]any{"volume": "local", "vfid": vfidA}).expect(t, 204)
	h.call("POST", "/folder/delete", map[string]any{"volume": "local", "vfid": "project:" + folderA + "/" + folderB}).expect(t, 204)
}

func TestDeleteResumesAfterRestart(t *testing.T) {
	mount := memTempDir(t)
	leftover := filepath.Join(mount, qsHex, vfid.TrashDirName, folderA+".0011223344556677")
	writeFile(t, filepath.Join(leftover, "deep", "file.bin"), strings.Repeat("z", 4096))

	// The "restarted" proxy opens a new Volume on the same mount.
	h := newHarness(t, harnessOptions{mounts: map[string]string{"local": mount}})
	if err := h.vols["local"].FlushTrash(context.Background()); err != nil {
		t.Fatal(err)
	}
	if exists(leftover) {
		t.Errorf("leftover trash entry was not removed after the restart")
	}
}

func TestHealthRoutes(t *testing.T) {
	failing := errors.New("etcd: connection refused")
	var ready error
	h := newHarness(t, harnessOptions{ready: func(context.Context) []Check {
		return []Check{{Name: "etcd", Err: ready}}
	}})

	health := h.send("GET", "/health", nil, nil).expect(t, 200).object(t)
	if health["status"] != "ok" || health["version"] != testVersion || health["component"] != "storage-proxy" {
		t.Errorf("health = %v", health)
	}
	conn := health["connectivity"].(map[string]any)
	if conn["overall_healthy"] != true || len(conn["connectivity_checks"].([]any)) != 2 {
		t.Errorf("connectivity = %v", conn)
	}
	h.send("GET", "/livez", nil, nil).expect(t, 200)
	readyz := h.send("GET", "/readyz", nil, nil).expect(t, 200).object(t)
	if readyz["status"] != "ok" {
		t.Errorf("readyz = %v", readyz)
	}

	ready = failing
	readyz = h.send("GET", "/readyz", nil, nil).expect(t, 503).object(t)
	if readyz["status"] != "error" || !strings.Contains(string(h.send("GET", "/readyz", nil, nil).body), "connection refused") {
		t.Errorf("readyz with a failing check = %v", readyz)
	}
	if health := h.send("GET", "/health", nil, nil).expect(t, 200).object(t); health["status"] != "degraded" {
		t.Errorf("health with a failing check = %v", health)
	}
}

func TestLostMountRejectsWrites(t *testing.T) {
	mount := t.TempDir()
	if err := unix.Mount("tmpfs", mount, "tmpfs", 0, "size=16m"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mount, unix.MNT_DETACH) })
	h := newHarness(t, harnessOptions{mounts: map[string]string{"local": mount}})
	h.folder(vfidA)

	if err := unix.Unmount(mount, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	writes := []struct {
		method, path string
		body         map[string]any
	}{
		{"POST", "/folder/create", map[string]any{"volume": "local", "vfid": vfidB}},
		{"POST", "/folder/file/upload", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "f", "size": 10}},
		{"POST", "/folder/file/mkdir", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "d"}},
		{"POST", "/folder/file/move", map[string]any{"volume": "local", "vfid": vfidA, "src_relpath": "a", "dst_relpath": "b"}},
		{"POST", "/folder/file/rename", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "a", "new_name": "b"}},
		{"POST", "/folder/delete", map[string]any{"volume": "local", "vfid": vfidA}},
	}
	for _, w := range writes {
		r := h.call(w.method, w.path, w.body)
		r.expectProblem(t, 503, "volume/unavailable")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", w.path)
		}
	}
	h.send("GET", "/readyz", nil, nil).expect(t, 503)
	if names, _ := os.ReadDir(mount); len(names) != 0 {
		t.Errorf("writes landed in the directory under the lost mount: %v", names)
	}
}

func TestLogsOneLinePerCall(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.folder(vfidA)
	h.call("POST", "/folder/file/list", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "sub dir"}).expectFSError(t, 2)

	logs := h.logs.String()
	for _, want := range []string{
		`msg=ManagerAPI::CREATE_VFOLDER volume=local vfid=` + vfidA,
		`msg=ManagerAPI::LIST_FILES volume=local vfid=` + vfidA + ` relpath="sub dir"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, "ManagerAPI::LIST_FILES"); n != 1 {
		t.Errorf("LIST_FILES logged %d times", n)
	}
	if strings.Contains(logs, testSecret) || strings.Contains(logs, string(testTokenSecret)) {
		t.Errorf("a secret appears in the log")
	}
}

// TestVolumeErrorsAreTyped guards the edge translation: every kind of
// volume error has its own status.
func TestVolumeErrorsAreTyped(t *testing.T) {
	cases := map[error]int{
		volume.ErrVFolderNotFound:     404,
		volume.ErrQuotaScopeNotFound:  404,
		volume.ErrFileNotFound:        404,
		volume.ErrVFolderExists:       409,
		volume.ErrQuotaScopeExists:    409,
		volume.ErrInvalidPath:         400,
		volume.ErrInvalidArgument:     400,
		volume.ErrUnsupported:         400,
		volume.ErrUnavailable:         503,
		volume.ErrInsufficientStorage: 507,
		errors.New("boom"):            500,
	}
	for kind, status := range cases {
		err := error(&volume.Error{Kind: kind, Msg: "m"})
		if kind.Error() == "boom" {
			err = kind
		}
		if got := translate(fmt.Errorf("wrapped: %w", err)); got.status != status {
			t.Errorf("%v: status %d, want %d", kind, got.status, status)
		}
	}
	if got := translate(&volume.FSError{Errno: unix.ENOENT, Msg: "No such file or directory", Paths: []string{"a"}}); got.status != 400 || got.code != "" {
		t.Errorf("FSError response = %+v", got)
	}
}
