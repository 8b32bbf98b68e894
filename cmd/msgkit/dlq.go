package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/msgkit/msgkit/middleware"
	"github.com/msgkit/msgkit/sdk"
)

// dlqFlags are the flags every dlq command takes.
type dlqFlags struct {
	group string
	topic string // the dead-letter topic, when it is not TOPIC.dlq
	idle  time.Duration
	limit int
}

func (d *dlqFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&d.group, "group", middleware.DefaultReplayGroup, "the group that keeps the dead letters (DeadLetterConfig.ReplayGroup)")
	f.StringVar(&d.topic, "dlq-topic", "", "the dead-letter topic (default: TOPIC.dlq)")
	f.DurationVar(&d.idle, "wait", 3*time.Second, "stop reading when no dead letter arrives for this long")
	f.IntVar(&d.limit, "limit", 1000, "read at most this many dead letters")
}

// dlqTopic is the dead-letter topic of topic: the middleware's default
// name, unless topic already is one or --dlq-topic names another.
func (d *dlqFlags) dlqTopic(topic string) string {
	switch {
	case d.topic != "":
		return d.topic
	case strings.HasSuffix(topic, ".dlq"):
		return topic
	}
	return topic + ".dlq"
}

// read visits the dead letters of topic without consuming any that visit
// keeps.
func (d *dlqFlags) read(ctx context.Context, c *sdk.Client, topic string, visit func(context.Context, *sdk.Message) (verdict, bool, error)) error {
	if mustScan(c) {
		return scan(ctx, c, d.dlqTopic(topic), d.limit, d.idle, visit)
	}
	return browse(ctx, c, d.dlqTopic(topic), d.group, d.limit, d.idle, visit)
}

func dlqCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show and replay dead letters",
		Long: `The dead-letter commands read the dead-letter topic that
middleware.DeadLetter writes (TOPIC.dlq unless --dlq-topic says otherwise)
through the group that keeps its messages for replay (--group, "replay" by
default).

list and show hand every message back: they hold the messages they read
unacknowledged and return them to the group when they stop (a broker that
counts deliveries counts one more). On Kafka, where a partition's messages
cannot be held side by side, they read the dead-letter topic from its
oldest record through a temporary group instead, and so show every dead
letter the topic retains, replayed or not.`,
		Example: `  msgkit dlq list invoices
  msgkit dlq show invoices 0f6c2d0e-8a1b-4c55-9d0e-2f6a7b8c9d10
  msgkit dlq replay invoices --dry-run`,
	}
	cmd.AddCommand(dlqListCmd(g), dlqShowCmd(g), dlqReplayCmd(g))
	return cmd
}

// deadLetter is a dead letter's summary, as list prints it.
type deadLetter struct {
	ID            string    `json:"id"`
	OriginalTopic string    `json:"original_topic"`
	Group         string    `json:"group"`
	Time          time.Time `json:"dead_lettered_at"`
	Deliveries    string    `json:"deliveries"`
	Permanent     bool      `json:"permanent"`
	Error         string    `json:"error"`
	PayloadBytes  int       `json:"payload_bytes"`
}

func summarize(m *sdk.Message) deadLetter {
	t, _ := time.Parse(time.RFC3339Nano, m.Get(middleware.KeyDLQTime))
	return deadLetter{ID: m.ID, OriginalTopic: m.Get(middleware.KeyDLQOriginalTopic), Group: m.Get(middleware.KeyDLQHandler),
		Time: t, Deliveries: m.Get(middleware.KeyDLQDeliveries), Permanent: m.Get(middleware.KeyDLQPermanent) == "true",
		Error: m.Get(middleware.KeyDLQError), PayloadBytes: len(m.Payload)}
}

func dlqListCmd(g *globals) *cobra.Command {
	var d dlqFlags
	cmd := &cobra.Command{
		Use:   "list TOPIC",
		Short: "List what is dead-lettered for TOPIC: id, why, since when",
		Example: `  msgkit dlq list invoices
  msgkit dlq list invoices --json | jq -r 'select(.permanent) | .id'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.open(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer g.closeClient(c)
			var mu sync.Mutex
			var found []deadLetter
			err = d.read(cmd.Context(), c, args[0], func(_ context.Context, m *sdk.Message) (verdict, bool, error) {
				mu.Lock()
				found = append(found, summarize(m))
				mu.Unlock()
				return keep, false, nil
			})
			if err != nil {
				return err
			}
			return printDeadLetters(cmd.OutOrStdout(), cmd.ErrOrStderr(), g.json, found, d.dlqTopic(args[0]))
		},
	}
	d.add(cmd)
	return cmd
}

func printDeadLetters(out, errOut io.Writer, asJSON bool, found []deadLetter, topic string) error {
	if asJSON {
		for _, dl := range found {
			if err := writeJSON(out, dl); err != nil {
				return err
			}
		}
		return nil
	}
	if len(found) == 0 {
		fmt.Fprintf(errOut, "msgkit: no dead letter in %q\n", topic)
		return nil
	}
	now := time.Now()
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tFROM\tGROUP\tDEAD-LETTERED\tDELIVERIES\tERROR")
	for _, dl := range found {
		e := oneLine(dl.Error)
		if dl.Permanent {
			e = "permanent: " + e
		}
		if len(e) > 80 {
			e = e[:77] + "..."
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", dl.ID, dl.OriginalTopic, dl.Group, ago(dl.Time, now), dl.Deliveries, e)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(errOut, "msgkit: %d dead letter(s) in %q\n", len(found), topic)
	return nil
}

func dlqShowCmd(g *globals) *cobra.Command {
	var d dlqFlags
	cmd := &cobra.Command{
		Use:     "show TOPIC ID",
		Short:   "Print one dead letter in full: headers, error and payload",
		Example: `  msgkit dlq show invoices 0f6c2d0e-8a1b-4c55-9d0e-2f6a7b8c9d10`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.open(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer g.closeClient(c)
			var found *sdk.Message
			err = d.read(cmd.Context(), c, args[0], func(_ context.Context, m *sdk.Message) (verdict, bool, error) {
				if m.ID != args[1] {
					return keep, false, nil
				}
				found = m
				return keep, true, nil
			})
			if err != nil {
				return err
			}
			if found == nil {
				return withCode(exitNotFound, fmt.Errorf("no dead letter %q in %q (read through group %q for up to %d messages)", args[1], d.dlqTopic(args[0]), d.group, d.limit))
			}
			if g.json {
				return writeJSON(cmd.OutOrStdout(), toJSON(found))
			}
			writeMessage(cmd.OutOrStdout(), found)
			return nil
		},
	}
	d.add(cmd)
	return cmd
}

func dlqReplayCmd(g *globals) *cobra.Command {
	var (
		d      dlqFlags
		ids    []string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "replay TOPIC",
		Short: "Move dead letters back to the topics they came from (all, or by --id)",
		Long: `replay publishes each dead letter to the topic it was dead-lettered from, with
its id and without the dead-letter headers, and then acknowledges it on the
dead-letter topic. Without --id it moves every dead letter; with --id only
those, and the others stay. --dry-run lists what would move and moves
nothing. Progress goes to stderr every second.`,
		Example: `  msgkit dlq replay invoices --dry-run
  msgkit dlq replay invoices
  msgkit dlq replay invoices --id 0f6c2d0e-8a1b-4c55-9d0e-2f6a7b8c9d10 --id 5b1e...`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.open(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer g.closeClient(c)
			want := map[string]bool{}
			for _, id := range ids {
				want[id] = true
			}
			selected := func(m *sdk.Message) bool { return len(want) == 0 || want[m.ID] }
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if dryRun {
				var found []deadLetter
				err := d.read(cmd.Context(), c, args[0], func(_ context.Context, m *sdk.Message) (verdict, bool, error) {
					if selected(m) {
						found = append(found, summarize(m))
					}
					return keep, len(want) > 0 && len(found) == len(want), nil
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(errOut, "msgkit: dry run: %d dead letter(s) would be replayed; nothing was moved\n", len(found))
				return printDeadLetters(out, errOut, g.json, found, d.dlqTopic(args[0]))
			}
			if mustScan(c) && len(want) > 0 {
				return withCode(exitUsage, fmt.Errorf("replay by --id is not possible on the %s driver: the dead letters of a partition are consumed in order, so those before an id cannot be skipped and kept; replay them all, or move one by hand (dlq show, then publish)", c.Config().DriverName()))
			}
			var mu sync.Mutex
			moved := 0
			var movedIDs []string
			progress := time.NewTicker(time.Second)
			defer progress.Stop()
			stopProgress := make(chan struct{})
			go func() {
				for {
					select {
					case <-progress.C:
						mu.Lock()
						n := moved
						mu.Unlock()
						fmt.Fprintf(errOut, "msgkit: replayed %d so far\n", n)
					case <-stopProgress:
						return
					}
				}
			}()
			err = browse(cmd.Context(), c, d.dlqTopic(args[0]), d.group, d.limit, d.idle, func(ctx context.Context, m *sdk.Message) (verdict, bool, error) {
				if !selected(m) {
					return keep, false, nil
				}
				if err := middleware.ReplayMessage(ctx, c, m); err != nil {
					return keep, true, err
				}
				mu.Lock()
				defer mu.Unlock()
				moved++
				movedIDs = append(movedIDs, m.ID)
				return consume, len(want) > 0 && moved == len(want), nil
			})
			close(stopProgress)
			mu.Lock()
			defer mu.Unlock()
			for _, id := range movedIDs {
				if g.json {
					_ = writeJSON(out, map[string]string{"replayed": id})
				} else {
					fmt.Fprintln(out, id)
				}
			}
			fmt.Fprintf(errOut, "msgkit: replayed %d dead letter(s) from %q\n", moved, d.dlqTopic(args[0]))
			if err != nil {
				return err
			}
			if len(want) > 0 && moved < len(want) {
				var missing []string
				done := map[string]bool{}
				for _, id := range movedIDs {
					done[id] = true
				}
				for _, id := range ids {
					if !done[id] {
						missing = append(missing, id)
					}
				}
				return withCode(exitNotFound, fmt.Errorf("not found in %q: %s", d.dlqTopic(args[0]), strings.Join(missing, ", ")))
			}
			if moved == 0 {
				return withCode(exitNotFound, fmt.Errorf("%w in %q for group %q", middleware.ErrNothingToReplay, d.dlqTopic(args[0]), d.group))
			}
			return nil
		},
	}
	d.add(cmd)
	cmd.Flags().StringArrayVar(&ids, "id", nil, "replay only this dead letter (repeatable)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be replayed and move nothing")
	return cmd
}
