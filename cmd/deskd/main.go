// Command deskd is an email-driven IT service desk daemon backed by PostgreSQL.
//
// This package is wiring only: flags, configuration, the pool, services and the errgroup that runs
// them. Every subcommand has --help.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/deskd/deskd/internal/config"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// globals are the persistent flags every subcommand shares.
type globals struct {
	configPath string
	logFormat  string
	logLevel   string
	stdout     io.Writer
	stderr     io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes deskd with args and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRootCmd(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintf(stderr, "deskd: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "deskd: %v\n", err)
	return 1
}

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "deskd",
		Short: "deskd is an email-driven IT service desk daemon backed by PostgreSQL",
		Long: `deskd runs an IT service desk over email: end users mail a support address and get a ticket
key ([SD-1042]) and status updates; agents answer, add notes and change tickets from their mail
client; managers get digests and escalations. All state lives in PostgreSQL.

Configuration: one YAML file (--config; default ./deskd.yaml, then /etc/deskd/deskd.yaml) plus
DESKD_* environment variables for every key (DESKD_DATABASE_URL, DESKD_SMTP_PASSWORD,
DESKD_MAILBOXES_0_PASSWORD, ...). See configs/deskd.example.yaml.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.configPath, "config", "", "configuration file (default ./deskd.yaml, then /etc/deskd/deskd.yaml)")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "", "log format: auto, text or json (default: log.format, auto = text on a terminal, JSON otherwise)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "", "log level: debug, info, warn or error (default: log.level)")
	root.AddCommand(
		newServeCmd(g),
		newMigrateCmd(g),
		newCheckConfigCmd(g),
		newTicketCmd(g),
		newVersionCmd(g),
		newQuarantineCmd(g),
		newReplayCmd(g),
		newImportCmd(g),
		newInspectCmd(g),
		newDemoCmd(g),
		newBenchCmd(g),
		newTemplatesCmd(g),
	)
	return root
}

// loadConfig loads and validates the configuration named by --config.
func (g *globals) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(g.configPath)
	if err != nil {
		var ve config.ValidationError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("invalid configuration (run `deskd check-config` for details):\n%w", err)
		}
		return nil, err
	}
	return cfg, nil
}

// logger builds the slog logger from flags, falling back to the configuration's log section.
func (g *globals) logger(cfg *config.Config) (*slog.Logger, error) {
	format, level := g.logFormat, g.logLevel
	if cfg != nil {
		if format == "" {
			format = cfg.Log.Format
		}
		if level == "" {
			level = cfg.Log.Level
		}
	}
	var lv slog.Level
	switch level {
	case "", "info":
		lv = slog.LevelInfo
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "auto":
		if f, ok := g.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return slog.New(slog.NewTextHandler(g.stderr, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(g.stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(g.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(g.stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format: %q is not one of auto, text, json", format)
	}
}
