package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// HostPort is a network address as the config writes it. Host is empty for
// "all interfaces" (service-addr only), and IPv6 hosts carry no brackets.
type HostPort struct {
	Host string
	Port int
}

// String returns the address in "host:port" form, with brackets around an
// IPv6 host.
func (hp HostPort) String() string {
	return net.JoinHostPort(hp.Host, strconv.Itoa(hp.Port))
}

// ParseHostPort parses "host:port". The string is split at its last colon,
// so "[::1]:2379" and "::1:2379" are the same address. The host may be empty,
// an IP address or a host name, and the port must be 1 to 65535.
func ParseHostPort(s string) (HostPort, error) {
	return hostPortFromValue(s, true)
}

// hostPortFromValue parses the three forms of a host/port pair: the string
// "host:port", the array [host, port] and the table { host = ..., port = ... }.
// A port may be an integer or a digit string, as upstream accepts both.
func hostPortFromValue(v any, allowBlankHost bool) (HostPort, error) {
	const forms = `use "host:port", [host, port] or { host = "...", port = N }`
	var host, port any
	switch v := v.(type) {
	case string:
		i := strings.LastIndexByte(v, ':')
		if i < 0 {
			return HostPort{}, fmt.Errorf("invalid address %s (a port is missing, %s)", renderValue(v), forms)
		}
		host, port = v[:i], v[i+1:]
	case []any:
		if len(v) != 2 {
			return HostPort{}, fmt.Errorf("invalid address %s (an array needs exactly a host and a port)", renderValue(v))
		}
		host, port = v[0], v[1]
	case map[string]any:
		var hasHost, hasPort bool
		host, hasHost = v["host"]
		port, hasPort = v["port"]
		if !hasHost || !hasPort {
			return HostPort{}, fmt.Errorf("invalid address %s (a table needs both host and port)", renderValue(v))
		}
	default:
		return HostPort{}, fmt.Errorf("invalid address %s (%s)", renderValue(v), forms)
	}

	hostName, err := checkHost(host, allowBlankHost)
	if err != nil {
		return HostPort{}, fmt.Errorf("invalid address %s (%w)", renderValue(v), err)
	}
	portNumber, ok := portFromValue(port)
	if !ok {
		return HostPort{}, fmt.Errorf("invalid port %s in %s (use 1 to 65535)", renderValue(port), renderValue(v))
	}
	return HostPort{Host: hostName, Port: portNumber}, nil
}

// checkHost returns the host without IPv6 brackets. Upstream accepts any
// string, but this rejects characters that can appear in neither an IP
// address nor a host name, so that a typo fails at load time.
func checkHost(v any, allowBlank bool) (string, error) {
	host, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("the host %s is not a string", renderValue(v))
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		if allowBlank {
			return "", nil
		}
		return "", errors.New("the host is empty")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return host, nil
	}
	for _, r := range host {
		isLetterOrDigit := (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !isLetterOrDigit && r != '-' && r != '.' && r != '_' {
			return "", fmt.Errorf("the host %s is neither an IP address nor a host name", quoteString(host))
		}
	}
	return host, nil
}

func portFromValue(v any) (int, bool) {
	var n int64
	switch v := v.(type) {
	case int64:
		n = v
	case string:
		parsed, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, false
		}
		n = parsed
	default:
		return 0, false
	}
	if n < 1 || n > 65535 {
		return 0, false
	}
	return int(n), true
}

// ToBool converts a value the way upstream's ToBool does. true, and the
// strings or numbers t, true, y, yes, on, 1 and 1.0 are true. false, nil,
// and false, n, no, off, 0, none and 0.0 are false. Strings are compared
// without case and surrounding spaces. Everything else is an error.
func ToBool(v any) (bool, error) {
	var text string
	switch v := v.(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string:
		text = v
	case int64:
		text = strconv.FormatInt(v, 10)
	case int:
		text = strconv.Itoa(v)
	case float64:
		// Python's str() of a float, which upstream compares: 1.0 -> "1.0".
		if v == math.Trunc(v) && !math.IsInf(v, 0) {
			text = strconv.FormatFloat(v, 'f', 1, 64)
		} else {
			text = strconv.FormatFloat(v, 'g', -1, 64)
		}
	default:
		return false, fmt.Errorf("invalid boolean %s (use true or false)", renderValue(v))
	}
	switch strings.ToLower(strings.TrimSpace(text)) {
	case "t", "true", "y", "yes", "on", "1", "1.0":
		return true, nil
	case "false", "n", "no", "off", "0", "none", "0.0":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %s (use true or false)", renderValue(v))
}

// idKind describes the differences between the user and group keys.
type idKind struct {
	noun    string // "user" or "group"
	idName  string // "uid" or "gid"
	current func() int
	lookup  func(name string) (string, error) // returns the numeric id as text
}

var (
	userKind = idKind{
		noun: "user", idName: "uid", current: os.Getuid,
		lookup: func(name string) (string, error) {
			u, err := user.Lookup(name)
			if err != nil {
				return "", err
			}
			return u.Uid, nil
		},
	}
	// groupKind looks names up in the group database. Upstream looks a group
	// name up in the password database and takes that user's primary gid.
	groupKind = idKind{
		noun: "group", idName: "gid", current: os.Getgid,
		lookup: func(name string) (string, error) {
			g, err := user.LookupGroup(name)
			if err != nil {
				return "", err
			}
			return g.Gid, nil
		},
	}
)

// resolveID converts a user or group value: an integer id, -1 for the id of
// this process, a numeric string, or a name. The caller handles a missing or
// empty value, which selects the default.
func resolveID(kind idKind, v any) (int, error) {
	switch v := v.(type) {
	case int64:
		switch {
		case v == -1:
			return kind.current(), nil
		case v < 0 || v > math.MaxUint32-1:
			return 0, fmt.Errorf("invalid %s %d (use a %s of 0 or more, or -1 for the %s of this process)", kind.idName, v, kind.idName, kind.idName)
		}
		return int(v), nil
	case string:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return resolveID(kind, n)
		}
		id, err := kind.lookup(v)
		var unknownUser user.UnknownUserError
		var unknownGroup user.UnknownGroupError
		switch {
		case errors.As(err, &unknownUser) || errors.As(err, &unknownGroup):
			return 0, fmt.Errorf("unknown %s %s (use a %s name that exists on this host or a numeric %s)", kind.noun, quoteString(v), kind.noun, kind.idName)
		case err != nil:
			return 0, fmt.Errorf("failed to look up %s %s: %w", kind.noun, quoteString(v), err)
		}
		n, err := strconv.Atoi(id)
		if err != nil {
			return 0, fmt.Errorf("%s %s has the non-numeric %s %q", kind.noun, quoteString(v), kind.idName, id)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("invalid %s %s (use a name or a numeric %s)", kind.noun, renderValue(v), kind.idName)
	}
}
