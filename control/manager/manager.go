package manager

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/bai-storage/storage-proxy/control/volume"
)

// authHeader carries the manager secret on every authenticated call.
const authHeader = "X-BackendAI-Storage-Auth-Token"

// defaultMaxUploadSize is the max-upload-size of upstream's config: 100 GiB.
const defaultMaxUploadSize = 100 << 30

// Options configure the manager API. Secret, TokenSecret and SessionExpiry
// are required, and every other zero value works.
type Options struct {
	// Secret is [api.manager] secret, which every call except the open
	// ones (/, /status, /health, /livez, /readyz) must carry in the
	// X-BackendAI-Storage-Auth-Token header.
	Secret string
	// Volumes are the configured volumes in config order. Their names must
	// be unique.
	Volumes []volume.Volume
	// TokenSecret is [storage-proxy] secret, the HS256 key of the upload
	// and download tokens.
	TokenSecret []byte
	// SessionExpiry returns the expiry of a token minted at the given time:
	// the time plus [storage-proxy] session-expire.
	SessionExpiry func(time.Time) time.Time
	// MaxUploadSize is [storage-proxy] max-upload-size in bytes: upload
	// sessions of a larger size are rejected with 413. Zero means the
	// config's default of 100 GiB, and a negative value means no limit.
	MaxUploadSize int64
	// Version is the storage proxy version that /, /status and /health
	// report.
	Version string
	// Logger receives one INFO record per call and every error. Nil
	// discards them.
	Logger *slog.Logger
	// Ready returns the health of the components other than volumes (etcd,
	// worker processes) for /readyz and /health. Nil means none.
	Ready func(ctx context.Context) []Check
	// Now returns the time that token expiries count from. Nil means
	// time.Now.
	Now func() time.Time
}

// Check is the result of one readiness check.
type Check struct {
	// Name identifies the component, e.g. "etcd" or "volume:local".
	Name string
	// Err is nil when the component is healthy. Its text is shown without
	// authentication, so it must not contain secrets.
	Err error
}

// server is the manager API handler.
type server struct {
	opts    Options
	log     *slog.Logger
	volumes map[string]volume.Volume
	routes  map[string]map[string]route
}

// route is one method and path of the API.
type route struct {
	// name is upstream's handler name, logged as ManagerAPI::<name>.
	name string
	// open routes need no auth token.
	open bool
	// noParams routes reject any request body.
	noParams bool
	handle   func(w http.ResponseWriter, r *http.Request, body []byte) error
}

// New returns the manager API as an http.Handler. It serves the 28 routes
// of upstream 24.09 and GET /health, /livez and /readyz.
func New(opts Options) (http.Handler, error) {
	if opts.Secret == "" {
		return nil, errors.New("manager API: Secret ([api.manager] secret) is empty")
	}
	if len(opts.TokenSecret) == 0 {
		return nil, errors.New("manager API: TokenSecret ([storage-proxy] secret) is empty")
	}
	if opts.SessionExpiry == nil {
		return nil, errors.New("manager API: SessionExpiry ([storage-proxy] session-expire) is not set")
	}
	if opts.MaxUploadSize == 0 {
		opts.MaxUploadSize = defaultMaxUploadSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}

	s := &server{opts: opts, log: opts.Logger, volumes: map[string]volume.Volume{}}
	for _, v := range opts.Volumes {
		name := v.Info().Name
		if _, dup := s.volumes[name]; dup {
			return nil, fmt.Errorf("manager API: volume name %q is configured twice", name)
		}
		s.volumes[name] = v
	}
	s.routes = s.routeTable()
	return s, nil
}

func (s *server) routeTable() map[string]map[string]route {
	table := map[string]map[string]route{}
	add := func(method, path string, rt route) {
		if table[path] == nil {
			table[path] = map[string]route{}
		}
		table[path][method] = rt
	}

	add(http.MethodGet, "/", route{name: "GET_STATUS", open: true, noParams: true, handle: s.getStatus})
	add(http.MethodGet, "/status", route{name: "GET_STATUS", open: true, noParams: true, handle: s.getStatus})
	add(http.MethodGet, "/health", route{name: "GET_HEALTH", open: true, noParams: true, handle: s.getHealth})
	add(http.MethodGet, "/livez", route{name: "GET_LIVEZ", open: true, noParams: true, handle: s.getLivez})
	add(http.MethodGet, "/readyz", route{name: "GET_READYZ", open: true, noParams: true, handle: s.getReadyz})

	add(http.MethodGet, "/volumes", route{name: "GET_VOLUMES", noParams: true, handle: s.getVolumes})
	add(http.MethodGet, "/volume/hwinfo", route{name: "GET_HWINFO", handle: s.getHWInfo})
	add(http.MethodPost, "/quota-scope", route{name: "CREATE_QUOTA_SCOPE", handle: s.createQuotaScope})
	add(http.MethodGet, "/quota-scope", route{name: "GET_QUOTA_SCOPE", handle: s.getQuotaScope})
	add(http.MethodPatch, "/quota-scope", route{name: "UPDATE_QUOTA_SCOPE", handle: s.updateQuotaScope})
	add(http.MethodDelete, "/quota-scope/quota", route{name: "UNSET_QUOTA", handle: s.unsetQuota})
	add(http.MethodPost, "/folder/create", route{name: "CREATE_VFOLDER", handle: s.createFolder})
	add(http.MethodPost, "/folder/delete", route{name: "DELETE_VFOLDER", handle: s.deleteFolder})
	add(http.MethodPost, "/folder/clone", route{name: "CLONE_VFOLDER", handle: s.cloneFolder})
	add(http.MethodGet, "/folder/mount", route{name: "GET_CONTAINER_MOUNT", handle: s.getMount})
	add(http.MethodGet, "/volume/performance-metric", route{name: "GET_PERFORMANCE_METRIC", handle: s.getPerformanceMetric})
	add(http.MethodGet, "/folder/metadata", route{name: "GET_METADATA", handle: s.getMetadata})
	add(http.MethodPost, "/folder/metadata", route{name: "SET_METADATA", handle: s.setMetadata})
	add(http.MethodGet, "/volume/quota", route{name: "GET_QUOTA", handle: s.getLegacyQuota})
	add(http.MethodPatch, "/volume/quota", route{name: "UPDATE_QUOTA", handle: s.setLegacyQuota})
	add(http.MethodGet, "/folder/usage", route{name: "GET_VFOLDER_USAGE", handle: s.getUsage})
	add(http.MethodGet, "/folder/used-bytes", route{name: "GET_VFOLDER_USED_BYTES", handle: s.getUsedBytes})
	add(http.MethodGet, "/folder/fs-usage", route{name: "GET_VFOLDER_FS_USAGE", handle: s.getFSUsage})
	add(http.MethodPost, "/folder/file/mkdir", route{name: "MKDIR", handle: s.mkdir})
	add(http.MethodPost, "/folder/file/list", route{name: "LIST_FILES", handle: s.listFiles})
	add(http.MethodPost, "/folder/file/rename", route{name: "RENAME_FILE", handle: s.renameFile})
	add(http.MethodPost, "/folder/file/move", route{name: "MOVE_FILE", handle: s.moveFile})
	add(http.MethodPost, "/folder/file/fetch", route{name: "FETCH_FILE", handle: s.fetchFile})
	add(http.MethodPost, "/folder/file/download", route{name: "CREATE_DOWNLOAD_SESSION", handle: s.createDownloadSession})
	add(http.MethodPost, "/folder/file/upload", route{name: "CREATE_UPLOAD_SESSION", handle: s.createUploadSession})
	add(http.MethodPost, "/folder/file/delete", route{name: "DELETE_FILES", handle: s.deleteFiles})
	return table
}

// ServeHTTP authenticates, routes, reads the body and runs the handler, in
// that order: a request without a valid token gets 403 even for an
// unknown path or method, as upstream.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	methods, known := s.routes[r.URL.Path]
	rt, allowed := methods[r.Method]

	if !s.isOpenPath(r.URL.Path) {
		if resp := s.authenticate(r); resp != nil {
			s.log.Info("manager API call rejected: authentication failed", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "status", resp.status, "reason", resp.title)
			writeErrorResponse(w, resp)
			return
		}
	}
	if !known {
		writeErrorResponse(w, &apiError{status: http.StatusNotFound, code: "not-found", title: "Not Found",
			msg: fmt.Sprintf("no route %s; routes are case-sensitive and have no trailing slash", r.URL.Path)})
		return
	}
	if !allowed {
		allow := make([]string, 0, len(methods))
		for method := range methods {
			allow = append(allow, method)
		}
		sort.Strings(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeErrorResponse(w, &apiError{status: http.StatusMethodNotAllowed, code: "method-not-allowed", title: "Method Not Allowed",
			msg: fmt.Sprintf("%s %s is not allowed; use %s", r.Method, r.URL.Path, strings.Join(allow, ", "))})
		return
	}

	body, err := readBody(w, r)
	if err == nil && rt.noParams && len(body) > 0 {
		err = &apiError{status: http.StatusBadRequest, code: "malformed-request", title: "Malformed request (request body should be empty)",
			msg: r.URL.Path + " takes no parameters; send no request body"}
	}
	if err == nil {
		err = rt.handle(w, r, body)
	}
	if err != nil {
		s.writeError(w, r, rt.name, err)
	}
}

func (s *server) isOpenPath(path string) bool {
	methods, ok := s.routes[path]
	if !ok {
		return false
	}
	for _, rt := range methods {
		if rt.open {
			return true
		}
	}
	return false
}

// authenticate compares the auth header with the secret in constant time
// and returns the 403 response on a mismatch.
func (s *server) authenticate(r *http.Request) *apiError {
	token := r.Header.Get(authHeader)
	if token == "" {
		return &apiError{status: http.StatusForbidden, code: "forbidden", title: "Forbidden (missing auth token)",
			msg: "missing auth token: send the manager secret in the " + authHeader + " header"}
	}
	// Comparing digests keeps the time independent of the secret's length
	// too, which ConstantTimeCompare alone would reveal.
	got, want := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(s.opts.Secret))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return &apiError{status: http.StatusForbidden, code: "forbidden", title: "Forbidden (invalid auth token)",
			msg: "invalid auth token: the " + authHeader + " header does not match [api.manager] secret"}
	}
	return nil
}

// logCall writes the one INFO record of a handled call.
func (s *server) logCall(r *http.Request, name string, attrs ...any) {
	s.log.InfoContext(r.Context(), "ManagerAPI::"+name, attrs...)
}

// volume returns the named volume, or the 400 invalid-volume response.
func (s *server) volume(name string) (volume.Volume, error) {
	v, ok := s.volumes[name]
	if !ok {
		names := make([]string, 0, len(s.opts.Volumes))
		for _, v := range s.opts.Volumes {
			names = append(names, v.Info().Name)
		}
		return nil, &apiError{status: http.StatusBadRequest, code: "volume/invalid", title: "Invalid Volume",
			msg:  fmt.Sprintf("unknown volume %q; configured volumes: %s", name, strings.Join(names, ", ")),
			data: map[string]any{"volume": "unknown volume"}}
	}
	return v, nil
}
