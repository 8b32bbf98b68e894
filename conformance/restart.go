package conformance

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
)

// testPersistentSurvivesRestart: with Persistent declared and
// Harness.Restart given, a broker restart loses nothing that was
// published: a group that had not consumed the messages published before
// it receives them after it, a subscription that ran across it carries on
// and receives what is published after it, and the publisher carries on.
func testPersistentSurvivesRestart(e *env) {
	if e.h.Restart == nil {
		e.t.Skip("not run: Harness.Restart is not set (Persistent is declared but cannot be tested without restarting the broker)")
	}
	waiting, running := uniqueName("g"), uniqueName("g")
	_, sub := e.subscribe(waiting) // creates the group, which then consumes nothing until after the restart
	if err := sub.Close(); err != nil {
		e.t.Fatalf("Subscriber.Close failed: %v", err)
	}
	runCh, _ := e.subscribe(running)
	before := e.publishN(10, "before-restart")
	e.collect(len(before), "setup: the messages published before the restart reach the running subscription", nil, runCh)

	ctx, cancel := context.WithTimeout(e.ctx, e.h.RestartTimeout)
	err := e.h.Restart(ctx)
	cancel()
	if err != nil {
		e.t.Fatalf("setup: Harness.Restart failed: %v", err)
	}
	after := e.publishAcross(10, "after-restart")

	const carriesOn = "a subscription running across a broker restart must carry on and receive what is published after it"
	e.expectEachAtLeastOnce(after, e.collect(len(after), carriesOn, nil, runCh), carriesOn)
	waitCh, _ := e.subscribe(waiting)
	const survives = "messages published before a broker restart (Persistent declared) must be delivered after it to a group that had not consumed them"
	e.expectEachAtLeastOnce(append(before, after...), e.collect(len(before)+len(after), survives, nil, waitCh), survives)
}

// publishAcross publishes n messages right after a restart: each Publish
// may wait for the transport to reconnect, by the suite's timeout.
func (e *env) publishAcross(n int, label string) []*message.Message {
	e.t.Helper()
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = newMsg(fmt.Sprintf("%s-%d", label, i))
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.h.RestartTimeout)
	defer cancel()
	for _, m := range msgs {
		m.SetContext(ctx)
	}
	if err := e.pub.Publish(e.topic, msgs...); err != nil {
		e.t.Fatalf("guarantee broken: a publisher must carry on after a broker restart: Publish failed: %v", err)
	}
	return msgs
}

// expectEachAtLeastOnce fails unless every sent message arrived; a restart
// may redeliver, so duplicates are allowed.
func (e *env) expectEachAtLeastOnce(sent []*message.Message, seen map[string]int, guarantee string) {
	e.t.Helper()
	for _, m := range sent {
		if seen[m.UUID] == 0 {
			e.t.Errorf("guarantee broken: %s: message %s (%q) never arrived", guarantee, m.UUID, m.Payload)
		}
	}
}
