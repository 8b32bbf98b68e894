package sdk_test

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// sentBatches is a memory transport that keeps what each SendBatch was
// given.
type sentBatches struct {
	driver.Transport
	batches [][]*driver.Message
}

func (s *sentBatches) SendBatch(ctx context.Context, topic string, msgs []*driver.Message) error {
	s.batches = append(s.batches, msgs)
	return s.Transport.SendBatch(ctx, topic, msgs)
}

// A Publish of messages that carry the same metadata gives the driver one
// map for them, and every message still carries exactly its own.
func TestPublishSharesOneMetadataMapBetweenMessagesThatCarryTheSame(t *testing.T) {
	inner, err := memory.Driver{}.Open(context.Background(), sdk.Config{URL: "memory://shared-metadata"})
	if err != nil {
		t.Fatal(err)
	}
	tr := &sentBatches{Transport: inner}
	c := sdk.NewClient(tr, quiet)
	defer c.Close(context.Background())

	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	msgs := []*sdk.Message{
		{EventType: "order.created", Source: "orders"},
		{EventType: "order.created", Source: "orders"}, // the same as the one before
		{EventType: "order.created", Source: "orders", Metadata: map[string]string{"tenant": "acme"}},
		{EventType: "order.created", Source: "orders"}, // follows one with an entry of its own
		{EventType: "order.created", Source: "orders"},
		{EventType: "order.paid", Source: "orders"},
		{EventType: "order.paid", Source: "orders", Time: at},
		{EventType: "order.paid", Source: "orders", Time: at}, // the same time, given
		{EventType: "order.paid", Source: "orders", Time: at, OrderingKey: "o-1"},
		{EventType: "order.paid", Source: "orders", OrderingKey: "o-1"},
		{EventType: "order.paid", Source: "orders", OrderingKey: "o-1"},
		{EventType: "order.paid", Source: "billing", OrderingKey: "o-1"},
		{EventType: "order.paid", Source: "billing", OrderingKey: "o-1", ContentType: "application/json"},
		{EventType: "order.paid", Source: "billing", OrderingKey: "o-1", ContentType: "application/json", CorrelationID: "c"},
		{EventType: "order.paid", Source: "billing", OrderingKey: "o-1", ContentType: "application/json", CorrelationID: "c", CausationID: "k"},
	}
	sharesWithPrevious := []bool{false, true, false, false, true, false, false, true, false, false, true, false, false, false, false}
	if err := c.Publish(context.Background(), "shared-metadata", msgs...); err != nil {
		t.Fatal(err)
	}
	if len(tr.batches) != 1 || len(tr.batches[0]) != len(msgs) {
		t.Fatalf("the driver got %d batches; want one of %d messages", len(tr.batches), len(msgs))
	}
	sent := tr.batches[0]
	for i, dm := range sent {
		want := map[string]string{}
		sdk.NewOutgoing(msgs[i], time.Now()).Metadata(func(k, v string) bool { want[k] = v; return true })
		// The time of a message without one is the Publish's own.
		if msgs[i].Time.IsZero() {
			want[sdk.KeyTime] = dm.Metadata[sdk.KeyTime]
		}
		if !maps.Equal(dm.Metadata, want) {
			t.Errorf("message %d went to the driver with metadata %v; want %v", i, dm.Metadata, want)
		}
		if i == 0 {
			continue
		}
		shared := reflect.ValueOf(dm.Metadata).UnsafePointer() == reflect.ValueOf(sent[i-1].Metadata).UnsafePointer()
		if shared != sharesWithPrevious[i] {
			t.Errorf("message %d shares the metadata map of the one before: %v; want %v", i, shared, sharesWithPrevious[i])
		}
	}
	if sent[0].Metadata[sdk.KeyTime] == "" || sent[0].Metadata[sdk.KeyTime] != sent[5].Metadata[sdk.KeyTime] {
		t.Errorf("messages without a time must carry the Publish's: %q and %q", sent[0].Metadata[sdk.KeyTime], sent[5].Metadata[sdk.KeyTime])
	}
}

// Messages that share a map are checked against the driver's limits as
// every other: a refusal names the first message that carries what is
// refused.
func TestPublishChecksEveryMessageOfABatchThatSharesMetadata(t *testing.T) {
	c := open(t, sdk.Config{URL: "memory://shared-metadata-checked"})
	alike := func() *sdk.Message { return &sdk.Message{EventType: "order.created"} }
	bad := &sdk.Message{EventType: "order.created", Source: "\xff"}
	err := c.Publish(context.Background(), "t", alike(), alike(), bad, alike())
	if !errors.Is(err, sdk.ErrInvalidMetadata) || !strings.Contains(err.Error(), "message 2 ") {
		t.Fatalf("a batch whose third message has a source that is not UTF-8 must be refused naming message 2: %v", err)
	}
	err = c.Publish(context.Background(), "t", bad, &sdk.Message{EventType: "order.created", Source: "\xff"})
	if !errors.Is(err, sdk.ErrInvalidMetadata) || !strings.Contains(err.Error(), "message 0 ") {
		t.Fatalf("a batch whose first message has a source that is not UTF-8 must be refused naming message 0: %v", err)
	}
}
