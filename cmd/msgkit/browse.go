package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

// verdict is what a visit decides about a dead letter.
type verdict int

const (
	keep    verdict = iota // handed back to the group when the browse ends
	consume                // acknowledged: it was moved
)

// errHeld hands a kept message back when the browse ends.
var errHeld = errors.New("msgkit: looked at, handed back")

// browse reads topic as group, calling visit once per message, until max
// messages were visited, none arrived for idle, visit says stop, or ctx
// ends. A message visit keeps is held unacknowledged until the browse ends
// and then handed back to the group, so the group still has it: nothing is
// consumed but what visit consumes. Holding needs the messages to be
// independent: on a driver with per-key ordering (Kafka partitions) only
// the first message of a key would ever arrive, so there mustScan is true
// and the caller uses scan instead.
func browse(ctx context.Context, c *sdk.Client, topic, group string, max int, idle time.Duration,
	visit func(ctx context.Context, m *sdk.Message) (verdict, bool, error), opts ...sdk.SubscribeOption) error {
	var mu sync.Mutex
	visited := 0
	seen := map[string]bool{}
	var failed error
	activity := make(chan struct{}, 1)
	wait, finish := context.WithCancel(ctx) // the wait below ends early when finished
	defer finish()
	sub, err := c.Subscribe(ctx, topic, group, func(hctx context.Context, m *sdk.Message) error {
		mu.Lock()
		if visited >= max || failed != nil || seen[m.ID] {
			mu.Unlock()
			return hold(hctx)
		}
		seen[m.ID] = true
		visited++
		v, stop, err := visit(hctx, m)
		if err != nil {
			failed = err
		}
		if stop || err != nil || visited >= max {
			finish()
		}
		mu.Unlock()
		select {
		case activity <- struct{}{}:
		default:
		}
		if v == consume && err == nil {
			return nil
		}
		return hold(hctx)
	}, append(opts, sdk.WithConcurrency(max+1))...)
	if err != nil {
		return err
	}
	waitIdle(wait, activity, idle)
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	closeErr := sub.Close(closeCtx)
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(failed, closeErr)
}

// hold keeps a message until its subscription stops, then hands it back.
func hold(ctx context.Context) error {
	select {
	case <-sdk.Stopping(ctx):
	case <-ctx.Done():
	}
	return errHeld
}

// scan reads every message topic keeps, from its oldest, through a
// temporary group that it removes at the end: for drivers with per-key
// ordering, where browse cannot hold messages side by side. It sees what
// the topic retains, whether or not another group consumed it.
func scan(ctx context.Context, c *sdk.Client, topic string, max int, idle time.Duration,
	visit func(ctx context.Context, m *sdk.Message) (verdict, bool, error)) error {
	group := "msgkit-scan-" + sdk.NewMessage(nil).ID[:8]
	err := browse(ctx, c, topic, group, max, idle, func(ctx context.Context, m *sdk.Message) (verdict, bool, error) {
		_, stop, err := visit(ctx, m)
		return consume, stop, err // only the temporary group moves on
	}, sdk.StartAt(sdk.GroupStartOldest))
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if rerr := c.RemoveGroup(rctx, topic, group); rerr != nil {
		err = errors.Join(err, fmt.Errorf("remove the temporary group %s: %w", sdk.QuoteName(group), rerr))
	}
	return err
}

// mustScan reports whether dead letters are read with scan rather than
// held with browse: on a driver with per-key ordering that can start a
// temporary group at the oldest message and remove it (Kafka).
func mustScan(c *sdk.Client) bool {
	caps := c.Capabilities()
	return caps.Ordering == sdk.OrderingPerKey && caps.ChoosesGroupStart && caps.RemovesGroups
}
