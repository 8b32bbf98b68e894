package awsq

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
)

func TestClaimRefusedTellsARefusalFromAFailure(t *testing.T) {
	api := func(code string) error {
		return &smithy.OperationError{ServiceID: "SQS", OperationName: "ListQueueTags", Err: &smithy.GenericAPIError{Code: code}}
	}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{api("AccessDenied"), true},
		{api("AuthorizationError"), true},
		{api("InvalidAction"), true}, // a compatible service without tags
		{api("Throttling"), false},
		{api("AWS.SimpleQueueService.NonExistentQueue"), false},
		{api("InvalidClientTokenId"), false},
		{&ClaimConflict{Resource: `queue "q"`, Key: TopicTag, Has: "other"}, false},
		{errors.New("dial tcp: connection refused"), false},
		{context.DeadlineExceeded, false},
	} {
		if got := ClaimRefused(c.err); got != c.want {
			t.Errorf("ClaimRefused(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// fakeTags is a TagStore over a map, counting its calls, failing with err
// when set.
type fakeTags struct {
	tags  map[string]string
	lists int
	err   error
}

func (f *fakeTags) store() TagStore {
	return TagStore{Resource: `queue "q"`,
		List: func(context.Context) (map[string]string, error) {
			f.lists++
			return f.tags, f.err
		},
		Add: func(_ context.Context, add map[string]string) error {
			for k, v := range add {
				f.tags[k] = v
			}
			return nil
		}}
}

func TestPublishClaimsClaimOncePerTopic(t *testing.T) {
	var log bytes.Buffer
	p := &PublishClaims{Logger: slog.New(slog.NewTextHandler(&log, nil)), Grant: "sqs:ListQueueTags"}
	ctx := context.Background()
	f := &fakeTags{tags: map[string]string{}}
	for range 3 {
		if err := p.Check(ctx, "orders", f.store()); err != nil {
			t.Fatal(err)
		}
	}
	if f.lists != 1 || f.tags[TopicTag] != "orders" {
		t.Fatalf("three checks of one topic: %d reads, tags %v; want one read and the topic claimed", f.lists, f.tags)
	}

	// Another topic mapped to the same queue: refused every time, never
	// remembered as checked.
	for range 2 {
		var conflict *ClaimConflict
		if err := p.Check(ctx, "orders.x", f.store()); !errors.As(err, &conflict) || conflict.Has != "orders" {
			t.Fatalf("want a conflict naming orders, got %v", err)
		}
	}

	// No answer: the publish fails and the next one asks again.
	down := &fakeTags{tags: map[string]string{}, err: errors.New("connection refused")}
	for range 2 {
		if err := p.Check(ctx, "payments", down.store()); err == nil {
			t.Fatal("a claim that got no answer must fail the publish")
		}
	}
	if down.lists != 2 {
		t.Fatalf("a claim that got no answer was not asked again (%d reads)", down.lists)
	}

	// Refused: unchecked, remembered, said once.
	denied := &fakeTags{tags: map[string]string{}, err: &smithy.GenericAPIError{Code: "AccessDenied"}}
	for _, topic := range []string{"a", "a", "b"} {
		if err := p.Check(ctx, topic, denied.store()); err != nil {
			t.Fatalf("a refused claim must leave the publish unchecked, got %v", err)
		}
	}
	if denied.lists != 2 {
		t.Fatalf("refused claims for topics a, a, b read tags %d times, want 2", denied.lists)
	}
	if n := strings.Count(log.String(), "not checked"); n != 1 || !strings.Contains(log.String(), "sqs:ListQueueTags") {
		t.Fatalf("want one log line naming the grant, got %q", log.String())
	}
}
