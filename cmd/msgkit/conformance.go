package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// The conformance command runs the suite in a child process of this
// binary, through testing.Main, and reads its verbose output: the suite is
// written against *testing.T, and the child's exit cannot end the parent
// before it has printed the summary.
const (
	conformanceChildEnv  = "MSGKIT_CONFORMANCE_CHILD"
	conformanceConfigEnv = "MSGKIT_CONFORMANCE_CONFIG"
	conformanceWaitEnv   = "MSGKIT_CONFORMANCE_WAIT"
	conformanceRunEnv    = "MSGKIT_CONFORMANCE_RUN"
)

func conformanceCmd(g *globals) *cobra.Command {
	var (
		wait time.Duration
		only string
	)
	cmd := &cobra.Command{
		Use:   "conformance",
		Short: "Run the conformance suite against the configured broker and say which guarantees hold",
		Long: `conformance runs msgkit's conformance suite (package conformance) against the
broker the config describes, with unique topic and group names, and prints
each guarantee as holds, BROKEN (with what the suite saw) or not checked
(with why: a capability the driver does not declare). It exits 1 when a
guarantee is broken.

It creates topics, queues and groups named ct-* on the broker; run it
against a broker or vhost meant for it, not production traffic. A full run
takes a few minutes. The restart and hygiene checks of the suite need
control of the broker process and are not run here.`,
		Example: `  msgkit conformance --config staging-cluster.yaml
  msgkit conformance --run 'Ordering|Durable' --wait 60s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if _, err := sdk.CheckConfig(cfg); err != nil {
				return withCode(exitUsage, err)
			}
			if only != "" {
				if _, err := regexp.Compile(only); err != nil {
					return withCode(exitUsage, fmt.Errorf("--run %q: %w", only, err))
				}
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			child := exec.CommandContext(cmd.Context(), self)
			child.Env = append(os.Environ(), conformanceChildEnv+"=1", conformanceConfigEnv+"="+g.config,
				conformanceWaitEnv+"="+wait.String(), conformanceRunEnv+"="+only)
			child.Stderr = cmd.ErrOrStderr()
			out, err := child.StdoutPipe()
			if err != nil {
				return err
			}
			if err := child.Start(); err != nil {
				return fmt.Errorf("start the suite: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "msgkit: running the conformance suite against %s at %s\n", cfg.DriverName(), sdk.RedactURL(cfg.URL))
			results := readResults(out, g.verbose, cmd.ErrOrStderr())
			waitErr := child.Wait()
			broken := printResults(cmd.OutOrStdout(), results, g.json)
			switch {
			case broken > 0:
				return fmt.Errorf("%d guarantee(s) broken", broken)
			case waitErr != nil:
				return fmt.Errorf("the suite did not finish: %w", waitErr)
			case len(results) == 0:
				return fmt.Errorf("the suite ran no guarantee (check --run)")
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long the suite waits for a message that must arrive (cover the driver's lease: claim_idle, ack_wait, visibility_timeout)")
	cmd.Flags().StringVar(&only, "run", "", "run only the guarantees whose names match this regular expression")
	return cmd
}

// result is one guarantee's outcome.
type result struct {
	Name    string   `json:"guarantee"`
	Outcome string   `json:"outcome"` // holds, broken, not checked
	Details []string `json:"details,omitempty"`
}

var (
	resultLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): TestConformance/(\S+)`)
	runLine    = regexp.MustCompile(`^=== (?:RUN|CONT)\s+TestConformance/(\S+)`)
)

// readResults reads the child's verbose test output: each guarantee's
// verdict line, and the log lines printed while it ran (its failure or
// skip messages), which go test prints between its RUN line and its
// verdict.
func readResults(r io.Reader, echo bool, echoTo io.Writer) []result {
	var results []result
	details := map[string][]string{}
	current := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if echo {
			fmt.Fprintln(echoTo, line)
		}
		if m := runLine.FindStringSubmatch(line); m != nil {
			current = m[1]
			continue
		}
		if m := resultLine.FindStringSubmatch(line); m != nil {
			outcome := map[string]string{"PASS": "holds", "FAIL": "broken", "SKIP": "not checked"}[m[1]]
			res := result{Name: m[2], Outcome: outcome}
			if outcome != "holds" {
				res.Details = details[m[2]]
			}
			delete(details, m[2])
			results = append(results, res)
			current = ""
			continue
		}
		if current != "" && strings.HasPrefix(line, "    ") {
			details[current] = append(details[current], strings.TrimSpace(line))
		}
	}
	return results
}

func printResults(w io.Writer, results []result, asJSON bool) (broken int) {
	for _, r := range results {
		if r.Outcome == "broken" {
			broken++
		}
		if asJSON {
			_ = writeJSON(w, r)
			continue
		}
		mark := map[string]string{"holds": "holds       ", "broken": "BROKEN      ", "not checked": "not checked "}[r.Outcome]
		fmt.Fprintf(w, "%s %s\n", mark, strings.TrimPrefix(r.Name, "Test"))
		for _, d := range r.Details {
			fmt.Fprintf(w, "             %s\n", d)
		}
	}
	if !asJSON {
		skipped := 0
		for _, r := range results {
			if r.Outcome == "not checked" {
				skipped++
			}
		}
		fmt.Fprintf(w, "%d hold, %d broken, %d not checked\n", len(results)-broken-skipped, broken, skipped)
	}
	return broken
}

// runConformanceChild is the child process: the suite under testing.Main.
// It never returns.
func runConformanceChild() {
	wait, err := time.ParseDuration(os.Getenv(conformanceWaitEnv))
	if err != nil {
		wait = 30 * time.Second
	}
	testing.Init()
	_ = flag.Set("test.v", "true")
	_ = flag.Set("test.timeout", "60m")
	pattern := "^TestConformance$"
	if only := os.Getenv(conformanceRunEnv); only != "" {
		pattern += "/(" + only + ")"
	}
	_ = flag.Set("test.run", pattern)
	h := conformance.Harness{
		Open: func(ctx context.Context, _ *testing.T) (driver.Transport, error) {
			return openConformanceTransport(ctx)
		},
		Timeout:        wait,
		KilledConsumer: true,
	}
	testing.Main(func(pat, str string) (bool, error) { return regexp.MatchString(pat, str) },
		[]testing.InternalTest{{Name: "TestConformance", F: func(t *testing.T) { conformance.Run(t, h) }}}, nil, nil)
}

// openConformanceTransport opens the configured transport in the suite's
// processes (the child, and the consumers it starts and kills).
func openConformanceTransport(ctx context.Context) (driver.Transport, error) {
	cfg, err := sdk.LoadConfig(os.Getenv(conformanceConfigEnv))
	if err != nil {
		return nil, err
	}
	return sdk.OpenTransport(ctx, cfg)
}
