package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

// The edges: what services meet beyond the happy path.

// testRequestersOnSeveralClients: requests from several clients at once,
// each with its own reply topic, each get their own reply.
func testRequestersOnSeveralClients(e *env) {
	e.responder(func(ctx context.Context, req *sdk.Message) (*sdk.Message, error) {
		return sdk.NewMessage([]byte("re:" + string(req.Payload))), nil
	})
	ctx, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	const clients, each = 3, 20
	errs := make(chan error, clients*each)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		requester := e.client()
		for i := 0; i < each; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := fmt.Sprintf("%d/%d", c, i)
				reply, err := requester.Request(ctx, e.topic, sdk.NewMessage([]byte(body)))
				switch {
				case err != nil:
					errs <- fmt.Errorf("client %d, request %d: %w", c, i, err)
				case string(reply.Payload) != "re:"+body:
					errs <- fmt.Errorf("client %d, request %d got reply %q", c, i, reply.Payload)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Errorf("guarantee broken: requests from %d clients at once must each get their own reply: %v", clients, err)
	}
}

// testManyNacks: a message that fails a dozen times is still redelivered,
// never dropped (the backoff is made short so the test is quick).
func testManyNacks(e *env) {
	const failures = 12
	c := e.client()
	var calls atomic.Int32
	done := make(chan struct{})
	_, err := c.Subscribe(e.ctx, e.topic, uniqueName("g"), func(context.Context, *sdk.Message) error {
		if calls.Add(1) <= failures {
			return errors.New("still failing")
		}
		close(done)
		return nil
	}, sdk.WithNackBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		e.t.Fatalf("setup: Client.Subscribe failed: %v", err)
	}
	if err := c.Publish(e.ctx, e.topic, sdk.NewMessage([]byte("stubborn"))); err != nil {
		e.t.Fatalf("Client.Publish failed: %v", err)
	}
	select {
	case <-done:
	case <-time.After(e.h.Timeout + failures*time.Second): // SQS counts a nack's delay in whole seconds
		e.t.Fatalf("guarantee broken: a message nacked %d times must still be redelivered: %d deliveries within %v", failures, calls.Load(), e.h.Timeout)
	}
}

// testNackedKeyComesBackFirst: with per-key ordering, a nacked message is
// handled again before the next message of its key.
func testNackedKeyComesBackFirst(e *env) {
	c := e.client()
	var mu sync.Mutex
	var order []string
	done := make(chan struct{})
	failed := false
	_, err := c.Subscribe(e.ctx, e.topic, uniqueName("g"), func(_ context.Context, m *sdk.Message) error {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, string(m.Payload))
		if string(m.Payload) == "k-1" && !failed {
			failed = true
			return errors.New("first delivery fails")
		}
		if string(m.Payload) == "k-3" {
			close(done)
		}
		return nil
	}, sdk.WithConcurrency(4))
	if err != nil {
		e.t.Fatalf("setup: Client.Subscribe failed: %v", err)
	}
	var msgs []*sdk.Message
	for i := 1; i <= 3; i++ {
		msgs = append(msgs, &sdk.Message{Payload: []byte("k-" + strconv.Itoa(i)), OrderingKey: "customer-7"})
	}
	if err := c.Publish(e.ctx, e.topic, msgs...); err != nil {
		e.t.Fatalf("Client.Publish failed: %v", err)
	}
	select {
	case <-done:
	case <-time.After(e.h.Timeout):
		e.t.Fatalf("guarantee broken: every message of a key must be handled after a nack: handled %v within %v", order, e.h.Timeout)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"k-1", "k-1", "k-2", "k-3"}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		e.t.Fatalf("guarantee broken: a nacked message must come back before the next message of its ordering key: handled %v, want %v", order, want)
	}
}

// testLimits: with no payload limit declared an 8 MiB payload round-trips,
// and with one declared a payload over it is refused with
// sdk.ErrPayloadTooLarge before anything is sent; likewise 100 metadata
// entries and MaxMetadataEntries, and metadata bytes and MaxMetadataBytes.
func testLimits(e *env) {
	c, got := e.clientInbox()
	big := &sdk.Message{Payload: bytes.Repeat([]byte{0xa5}, 8<<20)}
	if max := e.caps.MaxPayloadBytes; max > 0 {
		big.Payload = bytes.Repeat([]byte{0xa5}, max+1)
	}
	err := c.Publish(e.ctx, e.topic, big)
	switch {
	case e.caps.MaxPayloadBytes > 0 && !errors.Is(err, sdk.ErrPayloadTooLarge):
		e.t.Fatalf("guarantee broken: a payload over the declared MaxPayloadBytes (%d) must be refused with sdk.ErrPayloadTooLarge, got %v", e.caps.MaxPayloadBytes, err)
	case e.caps.MaxPayloadBytes == 0 && err != nil:
		e.t.Fatalf("guarantee broken: with no MaxPayloadBytes declared an 8 MiB payload must be carried, got %v", err)
	case e.caps.MaxPayloadBytes == 0:
		if m := e.awaitClient(got, "an 8 MiB payload"); !bytes.Equal(m.Payload, big.Payload) {
			e.t.Fatalf("guarantee broken: an 8 MiB payload must round-trip byte for byte (got %d bytes)", len(m.Payload))
		}
	}
	many := &sdk.Message{Payload: []byte("entries"), Metadata: map[string]string{}}
	for i := 0; i < 100; i++ {
		many.Metadata["k"+strconv.Itoa(i)] = "v" + strconv.Itoa(i)
	}
	err = c.Publish(e.ctx, e.topic, many)
	if max := e.caps.MaxMetadataEntries; max > 0 && max < 100+8 {
		if !errors.Is(err, sdk.ErrTooManyMetadataEntries) {
			e.t.Fatalf("guarantee broken: more metadata entries than the declared MaxMetadataEntries (%d) must be refused with sdk.ErrTooManyMetadataEntries, got %v", max, err)
		}
		testMetadataBytes(e, c, got)
		return
	}
	if err != nil {
		e.t.Fatalf("guarantee broken: with no lower MaxMetadataEntries declared 100 metadata entries must be carried, got %v", err)
	}
	m := e.awaitClient(got, "a message with 100 metadata entries")
	for k, v := range many.Metadata {
		if m.Metadata[k] != v {
			e.t.Fatalf("guarantee broken: 100 metadata entries must round-trip: %q is %q, want %q", k, m.Metadata[k], v)
		}
	}
	testMetadataBytes(e, c, got)
}

// testMetadataBytes: with MaxMetadataBytes declared, metadata over it is
// refused with sdk.ErrMetadataTooLarge before anything is sent, and a value
// of half of it (the standard attributes take the rest) is carried; with
// none declared, an 8 KiB value is carried.
func testMetadataBytes(e *env, c *sdk.Client, got <-chan *sdk.Message) {
	max := e.caps.MaxMetadataBytes
	if max > 0 {
		over := &sdk.Message{Payload: []byte("x"), Metadata: map[string]string{"big": strings.Repeat("v", max)}}
		if err := c.Publish(e.ctx, e.topic, over); !errors.Is(err, sdk.ErrMetadataTooLarge) {
			e.t.Fatalf("guarantee broken: metadata over the declared MaxMetadataBytes (%d) must be refused with sdk.ErrMetadataTooLarge, got %v", max, err)
		}
	}
	size := 8 << 10
	if max > 0 {
		size = max / 2
	}
	fits := &sdk.Message{Payload: []byte("metadata bytes"), Metadata: map[string]string{"big": strings.Repeat("v", size)}}
	if err := c.Publish(e.ctx, e.topic, fits); err != nil {
		e.t.Fatalf("guarantee broken: a %d-byte metadata value (declared MaxMetadataBytes %d) must be carried, got %v", size, max, err)
	}
	if m := e.awaitClient(got, fmt.Sprintf("a message with a %d-byte metadata value", size)); m.Metadata["big"] != fits.Metadata["big"] {
		e.t.Fatalf("guarantee broken: a %d-byte metadata value must round-trip, got %d bytes", size, len(m.Metadata["big"]))
	}
}

func (e *env) awaitClient(ch <-chan *sdk.Message, what string) *sdk.Message {
	e.t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(e.h.Timeout):
		e.t.Fatalf("guarantee broken: %s must be delivered: none within %v", what, e.h.Timeout)
		return nil
	}
}

// testForeignMessageGetsStableID: a message injected in the broker's own
// format, with no id and no attributes, reaches the handler with an id
// that is not empty and is the same on its redelivery.
func testForeignMessageGetsStableID(e *env) {
	if e.h.InjectRaw == nil {
		e.t.Skip("not run: Harness.InjectRaw is not set")
	}
	c := e.client()
	ids := make(chan string, 2)
	var calls atomic.Int32
	if _, err := c.Subscribe(e.ctx, e.topic, uniqueName("g"), func(_ context.Context, m *sdk.Message) error {
		ids <- m.ID
		if calls.Add(1) == 1 {
			return errors.New("first delivery fails")
		}
		return nil
	}, sdk.WithNackBackoff(time.Millisecond, time.Millisecond)); err != nil {
		e.t.Fatalf("setup: Client.Subscribe failed: %v", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	if err := e.h.InjectRaw(ctx, e.topic, []byte("from a producer that is not msgkit")); err != nil {
		e.t.Fatalf("setup: Harness.InjectRaw failed: %v", err)
	}
	var got []string
	for len(got) < 2 {
		select {
		case id := <-ids:
			got = append(got, id)
		case <-time.After(e.h.Timeout + 2*time.Second):
			e.t.Fatalf("guarantee broken: a message from another producer must be delivered, and again after a nack: %d deliveries within %v", len(got), e.h.Timeout)
		}
	}
	if got[0] == "" || got[0] != got[1] {
		e.t.Fatalf("guarantee broken: a message without an id must get one that is not empty and stays the same on redelivery: got %q then %q", got[0], got[1])
	}
}

// testForeignEventHandledUnderItsEventID: a CloudEvents event in
// structured mode from a producer that is not msgkit, sent twice (a resend
// after a lost acknowledgement), reaches the handler unpacked, both times
// under the event's id: an inbox then takes the second for a duplicate, as
// it would the same event in binary mode.
func testForeignEventHandledUnderItsEventID(e *env) {
	if e.h.InjectEvent == nil {
		e.t.Skip("not run: Harness.InjectEvent is not set")
	}
	const guarantee = "an event from a CloudEvents producer must be handled under its event id, also when it is sent again"
	_, got := e.clientInbox()
	id := "evt-" + uniqueName("e")
	event := []byte(`{"specversion":"1.0","id":"` + id + `","type":"com.example.order.created","source":"/shop",` +
		`"datacontenttype":"application/json","data":{"order":7}}`)
	ctx, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	for i := range 2 {
		if err := e.h.InjectEvent(ctx, e.topic, event); err != nil {
			e.t.Fatalf("setup: Harness.InjectEvent (send %d of 2) failed: %v", i+1, err)
		}
	}
	for i := range 2 {
		m := e.awaitClient(got, fmt.Sprintf("delivery %d of 2 of an event from a CloudEvents producer", i+1))
		if m.ID != id || string(m.Payload) != `{"order":7}` || m.EventType != "com.example.order.created" || m.Source != "/shop" {
			e.t.Fatalf("guarantee broken: %s: delivery %d of 2 arrived with id %q (want %q), payload %q, type %q, source %q",
				guarantee, i+1, m.ID, id, preview(m.Payload), m.EventType, m.Source)
		}
	}
}
