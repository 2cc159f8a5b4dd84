package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden from the current error messages")

// testdataPlaceholder replaces the absolute path of testdata in golden files,
// so that they do not depend on where the repository is checked out.
const testdataPlaceholder = "$TESTDATA"

func TestLoadBrokenConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("found %d broken configs under testdata/bad, expected at least 20", len(files))
	}

	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".toml")
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(file, nil)
			if err == nil {
				t.Fatalf("Load(%s) succeeded with %+v, expected a validation error", file, cfg)
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Load(%s) returned %T %v, expected *ValidationError", file, err, err)
			}
			got := hideTestdataPath(t, verr.Error()) + "\n"

			golden := strings.TrimSuffix(file, ".toml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden file (run go test -run TestLoadBrokenConfigs -update to create it): %v", err)
			}
			if got != string(want) {
				t.Errorf("error text of %s differs from %s\ngot:\n%s\nwant:\n%s", file, golden, got, want)
			}
		})
	}
}

func TestGoldenFilesHaveConfigs(t *testing.T) {
	goldens, err := filepath.Glob(filepath.Join("testdata", "bad", "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, golden := range goldens {
		config := strings.TrimSuffix(golden, ".golden") + ".toml"
		if _, err := os.Stat(config); err != nil {
			t.Errorf("golden file %s has no config: %v", golden, err)
		}
	}
}

func TestLoadMinimalConfig(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "good", "minimal.toml"), nil)
	if err != nil {
		t.Fatalf("Load(minimal.toml): %v", err)
	}
	if len(cfg.Unknown) != 0 {
		t.Errorf("Unknown = %v, expected none", cfg.Unknown)
	}
	if len(cfg.Ignored) != 0 {
		t.Errorf("Ignored = %v, expected none", cfg.Ignored)
	}
}

func TestSecretsHiddenFromErrors(t *testing.T) {
	_, err := Load(filepath.Join("testdata", "bad", "secret-wrong-type.toml"), nil)
	if err == nil {
		t.Fatal("Load succeeded, expected a validation error")
	}
	if strings.Contains(err.Error(), "123456789") {
		t.Errorf("error message shows the secret: %v", err)
	}
	var verr *ValidationError
	if errors.As(err, &verr) && verr.Errors[0].Value != `"***"` {
		t.Errorf("FieldError.Value = %s, expected the mask", verr.Errors[0].Value)
	}
}

// hideTestdataPath replaces the absolute testdata directory, in its plain
// and its symlink-resolved form, by testdataPlaceholder.
func hideTestdataPath(t *testing.T, text string) string {
	t.Helper()
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		t.Fatal(err)
	}
	text = strings.ReplaceAll(text, resolved, testdataPlaceholder)
	return strings.ReplaceAll(text, abs, testdataPlaceholder)
}
