package config

import (
	"math"
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	valid := []struct {
		in   string
		want int64
	}{
		{"100g", 107374182400},
		{"100G", 107374182400},
		{"1.5m", 1572864},
		{"0", 0},
		{"1048576", 1048576},
		{"1_048_576", 1048576},
		{" 42 ", 42},
		{"10M", 10 << 20},
		{"2k", 2048},
		{"2kb", 2048},
		{"2KiB", 2048},
		{"2kbytes", 2048},
		{"2kibytes", 2048},
		{"2 kibyte", 2048},
		{"10 GiB", 10 << 30},
		{"5 b", 5},
		{"1.5 bytes", 1},
		{".5k", 512},
		{"1.1t", 1209462790553},
		{"7e", 7 << 60},
		{"8191p", 8191 << 50},
		{"9223372036854775807", math.MaxInt64},
		{"inf", Unlimited},
		{"Infinite", Unlimited},
		{"INFINITY", Unlimited},
	}
	for _, c := range valid {
		got, err := ParseSize(c.in)
		if err != nil {
			t.Errorf("ParseSize(%q) failed: %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseSize(%q) = %d, expected %d", c.in, got, c.want)
		}
	}

	invalid := []string{
		"", "1.5", "100b", "2bytes", "12x", "k", "-1", "-1k", "1e3", "1.5.5m", "1y", "8e",
		"9223372036854775808", "ib", "+5", "1..5k", "m5",
	}
	for _, in := range invalid {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, expected an error", in, got)
		}
	}
}

func TestFormatSize(t *testing.T) {
	cases := []struct {
		in   int64
		want string
	}{
		{Unlimited, "inf"},
		{0, "0"},
		{1, "1"},
		{1023, "1023"},
		{1024, "1k"},
		{1536, "1536"},
		{1536 << 10, "1536k"},
		{100 << 30, "100g"},
		{7 << 60, "7e"},
		{math.MaxInt64, "9223372036854775807"},
	}
	for _, c := range cases {
		if got := FormatSize(c.in); got != c.want {
			t.Errorf("FormatSize(%d) = %q, expected %q", c.in, got, c.want)
		}
		if back, err := ParseSize(FormatSize(c.in)); err != nil || back != c.in {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", c.in, back, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	valid := []struct {
		in   string
		want Duration
	}{
		{"1d", Duration{Seconds: 86400}},
		{"1.5h", Duration{Seconds: 5400}},
		{"3600", Duration{Seconds: 3600}},
		{"1.5", Duration{Seconds: 1.5}},
		{"1.", Duration{Seconds: 1}},
		{".5m", Duration{Seconds: 30}},
		{"0", Duration{}},
		{"2w", Duration{Seconds: 2 * 7 * 86400}},
		{"90m", Duration{Seconds: 5400}},
		{"30s", Duration{Seconds: 30}},
		{"2mo", Duration{Months: 2}},
		{"1yr", Duration{Years: 1}},
		{"292yr", Duration{Years: 292}},
		{"3504mo", Duration{Months: 3504}},
		{" 1d ", Duration{Seconds: 86400}},
	}
	for _, c := range valid {
		got, err := ParseDuration(c.in)
		if err != nil {
			t.Errorf("ParseDuration(%q) failed: %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseDuration(%q) = %+v, expected %+v", c.in, got, c.want)
		}
	}

	invalid := []string{
		"", "10ms", "-1d", "-5", "1D", "1.5mo", "1.5yr", "1e3", "abc", "1d2h", "1 d", ".", "293yr", "3505mo",
		"99999999999999999999yr", "10000000000", "1.5.5", "d",
	}
	for _, in := range invalid {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %+v, expected an error", in, got)
		}
	}
}

func TestDurationString(t *testing.T) {
	cases := []struct {
		in   Duration
		want string
	}{
		{Duration{}, "0s"},
		{Duration{Seconds: 86400}, "1d"},
		{Duration{Seconds: 5400}, "90m"},
		{Duration{Seconds: 1.5}, "1.5s"},
		{Duration{Seconds: 604800}, "1w"},
		{Duration{Seconds: 90000}, "25h"},
		{Duration{Months: 2}, "2mo"},
		{Duration{Years: 1}, "1yr"},
		{Duration{Years: 1, Months: 2}, "1yr2mo"},
	}
	for _, c := range cases {
		if got := c.in.String(); got != c.want {
			t.Errorf("%+v.String() = %q, expected %q", c.in, got, c.want)
		}
	}
}

func TestDurationAddTo(t *testing.T) {
	start := time.Date(2024, time.January, 15, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
	}{
		{"1d", start.Add(24 * time.Hour)},
		{"1.5h", start.Add(90 * time.Minute)},
		{"2mo", time.Date(2024, time.March, 15, 12, 0, 0, 0, time.UTC)},
		{"1yr", time.Date(2025, time.January, 15, 12, 0, 0, 0, time.UTC)},
		{"0.25s", start.Add(250 * time.Millisecond)},
	}
	for _, c := range cases {
		d, err := ParseDuration(c.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.AddTo(start); !got.Equal(c.want) {
			t.Errorf("ParseDuration(%q).AddTo(%v) = %v, expected %v", c.in, start, got, c.want)
		}
	}
}

func TestDurationTimeDuration(t *testing.T) {
	if got, ok := (Duration{Seconds: 1.5}).TimeDuration(); !ok || got != 1500*time.Millisecond {
		t.Errorf("TimeDuration of 1.5s = %v, %v", got, ok)
	}
	if _, ok := (Duration{Months: 1}).TimeDuration(); ok {
		t.Error("TimeDuration of 1mo reported a fixed length")
	}
}

func TestParseHostPort(t *testing.T) {
	valid := []struct {
		in   string
		want HostPort
	}{
		{"127.0.0.1:2379", HostPort{"127.0.0.1", 2379}},
		{"etcd.example.com:2379", HostPort{"etcd.example.com", 2379}},
		{"[::1]:6021", HostPort{"::1", 6021}},
		{"::1:6021", HostPort{"::1", 6021}},
		{"[fe80::1%eth0]:80", HostPort{"fe80::1%eth0", 80}},
		{":6021", HostPort{"", 6021}},
		{"host:65535", HostPort{"host", 65535}},
		{"host:1", HostPort{"host", 1}},
	}
	for _, c := range valid {
		got, err := ParseHostPort(c.in)
		if err != nil {
			t.Errorf("ParseHostPort(%q) failed: %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseHostPort(%q) = %+v, expected %+v", c.in, got, c.want)
		}
	}

	invalid := []string{"localhost", "host:0", "host:65536", "host:70000", "host:-1", "host:http", "bad host:80", "a/b:80", "[::1", "host:"}
	for _, in := range invalid {
		if got, err := ParseHostPort(in); err == nil {
			t.Errorf("ParseHostPort(%q) = %+v, expected an error", in, got)
		}
	}
}

func TestHostPortForms(t *testing.T) {
	want := HostPort{"10.0.0.1", 6022}
	forms := []any{
		"10.0.0.1:6022",
		[]any{"10.0.0.1", int64(6022)},
		[]any{"10.0.0.1", "6022"},
		map[string]any{"host": "10.0.0.1", "port": int64(6022)},
	}
	for _, form := range forms {
		got, err := hostPortFromValue(form, false)
		if err != nil {
			t.Errorf("hostPortFromValue(%s) failed: %v", renderValue(form), err)
			continue
		}
		if got != want {
			t.Errorf("hostPortFromValue(%s) = %+v, expected %+v", renderValue(form), got, want)
		}
	}

	invalid := []any{
		[]any{"10.0.0.1"},
		[]any{"10.0.0.1", int64(1), int64(2)},
		map[string]any{"host": "10.0.0.1"},
		map[string]any{"port": int64(80)},
		map[string]any{"host": int64(1), "port": int64(80)},
		map[string]any{"host": "", "port": int64(80)},
		int64(80),
		true,
	}
	for _, form := range invalid {
		if got, err := hostPortFromValue(form, false); err == nil {
			t.Errorf("hostPortFromValue(%s) = %+v, expected an error", renderValue(form), got)
		}
	}

	if got, err := hostPortFromValue(map[string]any{"host": "", "port": int64(80)}, true); err != nil || got != (HostPort{"", 80}) {
		t.Errorf("blank host with allowBlankHost = %+v, %v", got, err)
	}
}

func TestHostPortString(t *testing.T) {
	cases := map[HostPort]string{
		{"127.0.0.1", 2379}: "127.0.0.1:2379",
		{"::1", 6021}:       "[::1]:6021",
		{"", 6021}:          ":6021",
	}
	for hp, want := range cases {
		if got := hp.String(); got != want {
			t.Errorf("%+v.String() = %q, expected %q", hp, got, want)
		}
	}
}

func TestToBool(t *testing.T) {
	trueValues := []any{true, "t", "T", "true", "True", "y", "yes", "YES", "on", "1", "1.0", " on ", int64(1), 1.0}
	falseValues := []any{false, nil, "false", "FALSE", "n", "no", "off", "0", "none", "None", "0.0", int64(0), 0.0}
	invalid := []any{"f", "maybe", "", "2", int64(2), int64(-1), 0.5, []any{}, map[string]any{}}

	for _, v := range trueValues {
		if got, err := ToBool(v); err != nil || !got {
			t.Errorf("ToBool(%s) = %v, %v, expected true", renderValue(v), got, err)
		}
	}
	for _, v := range falseValues {
		if got, err := ToBool(v); err != nil || got {
			t.Errorf("ToBool(%s) = %v, %v, expected false", renderValue(v), got, err)
		}
	}
	for _, v := range invalid {
		if got, err := ToBool(v); err == nil {
			t.Errorf("ToBool(%s) = %v, expected an error", renderValue(v), got)
		}
	}
}

func TestResolveID(t *testing.T) {
	cases := []struct {
		kind idKind
		in   any
		want int
	}{
		{userKind, int64(1100), 1100},
		{userKind, "1100", 1100},
		{userKind, int64(-1), os.Getuid()},
		{userKind, "-1", os.Getuid()},
		{groupKind, int64(0), 0},
		{groupKind, int64(-1), os.Getgid()},
		{userKind, "root", 0},
		{groupKind, "root", 0},
	}
	for _, c := range cases {
		got, err := resolveID(c.kind, c.in)
		if err != nil {
			t.Errorf("resolveID(%s, %s) failed: %v", c.kind.noun, renderValue(c.in), err)
			continue
		}
		if got != c.want {
			t.Errorf("resolveID(%s, %s) = %d, expected %d", c.kind.noun, renderValue(c.in), got, c.want)
		}
	}

	for _, in := range []any{int64(-2), "no-such-user-bai", 1.5, true} {
		if got, err := resolveID(userKind, in); err == nil {
			t.Errorf("resolveID(user, %s) = %d, expected an error", renderValue(in), got)
		}
	}
}

// TestGroupNameUsesGroupDatabase finds a group whose name is not a user
// name, which upstream resolves through the password database and fails on.
func TestGroupNameUsesGroupDatabase(t *testing.T) {
	data, err := os.ReadFile("/etc/group")
	if err != nil {
		t.Skipf("no /etc/group: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Split(line, ":")
		if len(fields) < 3 {
			continue
		}
		if _, err := user.Lookup(fields[0]); err == nil {
			continue
		}
		gid, err := strconv.Atoi(fields[2])
		if err != nil {
			continue
		}
		got, err := resolveID(groupKind, fields[0])
		if err != nil || got != gid {
			t.Errorf("resolveID(group, %q) = %d, %v, expected gid %d", fields[0], got, err, gid)
		}
		return
	}
	t.Skip("every group name in /etc/group is also a user name")
}
