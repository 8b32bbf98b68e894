package conformance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/sdk"
)

func (e *env) publishN(n int, label string) []*message.Message {
	e.t.Helper()
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = newMsg(fmt.Sprintf("%s-%d", label, i))
	}
	e.publish(msgs...)
	return msgs
}

// expectEachOnce fails unless every sent message arrived exactly once.
func (e *env) expectEachOnce(sent []*message.Message, seen map[string]int, guarantee string) {
	e.t.Helper()
	for _, m := range sent {
		switch n := seen[m.UUID]; {
		case n == 0:
			e.t.Errorf("guarantee broken: %s: message %s never arrived", guarantee, m.UUID)
		case n > 1:
			e.t.Errorf("guarantee broken: %s: message %s arrived %d times", guarantee, m.UUID, n)
		}
	}
	if len(seen) > len(sent) {
		e.t.Errorf("guarantee broken: %s: %d messages arrived that were never sent to this topic", guarantee, len(seen)-len(sent))
	}
}

func testCompetingConsumers(e *env) {
	group := uniqueName("g")
	ch1, _ := e.subscribe(group)
	ch2, _ := e.subscribe(group)
	sent := e.publishN(100, "compete")
	const guarantee = "members of one group must share the messages, each message to one member"
	seen := e.collect(len(sent), guarantee, nil, ch1, ch2)
	e.expectEachOnce(sent, seen, guarantee)
}

func testFanOut(e *env) {
	chA, _ := e.subscribe(uniqueName("ga"))
	chB, _ := e.subscribe(uniqueName("gb"))
	sent := e.publishN(50, "fanout")
	const guarantee = "every group must receive every message once"
	e.expectEachOnce(sent, e.collect(len(sent), guarantee+" (first group)", nil, chA), guarantee+" (first group)")
	e.expectEachOnce(sent, e.collect(len(sent), guarantee+" (second group)", nil, chB), guarantee+" (second group)")
}

func testOrderingPerKey(e *env) {
	group := uniqueName("g")
	ch1, _ := e.subscribe(group)
	ch2, _ := e.subscribe(group)
	keys := []string{"alpha", "beta", "gamma"}
	const perKey = 30
	var msgs []*message.Message
	for i := 0; i < perKey; i++ {
		for _, k := range keys {
			m := newMsg(k + "-" + strconv.Itoa(i))
			m.Metadata.Set(sdk.KeyOrderingKey, k)
			m.Metadata.Set("seq", strconv.Itoa(i))
			msgs = append(msgs, m)
		}
	}
	for _, m := range msgs { // one at a time: the order of publish calls is the order to keep
		e.publish(m)
	}
	const guarantee = "messages with one ordering key must arrive in publish order, even with competing consumers"
	var mu sync.Mutex
	last := map[string]int{}
	e.collect(len(msgs), guarantee, func(m *message.Message) {
		mu.Lock()
		defer mu.Unlock()
		k := m.Metadata.Get(sdk.KeyOrderingKey)
		seq, _ := strconv.Atoi(m.Metadata.Get("seq"))
		if prev, ok := last[k]; ok && seq <= prev {
			e.t.Errorf("guarantee broken: %s: key %q delivered seq %d after seq %d", guarantee, k, seq, prev)
		}
		last[k] = seq
	}, ch1, ch2)
}

func testDurableGroup(e *env) {
	group := uniqueName("g")
	_, sub := e.subscribe(group) // creates the group
	if err := sub.Close(); err != nil {
		e.t.Fatalf("Subscriber.Close failed: %v", err)
	}
	sent := e.publishN(10, "while-away")
	ch, _ := e.subscribe(group)
	const guarantee = "a group must receive the messages published while none of its members ran"
	e.expectEachOnce(sent, e.collect(len(sent), guarantee, nil, ch), guarantee)
}

func testNewGroupHistory(e *env) {
	sent := e.publishN(10, "history")
	ch, _ := e.subscribe(uniqueName("g"))
	const guarantee = "a group created after messages were published must still receive them"
	e.expectEachOnce(sent, e.collect(len(sent), guarantee, nil, ch), guarantee)
}

func testConcurrentPublishers(e *env) {
	group := uniqueName("g")
	ch1, _ := e.subscribe(group)
	ch2, _ := e.subscribe(group)
	const publishers = 10
	per := (e.h.Messages + publishers - 1) / publishers
	sent := make([][]*message.Message, publishers)
	errs := make(chan error, publishers)
	var wg sync.WaitGroup
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; {
				// Alternate single messages and batches of up to 10.
				batch := 1 + (i % 10)
				if i+batch > per {
					batch = per - i
				}
				msgs := make([]*message.Message, batch)
				for j := range msgs {
					msgs[j] = newMsg(fmt.Sprintf("p%d-%d", p, i+j))
				}
				if err := e.pub.Publish(e.topic, msgs...); err != nil {
					errs <- fmt.Errorf("publisher %d: %w", p, err)
					return
				}
				sent[p] = append(sent[p], msgs...)
				i += batch
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatalf("concurrent Publish failed: %v", err)
	}
	var all []*message.Message
	for _, s := range sent {
		all = append(all, s...)
	}
	guarantee := fmt.Sprintf("%d messages from %d concurrent publishers must all arrive, none duplicated", len(all), publishers)
	e.expectEachOnce(all, e.collect(len(all), guarantee, nil, ch1, ch2), guarantee)
}

// testEnsureGroup: a group made without consuming (Client.EnsureGroup, or
// Watermill's SubscribeInitialize on our subscriber) keeps what is
// published before its first member subscribes.
func testEnsureGroup(e *env) {
	viaClient, viaWatermill := uniqueName("g"), uniqueName("g")
	groups := []string{viaClient, viaWatermill}
	if !e.caps.ConsumerGroups {
		// Every subscriber competes whatever its group: one group, made both ways.
		viaWatermill, groups = viaClient, groups[:1]
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	if err := e.client().EnsureGroup(ctx, e.topic, viaClient); err != nil {
		e.t.Fatalf("Client.EnsureGroup failed: %v", err)
	}
	sub := e.subscriber(viaWatermill)
	init, ok := sub.(message.SubscribeInitializer)
	if !ok {
		e.t.Fatalf("guarantee broken: the Watermill subscriber must implement message.SubscribeInitializer")
	}
	if err := init.SubscribeInitialize(e.topic); err != nil {
		e.t.Fatalf("SubscribeInitialize failed: %v", err)
	}
	sent := e.publishN(5, "before-subscribe")
	const guarantee = "a group created without consuming must keep what is published before it subscribes"
	for _, group := range groups {
		ch, _ := e.subscribe(group)
		e.expectEachOnce(sent, e.collect(len(sent), guarantee+" (group "+group+")", nil, ch), guarantee)
	}
}

// testStartAt: with ChoosesGroupStart, a group created with
// StartAt(latest) gets only what is published after it, one created with
// StartAt(oldest) gets the history too; without it, StartAt is refused.
func testStartAt(e *env) {
	c := e.client()
	ok := func(context.Context, *sdk.Message) error { return nil }
	if !e.caps.ChoosesGroupStart {
		if _, err := c.Subscribe(e.ctx, e.topic, uniqueName("g"), ok, sdk.StartAt(sdk.GroupStartOldest)); err == nil {
			e.t.Fatalf("guarantee broken: a driver that does not declare ChoosesGroupStart must refuse StartAt, not ignore it")
		}
		return
	}
	before := []*sdk.Message{sdk.NewMessage([]byte("before-1")), sdk.NewMessage([]byte("before-2"))}
	if err := c.Publish(e.ctx, e.topic, before...); err != nil {
		e.t.Fatalf("Client.Publish failed: %v", err)
	}
	collect := func(start string) <-chan string {
		ch := make(chan string, 10)
		if _, err := c.Subscribe(e.ctx, e.topic, uniqueName("g"), func(_ context.Context, m *sdk.Message) error {
			ch <- string(m.Payload)
			return nil
		}, sdk.StartAt(start)); err != nil {
			e.t.Fatalf("setup: Subscribe with StartAt(%q) failed: %v", start, err)
		}
		return ch
	}
	latest, oldest := collect(sdk.GroupStartLatest), collect(sdk.GroupStartOldest)
	if err := c.Publish(e.ctx, e.topic, sdk.NewMessage([]byte("after"))); err != nil {
		e.t.Fatalf("Client.Publish failed: %v", err)
	}
	got := map[string]bool{}
	for len(got) < 3 {
		select {
		case p := <-oldest:
			got[p] = true
		case <-time.After(e.h.Timeout):
			e.t.Fatalf("guarantee broken: a group created with StartAt(oldest) must receive the history and what follows: got %v within %v", got, e.h.Timeout)
		}
	}
	select {
	case p := <-latest:
		if p != "after" {
			e.t.Fatalf("guarantee broken: a group created with StartAt(latest) must not receive what was published before it: got %q", p)
		}
	case <-time.After(e.h.Timeout):
		e.t.Fatalf("guarantee broken: a group created with StartAt(latest) must receive what is published after it: nothing within %v", e.h.Timeout)
	}
	select {
	case p := <-latest:
		e.t.Fatalf("guarantee broken: a group created with StartAt(latest) must not receive what was published before it: got %q", p)
	case <-time.After(e.h.QuietPeriod):
	}
}

// testRemoveGroup: with RemovesGroups, a removed group keeps nothing (a
// group of that name made again starts empty) and removing a group that
// does not exist succeeds; without it, RemoveGroup refuses with
// errors.ErrUnsupported rather than pretending.
func testRemoveGroup(e *env) {
	ctx, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	if !e.caps.RemovesGroups {
		tr := e.open()
		defer tr.Close()
		if err := tr.RemoveGroup(ctx, e.topic, uniqueName("g")); !errors.Is(err, errors.ErrUnsupported) {
			e.t.Fatalf("guarantee broken: a driver that does not declare RemovesGroups must refuse RemoveGroup with errors.ErrUnsupported, got %v", err)
		}
		return
	}
	c := e.client()
	if err := c.RemoveGroup(ctx, e.topic, uniqueName("never-made")); err != nil {
		e.t.Fatalf("guarantee broken: removing a group that does not exist must succeed, got %v", err)
	}
	group := uniqueName("g")
	if err := c.EnsureGroup(ctx, e.topic, group); err != nil {
		e.t.Fatalf("Client.EnsureGroup failed: %v", err)
	}
	kept := sdk.NewMessage([]byte("before-remove"))
	if err := c.Publish(ctx, e.topic, kept); err != nil {
		e.t.Fatalf("Client.Publish failed: %v", err)
	}
	if err := c.RemoveGroup(ctx, e.topic, group); err != nil {
		e.t.Fatalf("Client.RemoveGroup failed: %v", err)
	}
	between := sdk.NewMessage([]byte("after-remove"))
	if err := c.Publish(ctx, e.topic, between); err != nil {
		e.t.Fatalf("Client.Publish failed: %v", err)
	}
	var opts []sdk.SubscribeOption
	if e.caps.ChoosesGroupStart {
		opts = append(opts, sdk.StartAt(sdk.GroupStartLatest))
	}
	got := make(chan *sdk.Message, 16)
	sub, err := c.Subscribe(ctx, e.topic, group, func(_ context.Context, m *sdk.Message) error {
		got <- m
		return nil
	}, opts...)
	if err != nil {
		e.t.Fatalf("Client.Subscribe to the group made again failed: %v", err)
	}
	defer sub.Close(context.Background())
	after := sdk.NewMessage([]byte("after-resubscribe"))
	if err := c.Publish(ctx, e.topic, after); err != nil {
		e.t.Fatalf("Client.Publish failed: %v", err)
	}
	const guarantee = "a removed group must keep nothing: the group made again gets only what is published after it"
	for {
		select {
		case m := <-got:
			switch m.ID {
			case after.ID:
				return
			case kept.ID, between.ID:
				e.t.Fatalf("guarantee broken: %s: %q arrived", guarantee, m.Payload)
			}
		case <-ctx.Done():
			e.t.Fatalf("guarantee broken: %s: the message published after subscribing did not arrive within %v", guarantee, e.h.Timeout)
		}
	}
}
