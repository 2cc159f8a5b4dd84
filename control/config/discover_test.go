package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// etcConfig is the last candidate of Discover, outside any test directory.
var etcConfig = filepath.Join("/etc/backend.ai", FileName)

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func envOf(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func skipIfEtcConfigExists(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(etcConfig); err == nil {
		t.Skipf("%s exists on this host and would be found", etcConfig)
	}
}

func TestDiscoverEnvOnly(t *testing.T) {
	root := resolvedTempDir(t)
	home := filepath.Join(root, "home")
	cwd := filepath.Join(home, "work")
	touch(t, filepath.Join(cwd, FileName))
	fromEnv := filepath.Join(root, "elsewhere.toml")

	_, searched, err := Discover(envOf(map[string]string{"BACKEND_CONFIG_FILE": fromEnv}), cwd, home)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Discover with a missing BACKEND_CONFIG_FILE returned %v, expected ErrNotFound", err)
	}
	if !slices.Equal(searched, []string{fromEnv}) {
		t.Errorf("searched = %v, expected only %s", searched, fromEnv)
	}
	if !strings.Contains(err.Error(), fromEnv) {
		t.Errorf("error %q does not name %s", err, fromEnv)
	}

	touch(t, fromEnv)
	got, _, err := Discover(envOf(map[string]string{"BACKEND_CONFIG_FILE": fromEnv}), cwd, home)
	if err != nil || got != fromEnv {
		t.Errorf("Discover = %q, %v, expected %s", got, err, fromEnv)
	}
}

func TestDiscoverEnvRelativeToCwd(t *testing.T) {
	cwd := resolvedTempDir(t)
	touch(t, filepath.Join(cwd, "conf", "sp.toml"))

	got, _, err := Discover(envOf(map[string]string{"BACKEND_CONFIG_FILE": "conf/sp.toml"}), cwd, cwd)
	if want := filepath.Join(cwd, "conf", "sp.toml"); err != nil || got != want {
		t.Errorf("Discover = %q, %v, expected %s", got, err, want)
	}
}

func TestDiscoverOrder(t *testing.T) {
	skipIfEtcConfigExists(t)
	root := resolvedTempDir(t)
	home := filepath.Join(root, "home")
	project := filepath.Join(home, "src", "backend.ai")
	cwd := filepath.Join(project, "storage", "run")
	if err := os.MkdirAll(cwd, 0o755); err != nil {
		t.Fatal(err)
	}
	touch(t, filepath.Join(project, "BUILD_ROOT"))
	// BUILD_ROOT outside home is ignored.
	touch(t, filepath.Join(root, "BUILD_ROOT"))
	touch(t, filepath.Join(root, FileName))

	inCwd := filepath.Join(cwd, FileName)
	inProject := filepath.Join(project, FileName)
	inHome := filepath.Join(home, ".config", "backend.ai", FileName)
	wantOrder := []string{inCwd, inProject, inHome, etcConfig}

	_, searched, err := Discover(envOf(nil), cwd, home)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Discover with no files returned %v, expected ErrNotFound", err)
	}
	if !slices.Equal(searched, wantOrder) {
		t.Fatalf("searched = %v\nexpected %v", searched, wantOrder)
	}
	for _, path := range wantOrder {
		if !strings.Contains(err.Error(), path) {
			t.Errorf("error %q does not name %s", err, path)
		}
	}

	// Create the candidates from last to first: each new one must win.
	for i := len(wantOrder) - 2; i >= 0; i-- {
		touch(t, wantOrder[i])
		got, searched, err := Discover(envOf(nil), cwd, home)
		if err != nil || got != wantOrder[i] {
			t.Errorf("Discover = %q, %v, expected %s", got, err, wantOrder[i])
		}
		if !slices.Equal(searched, wantOrder[:i+1]) {
			t.Errorf("searched = %v, expected %v", searched, wantOrder[:i+1])
		}
	}
}

func TestDiscoverSkipsDirectories(t *testing.T) {
	cwd := resolvedTempDir(t)
	if err := os.Mkdir(filepath.Join(cwd, FileName), 0o755); err != nil {
		t.Fatal(err)
	}
	inHome := filepath.Join(cwd, ".config", "backend.ai", FileName)
	touch(t, inHome)

	got, _, err := Discover(nil, cwd, cwd)
	if err != nil || got != inHome {
		t.Errorf("Discover = %q, %v, expected %s", got, err, inHome)
	}
}
