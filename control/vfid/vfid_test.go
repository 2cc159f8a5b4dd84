package vfid

import (
	"errors"
	"testing"
)

func TestParseVFolderID(t *testing.T) {
	cases := []struct {
		in, canonical, path string
	}{
		{"user:3e1c7c7a-5f0a-4c51-9a2d-0c6a2b7f4e11/9b2f4c1d8e7a4b6c9d0e1f2a3b4c5d6e",
			"user:3e1c7c7a-5f0a-4c51-9a2d-0c6a2b7f4e11/9b2f4c1d8e7a4b6c9d0e1f2a3b4c5d6e",
			"/vfroot/local/3e1c7c7a5f0a4c519a2d0c6a2b7f4e11/9b/2f/4c1d8e7a4b6c9d0e1f2a3b4c5d6e"},
		{"PROJECT:3E1C7C7A5F0A4C519A2D0C6A2B7F4E11/9B2F4C1D-8E7A-4B6C-9D0E-1F2A3B4C5D6E",
			"project:3e1c7c7a-5f0a-4c51-9a2d-0c6a2b7f4e11/9b2f4c1d8e7a4b6c9d0e1f2a3b4c5d6e",
			"/vfroot/local/3e1c7c7a5f0a4c519a2d0c6a2b7f4e11/9b/2f/4c1d8e7a4b6c9d0e1f2a3b4c5d6e"},
		{"9b2f4c1d8e7a4b6c9d0e1f2a3b4c5d6e", "9b2f4c1d8e7a4b6c9d0e1f2a3b4c5d6e",
			"/vfroot/local/9b/2f/4c1d8e7a4b6c9d0e1f2a3b4c5d6e"},
	}
	for _, c := range cases {
		v, err := Parse(c.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.in, err)
		}
		if got := v.String(); got != c.canonical {
			t.Errorf("Parse(%q).String() = %q, want %q", c.in, got, c.canonical)
		}
		if got := v.Path("/vfroot/local"); got != c.path {
			t.Errorf("Parse(%q).Path() = %q, want %q", c.in, got, c.path)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	bad := []string{
		"", "user:", "domain:3e1c7c7a-5f0a-4c51-9a2d-0c6a2b7f4e11/9b2f4c1d8e7a4b6c9d0e1f2a3b4c5d6e",
		"user:abc/9b2f4c1d8e7a4b6c9d0e1f2a3b4c5d6e", "user:3e1c7c7a-5f0a-4c51-9a2d-0c6a2b7f4e11/../x",
		"../../etc", "9b2f4c1d8e7a4b6c9d0e1f2a3b4c5d6", "9b2f4c1d8e7a4b6c9d0e1f2a3b4c5d6z",
		"user:3e1c7c7a-5f0a-4c51-9a2d-0c6a2b7f4e11/", "user:3e1c7c7a_5f0a_4c51_9a2d_0c6a2b7f4e11/9b2f4c1d8e7a4b6c9d0e1f2a3b4c5d6e",
	}
	for _, s := range bad {
		if _, err := Parse(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) error = %v, want ErrInvalid", s, err)
		}
	}
}

func TestStagingDirOutsideFolder(t *testing.T) {
	v, err := Parse("user:3e1c7c7a-5f0a-4c51-9a2d-0c6a2b7f4e11/9b2f4c1d8e7a4b6c9d0e1f2a3b4c5d6e")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v.StagingDir("/m"), "/m/3e1c7c7a5f0a4c519a2d0c6a2b7f4e11/.upload"; got != want {
		t.Errorf("StagingDir = %q, want %q", got, want)
	}
}
