package dataplane

import (
	"mime"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseRange checks that every Range header yields a range inside the
// file, or the whole file, or 416, and never more bytes than the file has.
func FuzzParseRange(f *testing.F) {
	for _, seed := range []string{
		"bytes=0-0", "bytes=-1", "bytes=500-", "bytes=-0", "bytes=0-499,100-599", "bytes=5-1",
		"bytes=9223372036854775807-", "bytes=-9223372036854775808", "items=0-1", "bytes= 1 - 2 ", "bytes=--1",
	} {
		f.Add(seed, int64(1000))
	}
	f.Add("bytes=4294967290-4294967305", int64(5<<30))
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		outcome, r := parseRange(header, size)
		switch outcome {
		case rangeFull, rangeUnsatisfiable:
		case rangePartial:
			if r.start < 0 || r.length <= 0 || r.start+r.length > size || r.start+r.length < r.start {
				t.Fatalf("parseRange(%q, %d) = [%d, +%d), outside the file", header, size, r.start, r.length)
			}
		default:
			t.Fatalf("parseRange(%q, %d): unknown outcome %d", header, size, outcome)
		}
	})
}

// FuzzContentDisposition checks that any file name gives a single header
// line whose filename* decodes back to the name.
func FuzzContentDisposition(f *testing.F) {
	for _, seed := range []string{"report.csv", `a"b\c`, "a\r\nX-Injected: 1", "한글 데이터.csv", "100% 'x'", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		v := contentDisposition(name)
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] >= 0x7f {
				t.Fatalf("contentDisposition(%q) has byte %#x", name, v[i])
			}
		}
		if !utf8.ValidString(name) || name == "" {
			return
		}
		_, params, err := mime.ParseMediaType(v)
		if err != nil {
			t.Fatalf("contentDisposition(%q) = %s does not parse: %v", name, v, err)
		}
		if params["filename"] != name && !strings.ContainsRune(name, utf8.RuneError) {
			t.Fatalf("contentDisposition(%q): filename* decodes to %q", name, params["filename"])
		}
	})
}
