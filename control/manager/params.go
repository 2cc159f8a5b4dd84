package manager

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bai-storage/storage-proxy/control/vfid"
)

// maxBodySize is the largest request body accepted, as aiohttp's default
// client_max_size that upstream runs with: 1 MiB.
const maxBodySize = 1 << 20

// readBody reads the whole request body, up to maxBodySize bytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: "request-too-large", title: "Request Entity Too Large",
			msg: fmt.Sprintf("the request body is larger than %d bytes", maxBodySize)}
	}
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	return body, nil
}

// params are the parameters of one call, checked against the route's
// schema: getters record a message per invalid field, and err returns them
// all as one invalid-api-params error.
type params struct {
	fields  map[string]json.RawMessage
	invalid map[string]string
}

// parseParams decodes a JSON object body and rejects keys outside allowed.
func parseParams(body []byte, allowed ...string) (*params, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalidParams("", "the request body is empty; send the parameters as a JSON object", "value is not a dict")
	}
	if err := checkJSONText(body); err != nil {
		return nil, invalidParams("", "the request body is not valid JSON: "+err.Error(), "value is not a dict")
	}
	trimmed := bytes.TrimSpace(body)
	if trimmed[0] != '{' {
		return nil, invalidParams("", "the request body must be a JSON object", "value is not a dict")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return nil, invalidParams("", "the request body is not valid JSON: "+err.Error(), "value is not a dict")
	}
	return newParams(fields, allowed)
}

func newParams(fields map[string]json.RawMessage, allowed []string) (*params, error) {
	p := &params{fields: fields, invalid: map[string]string{}}
	for key := range fields {
		if !contains(allowed, key) {
			p.invalid[key] = fmt.Sprintf("%s is not allowed key (allowed: %s)", key, strings.Join(allowed, ", "))
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// queryParams turns the query string into parameters, for the one route
// that accepts it (mkdir with an empty body). A key given several times,
// or once with a JSON list as its value, becomes a list.
func queryParams(query url.Values, allowed ...string) (*params, error) {
	fields := map[string]json.RawMessage{}
	for key, values := range query {
		var value any = values[0]
		if len(values) > 1 {
			value = values
		} else if strings.HasPrefix(values[0], "[") {
			var list []string
			if err := json.Unmarshal([]byte(values[0]), &list); err != nil {
				return nil, invalidParams(key, fmt.Sprintf("query parameter %s is not a JSON list of strings", key), "value is not a JSON list of strings")
			}
			value = list
		}
		raw, err := json.Marshal(value)
		if err != nil {
			return nil, invalidParams(key, "query parameter "+key+" is not valid UTF-8", "value is not a string")
		}
		fields[key] = raw
	}
	return newParams(fields, allowed)
}

func contains(list []string, s string) bool {
	for _, item := range list {
		if item == s {
			return true
		}
	}
	return false
}

// err returns the invalid fields as one error, or nil.
func (p *params) err() error {
	if len(p.invalid) == 0 {
		return nil
	}
	keys := make([]string, 0, len(p.invalid))
	for key := range p.invalid {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	data := map[string]any{}
	for i, key := range keys {
		parts[i] = key + ": " + p.invalid[key]
		data[key] = p.invalid[key]
	}
	return &apiError{status: http.StatusBadRequest, code: "invalid-api-params", title: "Invalid API parameters",
		msg: "invalid API parameters: " + strings.Join(parts, "; "), data: data}
}

// invalidParams returns an invalid-api-params error for one field, or for
// the whole body when field is empty (data is then a plain string).
func invalidParams(field, msg, reason string) *apiError {
	e := &apiError{status: http.StatusBadRequest, code: "invalid-api-params", title: "Invalid API parameters", msg: msg}
	if field == "" {
		e.data = reason
	} else {
		e.data = map[string]any{field: reason}
	}
	return e
}

func (p *params) has(key string) bool {
	raw, ok := p.fields[key]
	return ok && !isNull(raw)
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// str returns the required non-empty string key.
func (p *params) str(key string) string {
	raw, ok := p.fields[key]
	if !ok {
		p.invalid[key] = "is required"
		return ""
	}
	s, ok := decodeString(raw)
	switch {
	case !ok:
		p.invalid[key] = "value is not a string"
	case s == "":
		p.invalid[key] = "blank value is not allowed"
	}
	return s
}

// nullableStr returns the optional string-or-null key, or nil when it is
// absent or null.
func (p *params) nullableStr(key string) *string {
	if !p.has(key) {
		return nil
	}
	s, ok := decodeString(p.fields[key])
	if !ok || s == "" {
		p.invalid[key] = "value is not a non-empty string or null"
		return nil
	}
	return &s
}

// requireKey records a missing key whose value may be null.
func (p *params) requireKey(key string) {
	if _, ok := p.fields[key]; !ok {
		p.invalid[key] = "is required"
	}
}

func decodeString(raw json.RawMessage) (string, bool) {
	var s string
	if isNull(raw) || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// vfid returns the required vfolder id key.
func (p *params) vfid(key string) vfid.VFolderID {
	s := p.str(key)
	if _, bad := p.invalid[key]; bad {
		return vfid.VFolderID{}
	}
	id, err := vfid.Parse(s)
	if err != nil {
		p.invalid[key] = err.Error()
	}
	return id
}

// nullableVFID returns the optional vfid-or-null key.
func (p *params) nullableVFID(key string) *vfid.VFolderID {
	if !p.has(key) {
		return nil
	}
	id := p.vfid(key)
	return &id
}

// qsid returns the required quota scope id key.
func (p *params) qsid(key string) vfid.QuotaScopeID {
	s := p.str(key)
	if _, bad := p.invalid[key]; bad {
		return vfid.QuotaScopeID{}
	}
	id, err := vfid.ParseQuotaScopeID(s)
	if err != nil {
		p.invalid[key] = err.Error()
	}
	return id
}

// relpath returns the required relative path key: a string that is not
// absolute. The empty string means the vfolder root. Containment is
// checked later by the volume.
func (p *params) relpath(key string) string {
	raw, ok := p.fields[key]
	if !ok {
		p.invalid[key] = "is required"
		return ""
	}
	s, msg := checkRelpath(raw)
	if msg != "" {
		p.invalid[key] = msg
	}
	return s
}

// optionalRelpath returns the relative path key, or def when absent.
func (p *params) optionalRelpath(key, def string) string {
	if _, ok := p.fields[key]; !ok {
		return def
	}
	return p.relpath(key)
}

func checkRelpath(raw json.RawMessage) (string, string) {
	s, ok := decodeString(raw)
	if !ok {
		return "", "value is not a string"
	}
	if strings.HasPrefix(s, "/") {
		return s, "expected relative path"
	}
	return s, ""
}

// relpathList returns the required list of relative paths, at most max
// long (0 means no limit). With single set, one string is accepted too.
func (p *params) relpathList(key string, max int, single bool) []string {
	raw, ok := p.fields[key]
	if !ok {
		p.invalid[key] = "is required"
		return nil
	}
	if single {
		if s, ok := decodeString(raw); ok {
			if strings.HasPrefix(s, "/") {
				p.invalid[key] = "expected relative path"
			}
			return []string{s}
		}
	}
	var items []json.RawMessage
	if isNull(raw) || json.Unmarshal(raw, &items) != nil {
		p.invalid[key] = "value is not a list"
		return nil
	}
	if max > 0 && len(items) > max {
		p.invalid[key] = fmt.Sprintf("list length is greater than %d", max)
		return nil
	}
	paths := make([]string, len(items))
	for i, item := range items {
		s, msg := checkRelpath(item)
		if msg != "" {
			p.invalid[key] = fmt.Sprintf("item %d: %s", i, msg)
			return nil
		}
		paths[i] = s
	}
	return paths
}

// toBool returns the optional ToBool key: a JSON boolean, null (false), or
// one of the strings and numbers of the config grammar.
func (p *params) toBool(key string, def bool) bool {
	raw, ok := p.fields[key]
	if !ok {
		return def
	}
	b, ok := parseToBool(raw)
	if !ok {
		p.invalid[key] = "value can't be converted to Bool"
	}
	return b
}

func parseToBool(raw json.RawMessage) (bool, bool) {
	if isNull(raw) {
		return false, true
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, true
	}
	text := string(bytes.TrimSpace(raw))
	if s, ok := decodeString(raw); ok {
		text = s
	}
	switch strings.ToLower(text) {
	case "t", "true", "y", "yes", "on", "1", "1.0":
		return true, true
	case "f", "false", "n", "no", "off", "0", "none", "0.0":
		return false, true
	}
	return false, false
}

// toInt returns the required ToInt key: an integer, or a string or number
// with an integer value.
func (p *params) toInt(key string) int64 {
	raw, ok := p.fields[key]
	if !ok {
		p.invalid[key] = "is required"
		return 0
	}
	n, ok := parseToInt(raw)
	if !ok {
		p.invalid[key] = "value can't be converted to int"
	}
	return n
}

func parseToInt(raw json.RawMessage) (int64, bool) {
	text := string(bytes.TrimSpace(raw))
	if s, ok := decodeString(raw); ok {
		text = strings.TrimSpace(s)
	} else if isNull(raw) || text == "" || text[0] == '[' || text[0] == '{' || text == "true" || text == "false" {
		return 0, false
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<62 {
		return 0, false
	}
	return int64(f), true
}

// object returns the optional object-or-null key, nil when absent or null.
func (p *params) object(key string) map[string]json.RawMessage {
	if !p.has(key) {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(p.fields[key], &obj) != nil {
		p.invalid[key] = "value is not a dict"
		return nil
	}
	return obj
}

// quotaConfig returns limit_bytes of the quota options object
// {"limit_bytes": ToInt}, or nil when the object is absent or null. Keys
// other than limit_bytes are rejected.
func (p *params) quotaConfig(key string, required bool) *int64 {
	if required && !p.has(key) {
		p.invalid[key] = "is required"
		return nil
	}
	obj := p.object(key)
	if obj == nil {
		return nil
	}
	for k := range obj {
		if k != "limit_bytes" {
			p.invalid[key] = fmt.Sprintf("%s is not allowed key (allowed: limit_bytes)", k)
			return nil
		}
	}
	raw, ok := obj["limit_bytes"]
	if !ok {
		p.invalid[key] = "limit_bytes is required"
		return nil
	}
	n, ok := parseToInt(raw)
	if !ok {
		p.invalid[key] = "limit_bytes: value can't be converted to int"
		return nil
	}
	return &n
}

// checkJSONText rejects bytes that are not UTF-8 and \u escapes of
// unpaired UTF-16 surrogates. encoding/json would turn both into U+FFFD,
// so a path could reach the file system as a name other than the one the
// client sent.
func checkJSONText(body []byte) error {
	if !utf8.Valid(body) {
		return errors.New("it is not valid UTF-8")
	}
	inString := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\' && i+1 < len(body):
			if body[i+1] != 'u' {
				i++
				continue
			}
			r, ok := hex4(body[i+2:])
			if !ok {
				return nil // malformed escape: json.Unmarshal reports it
			}
			i += 5
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return errors.New("it contains an unpaired UTF-16 surrogate escape")
			case r >= 0xD800 && r <= 0xDBFF:
				next, ok := hex4(body[min(i+3, len(body)):])
				if i+2 >= len(body) || body[i+1] != '\\' || body[i+2] != 'u' || !ok || next < 0xDC00 || next > 0xDFFF {
					return errors.New("it contains an unpaired UTF-16 surrogate escape")
				}
				i += 6
			}
		}
	}
	return nil
}

// hex4 decodes the four hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 16)
	return rune(n), err == nil
}
