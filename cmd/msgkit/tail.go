package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/msgkit/msgkit/sdk"
)

func tailCmd(g *globals) *cobra.Command {
	var (
		group string
		from  string
		count int
		idle  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "tail TOPIC",
		Short: "Print the messages of a topic as they arrive, until Ctrl-C",
		Long: `tail prints each message of TOPIC: id, metadata and payload (base64 when it
is not UTF-8 text), or one JSON object per line with --json.

Without --group it reads through a temporary consumer group of its own, so
the services' groups lose nothing, and removes that group when it stops.
--from oldest starts it at the oldest message the broker keeps, where the
driver can choose (Kafka, Redis, NATS); the default is the latest.

With --group it joins that group as one more member: the messages it prints
are acknowledged and the group's other members do not get them. SQS has no
consumer groups, so there tail needs --group and consumes the topic's queue.`,
		Example: `  msgkit tail orders
  msgkit tail orders --from oldest --count 10 --json | jq .payload
  msgkit tail orders --group billing   # consumes as a member of billing`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic := args[0]
			if from != "" && from != sdk.GroupStartOldest && from != sdk.GroupStartLatest {
				return withCode(exitUsage, fmt.Errorf("--from %q: want oldest or latest", from))
			}
			c, err := g.open(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer g.closeClient(c)
			caps := c.Capabilities()
			temporary := group == ""
			if temporary {
				if !caps.RemovesGroups {
					why := "it cannot remove consumer groups (RemovesGroups is false"
					switch c.Config().DriverName() {
					case "sqs":
						why += ": SQS has no groups, and a reader takes messages from the topic's consumers"
					case "rabbitmq":
						why += ": with declare: false the queues are the platform's"
					}
					return withCode(exitUsage, fmt.Errorf("tail cannot read through a temporary group on the %s driver without leaving it behind: %s); pass --group to consume as a member of that group", c.Config().DriverName(), why))
				}
				group = "msgkit-tail-" + sdk.NewMessage(nil).ID[:8]
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "msgkit: tailing as a member of group %q: the messages shown are acknowledged and its other members will not get them\n", group)
			}
			var opts []sdk.SubscribeOption
			switch {
			case from != "" && !caps.ChoosesGroupStart:
				return withCode(exitUsage, fmt.Errorf("--from %s: the %s driver cannot choose where a new group starts (it keeps no history for new groups); leave --from out", from, c.Config().DriverName()))
			case from != "":
				opts = append(opts, sdk.StartAt(from))
			case temporary && caps.ChoosesGroupStart:
				opts = append(opts, sdk.StartAt(sdk.GroupStartLatest))
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			var mu sync.Mutex
			seen := 0
			activity := make(chan struct{}, 1)
			out := cmd.OutOrStdout()
			subCtx, subCancel := context.WithTimeout(ctx, g.timeout)
			sub, err := c.Subscribe(subCtx, topic, group, func(_ context.Context, m *sdk.Message) error {
				mu.Lock()
				defer mu.Unlock()
				if count > 0 && seen >= count {
					return errors.New("tail: count reached; left for the group")
				}
				if g.json {
					if err := writeJSON(out, toJSON(m)); err != nil {
						return err
					}
				} else {
					writeMessage(out, m)
				}
				seen++
				if count > 0 && seen >= count {
					cancel()
				}
				select {
				case activity <- struct{}{}:
				default:
				}
				return nil
			}, append(opts, sdk.WithConcurrency(1))...)
			subCancel()
			if err != nil {
				if temporary {
					removeGroup(g, c, cmd, topic, group)
				}
				return err
			}
			if !temporary || g.verbose {
				fmt.Fprintf(cmd.ErrOrStderr(), "msgkit: tailing %q as group %q\n", topic, group)
			}
			waitIdle(ctx, activity, idle)
			closeCtx, closeCancel := context.WithTimeout(context.Background(), g.timeout)
			closeErr := sub.Close(closeCtx)
			closeCancel()
			if temporary {
				if err := removeGroup(g, c, cmd, topic, group); err != nil {
					return err
				}
			}
			return closeErr
		},
	}
	f := cmd.Flags()
	f.StringVar(&group, "group", "", "consume as a member of this group (default: a temporary group, removed on exit)")
	f.StringVar(&from, "from", "", "where a temporary group starts: oldest or latest (default latest)")
	f.IntVar(&count, "count", 0, "stop after this many messages (0: until Ctrl-C)")
	f.DurationVar(&idle, "idle", 0, "stop when no message arrives for this long (0: until Ctrl-C)")
	return cmd
}

// waitIdle returns when ctx ends or, with idle set, when no activity came
// for idle.
func waitIdle(ctx context.Context, activity <-chan struct{}, idle time.Duration) {
	if idle <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTimer(idle)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-activity:
			t.Reset(idle)
		case <-t.C:
			return
		}
	}
}

// removeGroup removes a temporary group, after a Ctrl-C too.
func removeGroup(g *globals, c *sdk.Client, cmd *cobra.Command, topic, group string) error {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	if err := c.RemoveGroup(ctx, topic, group); err != nil {
		return fmt.Errorf("remove the temporary group %s: %w", sdk.QuoteName(group), err)
	}
	if g.verbose {
		fmt.Fprintf(cmd.ErrOrStderr(), "msgkit: removed the temporary group %q\n", group)
	}
	return nil
}
