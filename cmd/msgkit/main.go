// Command msgkit looks at topics, dead letters and brokers without writing
// Go. It reads the same YAML config file and MESSAGING_* environment
// variables as services do (sdk.LoadConfig), so it talks to the broker the
// services use.
//
//	msgkit publish orders --data '{"id":1}' --type order.created
//	msgkit tail orders --json
//	msgkit dlq list orders
//	msgkit dlq replay orders --id 0f6c…
//	msgkit request prices --data '{"sku":"A1"}'
//	msgkit config check service.yaml
//	msgkit doctor
//	msgkit conformance --config broker.yaml
//
// Exit codes: 0 success; 1 the operation failed; 2 bad usage or config; 3
// nothing found (dlq show of an unknown id); 4 a request answered with a
// remote error; 5 the broker could not be reached. docs/cli.md has a
// transcript of each command.
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
	"time"

	"github.com/spf13/cobra"

	_ "github.com/msgkit/msgkit/adapters/all"
	"github.com/msgkit/msgkit/conformance"
	_ "github.com/msgkit/msgkit/middleware" // checks the middleware: section of a config
	"github.com/msgkit/msgkit/sdk"
)

// Exit codes, documented in docs/cli.md.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitNotFound    = 3
	exitRemoteError = 4
	exitUnreachable = 5
)

// exitError carries the exit code an error ends the command with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// globals are the flags every command takes.
type globals struct {
	config  string
	timeout time.Duration
	json    bool
	verbose bool
}

func main() {
	conformance.KilledConsumerMain(openConformanceTransport)
	if os.Getenv(conformanceChildEnv) == "1" {
		runConformanceChild()
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line and returns its exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "msgkit:", err)
	var ee *exitError
	var ce *sdk.ConfigError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ce):
		return exitUsage
	case isUsageError(err):
		return exitUsage
	}
	return exitFailed
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "msgkit",
		Short: "Publish, tail, inspect dead letters and check brokers, with the config services use",
		Long: `msgkit talks to the broker a msgkit service is configured for: the YAML file
given with --config (or $MESSAGING_CONFIG), with MESSAGING_* environment
variables applied over it; with neither, the in-process memory driver.

Exit codes: 0 success, 1 the operation failed, 2 bad usage or config,
3 nothing found, 4 a request answered with a remote error, 5 the broker
could not be reached.`,
		Example: `  MESSAGING_DRIVER=redis MESSAGING_URL=redis://127.0.0.1:6379/0 msgkit doctor
  msgkit --config service.yaml tail orders --json`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(exitUsage, err) })
	f := root.PersistentFlags()
	f.StringVar(&g.config, "config", os.Getenv("MESSAGING_CONFIG"), "YAML config file ($MESSAGING_CONFIG); MESSAGING_* variables override it")
	f.DurationVar(&g.timeout, "timeout", 30*time.Second, "bound on connecting and on each broker call")
	f.BoolVar(&g.json, "json", false, "print JSON lines instead of text")
	f.BoolVarP(&g.verbose, "verbose", "v", false, "log the client's warnings to stderr")
	root.AddCommand(publishCmd(g), tailCmd(g), dlqCmd(g), requestCmd(g), configCmd(g), doctorCmd(g), conformanceCmd(g))
	return root
}

// isUsageError recognises cobra's argument errors, which it returns as
// plain errors.
func isUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"accepts ", "requires at least", "unknown command", "unknown flag", "unknown shorthand", "invalid argument"} {
		if len(msg) >= len(p) && (msg[:len(p)] == p) {
			return true
		}
	}
	return false
}

// load reads the config the flags and environment describe.
func (g *globals) load() (sdk.Config, error) {
	cfg, err := sdk.LoadConfig(g.config)
	if err != nil {
		return sdk.Config{}, withCode(exitUsage, err)
	}
	return cfg, nil
}

// open connects a client; a config error exits 2, anything else 5.
func (g *globals) open(ctx context.Context, stderr io.Writer) (*sdk.Client, error) {
	cfg, err := g.load()
	if err != nil {
		return nil, err
	}
	logs := io.Discard
	if g.verbose {
		logs = stderr
	}
	octx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	c, err := sdk.Open(octx, cfg, sdk.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	var ce *sdk.ConfigError
	switch {
	case errors.As(err, &ce):
		return nil, withCode(exitUsage, err)
	case err != nil:
		return nil, withCode(exitUnreachable, fmt.Errorf("connect (%s at %s): %w", cfg.DriverName(), sdk.RedactURL(cfg.URL), err))
	}
	return c, nil
}

// closeClient closes c within the command's timeout.
func (g *globals) closeClient(c *sdk.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	_ = c.Close(ctx)
}
