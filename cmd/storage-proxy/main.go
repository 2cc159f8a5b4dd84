// Command storage-proxy is the Backend.AI storage proxy: it reads
// storage-proxy.toml, serves the manager API from a supervisor process and
// the client API from num-proc worker processes.
//
//	storage-proxy [-f PATH] [--debug] [--log-level LEVEL]
//	storage-proxy check-config [-f PATH]
//	storage-proxy --version
//
// Without -f the config is searched as upstream does: $BACKEND_CONFIG_FILE,
// ./storage-proxy.toml, ~/.config/backend.ai/storage-proxy.toml,
// /etc/backend.ai/storage-proxy.toml.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/bai-storage/storage-proxy/control/config"
	"github.com/bai-storage/storage-proxy/control/supervisor"
)

// version is set at build time with -X main.version=...
var version = "dev"

// envConfigFile carries the supervisor's resolved config path to workers, so
// both read the same file whatever the search order would find.
const envConfigFile = "STORAGE_PROXY_CONFIG_FILE"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// cli holds the command line.
type cli struct {
	configPath string
	debug      bool
	logLevel   string
	version    bool
}

func parseFlags(name string, args []string, stderr io.Writer) (cli, error) {
	var c cli
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, n := range []string{"f", "config", "config-path"} {
		fs.StringVar(&c.configPath, n, "", "path of storage-proxy.toml (default: searched as upstream does)")
	}
	fs.BoolVar(&c.debug, "debug", false, "log at DEBUG level (same as --log-level DEBUG)")
	fs.StringVar(&c.logLevel, "log-level", "NOTSET", "override logging.level: CRITICAL, ERROR, WARNING, INFO, DEBUG or NOTSET (keep the file's)")
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c.logLevel = strings.ToUpper(c.logLevel)
	switch c.logLevel {
	case "CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET":
	default:
		return c, fmt.Errorf("invalid --log-level %q: use CRITICAL, ERROR, WARNING, INFO, DEBUG or NOTSET", c.logLevel)
	}
	if c.debug {
		c.logLevel = "DEBUG"
	}
	return c, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	if os.Getenv(supervisor.EnvWorkerIndex) != "" {
		return runWorker(args)
	}
	name := "storage-proxy"
	check := len(args) > 0 && args[0] == "check-config"
	if check {
		name, args = "storage-proxy check-config", args[1:]
	}
	c, err := parseFlags(name, args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "storage-proxy:", err)
		return 2
	}
	if c.version {
		fmt.Fprintln(stdout, "storage-proxy", version)
		return 0
	}

	cfg, err := loadConfig(c)
	if err != nil {
		printConfigError(stderr, err)
		return 1
	}
	if check {
		fmt.Fprint(stdout, cfg.Effective(true))
		return 0
	}
	return runSupervisor(c, cfg)
}

// loadConfig finds, loads and validates the config, then applies the
// command line's log level.
func loadConfig(c cli) (*config.Config, error) {
	path := c.configPath
	if path == "" {
		path = os.Getenv(envConfigFile)
	}
	if path == "" {
		cwd, _ := os.Getwd()
		home, _ := os.UserHomeDir()
		found, searched, err := config.Discover(os.Getenv, cwd, home)
		if err != nil {
			return nil, fmt.Errorf("%w (searched: %s)", err, strings.Join(searched, ", "))
		}
		path = found
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	cfg, err := config.Load(path, os.Getenv)
	if err != nil {
		return nil, err
	}
	if c.logLevel != "NOTSET" {
		cfg.Logging.Level = c.logLevel
		if cfg.Logging.PkgNS == nil {
			cfg.Logging.PkgNS = map[string]string{}
		}
		cfg.Logging.PkgNS["ai.backend"] = c.logLevel
	}
	// Upstream overwrites debug.enabled with the CLI level; we honour
	// either the file or the flag.
	cfg.Debug.Enabled = cfg.Debug.Enabled || cfg.Logging.Level == "DEBUG"
	return cfg, nil
}

func printConfigError(w io.Writer, err error) {
	var verr *config.ValidationError
	if errors.As(err, &verr) {
		fmt.Fprintln(w, "ConfigurationError: invalid configuration:")
		fmt.Fprintln(w, verr.Error())
		return
	}
	fmt.Fprintln(w, "ConfigurationError:", err)
}
