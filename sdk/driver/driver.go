// Package driver is the contract between msgkit and a broker adapter.
//
// An adapter implements Transport and Subscription: it sends a batch of
// messages, receives a batch, and settles (acks or nacks) a batch by id,
// each call bounded by a context. Everything that decides what "delivered"
// means is not the adapter's job but the delivery engine's, in package sdk:
// handler concurrency, the hand-off of a message to its handler and of the
// verdict back, per-key ordering, ack batching and flushing, lease
// extension while a handler runs, redelivery after a nack, draining on
// close, and coalescing concurrent publishes into batches. An adapter keeps
// what is specific to its broker: wire format, topology, connections and
// reconnects, and the broker calls.
//
// The methods are called by the engine, not by applications; applications
// use sdk.Client, or the Watermill publisher and subscriber that sdk builds
// from any Transport. docs/writing-an-adapter.md walks through a complete
// adapter and lists what the conformance suite checks.
package driver

import (
	"context"
	"fmt"
	"reflect"
	"time"
)

// Message is a message as an adapter sends and receives it.
type Message struct {
	// ID identifies the message. On send it is never empty. On receive the
	// adapter sets it from the wire; a message that arrives without one
	// must get an id that is the same on every redelivery of it.
	ID string
	// DerivedID is set on receive when the message carried no id of its
	// own and the adapter made ID from the broker's record of it (a Kafka
	// offset, a stream entry id, SQS's message id) or from its content.
	// Such an id differs between a producer's resends of one event, so
	// the SDK then takes the CloudEvents event id the message carries, in
	// binary or structured mode, where it has one.
	DerivedID bool
	// Payload is the body, any bytes.
	Payload []byte
	// Attempt is, on receive, how many times the broker has delivered the
	// message, this delivery included, where it counts them; 0 when it
	// does not. The engine's nack backoff grows with it.
	Attempt int
	// Metadata holds every attribute, standard ones included, as strings.
	// On send the adapter may keep the map but must not change it: the
	// messages of one SendBatch that carry the same metadata share one
	// map. On receive the engine takes ownership of it.
	Metadata map[string]string
	// OrderingKey is, on send, the message's ordering key (the same value
	// as Metadata["ordering-key"], or empty). On receive the adapter sets
	// the key the engine must serialise on: messages with one non-empty
	// key are handed to handlers one at a time, in the order received, and
	// a nacked one comes back before the next of its key. Kafka sets the
	// partition here, an SQS FIFO queue the message group.
	OrderingKey string
	// Topic is, on receive, the topic the message was published to, when
	// the subscription's topic is a pattern that matches several (RabbitMQ's
	// shared topic exchange and order.*); empty means the subscription's
	// topic.
	Topic string
	// AckID is the adapter's handle on a received message, passed back to
	// SendAcks, SendNacks and ExtendAcks. The engine never looks inside it.
	AckID AckID
}

// AckID is an adapter's handle on a received message.
type AckID any

// SameMetadata reports whether a and b hold one metadata map, as messages
// of one SendBatch that carry the same metadata do: an adapter may encode
// it once for both.
func SameMetadata(a, b *Message) bool {
	return a.Metadata != nil && reflect.ValueOf(a.Metadata).UnsafePointer() == reflect.ValueOf(b.Metadata).UnsafePointer()
}

// Transport is an open connection to a broker.
type Transport interface {
	// Capabilities declares what the transport guarantees. It must not
	// change while the transport is open. The conformance suite checks
	// every claim; the engine refuses work the transport declares it
	// cannot do (a payload over MaxPayloadBytes, for instance).
	Capabilities() Capabilities
	// SendOptions says how the engine should group publishes for
	// SendBatch and how long it may retry them.
	SendOptions() SendOptions
	// SendBatch publishes msgs to topic and returns once the broker has
	// taken every one (stored it, where it stores), or with an error. A
	// failure that concerns only some messages is a BatchError. SendBatch
	// is called concurrently and must return by ctx's deadline, saying
	// what it was waiting for. msgs never exceeds SendOptions().MaxMessages
	// when that is set.
	SendBatch(ctx context.Context, topic string, msgs []*Message) error
	// OpenSubscription starts consuming topic as a member of group: every
	// group receives each message and the members of one group compete
	// for them. The group exists, and keeps what is published from now on
	// (DurableGroups), when it returns. It must return by ctx's deadline;
	// ctx bounds the setup only, not the subscription's life.
	OpenSubscription(ctx context.Context, topic, group string) (Subscription, error)
	// OpenReplySubscription consumes a client's private reply topic (a
	// name starting with "_reply."), whose broker objects may be temporary
	// and are removed when the subscription closes. Messages sent to such
	// a topic with SendBatch must reach it. A transport without
	// RequestReply returns an error.
	OpenReplySubscription(ctx context.Context, topic string) (Subscription, error)
	// RemoveGroup deletes group's subscription to topic and what the broker
	// keeps for it (a queue, a stream's consumer group, committed offsets):
	// nothing more is kept for the group. Its members should have stopped.
	// Removing a group that does not exist succeeds. A transport that does
	// not declare RemovesGroups returns an error wrapping
	// errors.ErrUnsupported that says why.
	RemoveGroup(ctx context.Context, topic, group string) error
	// IsRetryable reports whether an error returned by this transport is
	// transient (a connection lost, a broker restarting) rather than a
	// refusal that will recur. The engine sends a batch again after a
	// retryable error, until the caller's deadline.
	IsRetryable(err error) bool
	// As sets target to the adapter's native client when target is a
	// pointer to its type, and reports whether it did.
	As(target any) bool
	// Close releases the connection. Subscriptions still open are closed.
	Close() error
}

// Subscription is one member of a consumer group on one topic.
//
// The engine calls ReceiveBatch from one goroutine at a time, or from
// Options().Receivers at once, and the settling methods from others,
// concurrently with it.
type Subscription interface {
	// ReceiveBatch returns up to max messages. It blocks until at least
	// one is available, a poll of the adapter's choosing has passed (it
	// may then return none), or ctx is done (it then returns ctx's error
	// or nothing). A transient broker failure is returned as an error; the
	// engine backs off and calls again, so the adapter reconnects there.
	ReceiveBatch(ctx context.Context, max int) ([]*Message, error)
	// SendAcks acknowledges the messages: they are not delivered to this
	// group again. A failure means they may be redelivered, never lost.
	// The engine reuses ids after the call: keep none of it.
	SendAcks(ctx context.Context, ids []AckID) error
	// CanNack reports whether SendNacks hands messages back to the broker
	// for redelivery. When it is false (Kafka, Redis Streams) the engine
	// redelivers a nacked message itself, to a handler of this
	// subscription, and keeps its lease alive meanwhile.
	CanNack() bool
	// SendNacks hands the messages back for redelivery, to any member of
	// the group: after delay when Options().DelaysNacks, otherwise at once
	// (the engine then holds the message itself until its delay is over).
	// Called only when CanNack is true.
	SendNacks(ctx context.Context, ids []AckID, delay time.Duration) error
	// ExtendAcks keeps messages the engine still holds from being given to
	// another member (Redis XCLAIM, SQS visibility). It is called every
	// Options().Lease/3 when Lease is set.
	ExtendAcks(ctx context.Context, ids []AckID) error
	// Options tunes the engine for this subscription.
	Options() Options
	// Close stops consuming. Every message it returned and that was
	// neither acked nor nacked goes back to the group, at once where the
	// broker allows. After Close, settling calls may fail; that means
	// redelivery, never loss. Close may be called again, and at the same
	// time as another Close or the transport's Close (the client's Close
	// closes the transport when a subscription's own Close does not end by
	// its deadline): only the first call does the work; the others return.
	Close() error
}

// Options tunes the engine for one subscription.
type Options struct {
	// MaxBatch is how many messages the engine asks of ReceiveBatch. It
	// asks whenever it holds no more than max(MaxBatch, handlers), so the
	// next batch arrives while one is handled. Default 64.
	MaxBatch int
	// Receivers is how many ReceiveBatch calls the engine keeps in flight
	// at once while receives return messages; while they come back empty
	// it keeps one. Default 1. More suits a broker whose receive costs a
	// round trip that returns few messages (SQS long polls, ten at most):
	// the next batch is on its way while one comes back. ReceiveBatch must
	// then be safe to call concurrently, and per-key order holds only if
	// the broker gives out no message of a key while an earlier one of it
	// is held (an SQS FIFO queue's message groups), since two batches may
	// arrive in either order. The engine may then hold up to
	// Receivers×MaxBatch messages beyond its usual batch ahead.
	Receivers int
	// AckBatch is the most ids per SendAcks. Default MaxBatch. With 1,
	// each ack is sent before the engine counts its message as gone (for
	// brokers that hand out the next message only after an ack).
	AckBatch int
	// AckFlush is how long an ack may wait to be sent with others. Acks
	// are also sent whenever the handlers run out of work. Default 100ms.
	AckFlush time.Duration
	// Lease, when set, is how long the broker lets a member hold a
	// message before giving it to another; the engine calls ExtendAcks
	// every Lease/3 for what it holds.
	Lease time.Duration
	// RedeliveryDelay is the least a nacked message waits before it is
	// delivered again; the engine's nack backoff may make it wait longer.
	RedeliveryDelay time.Duration
	// DelaysNacks: SendNacks makes the broker wait its delay before
	// redelivering (SQS visibility, a JetStream NAK with a delay), so the
	// engine hands a nacked message back at once. Without it the engine
	// holds the message until its delay is over, and the rest of its key
	// with it, and then calls SendNacks.
	DelaysNacks bool
}

// SendOptions says how the engine groups publishes into SendBatch calls.
type SendOptions struct {
	// MaxMessages is the most messages per SendBatch; 0 means no limit.
	// With Coalesce, concurrent publishes to one topic share calls up to
	// this many messages.
	MaxMessages int
	// Coalesce makes concurrent publishes to one topic share calls: a
	// publish that finds fewer than MaxInFlight calls in flight makes its
	// own, the others queue and go together in the next call to start,
	// so many small concurrent publishes cost few broker calls.
	Coalesce bool
	// MaxInFlight is how many SendBatch calls per topic may run at once
	// when coalescing. Default 4.
	MaxInFlight int
	// FillCalls, with Coalesce, trades a little latency for fuller calls,
	// for brokers that charge per call or whose calls cost far more than
	// their messages (SQS, Kafka): the next call waits up to a tenth
	// of the last one's duration (at most 2 ms) for as many publishers as
	// the last one carried, who mostly publish again at once.
	FillCalls bool
	// Unordered says the broker does not keep the order of one publish's
	// messages anyway (an SQS standard queue): the calls of a publish
	// larger than MaxMessages then run at once, up to MaxInFlight. Without
	// it they go one after another, so that the messages arrive in order.
	Unordered bool
	// Timeout bounds a publish, retries included, whose context has no
	// deadline (the adapter's publish_timeout). A publish whose context can
	// never end (context.Background) may be given up to a hundredth less,
	// so that publishes starting together share one timer. Zero adds no
	// deadline: only for a driver whose SendBatch cannot block (an
	// in-process broker).
	Timeout time.Duration
}

// BatchError is SendBatch's error when only some messages failed: one
// entry per message, nil for those the broker took.
type BatchError []error

func (e BatchError) Error() string {
	var failed []error
	for _, err := range e {
		if err != nil {
			failed = append(failed, err)
		}
	}
	switch len(failed) {
	case 0:
		return "no message failed"
	case 1:
		return failed[0].Error()
	}
	return fmt.Sprintf("%v (and %d more failed)", failed[0], len(failed)-1)
}

type groupStartKey struct{}

// WithGroupStart returns a context for OpenSubscription that asks for a
// group that does not exist yet to start at its topic's oldest message
// (oldest true) or at the latest. The client sends it only to transports
// that declare ChoosesGroupStart; they read it with GroupStartOldest.
func WithGroupStart(ctx context.Context, oldest bool) context.Context {
	return context.WithValue(ctx, groupStartKey{}, oldest)
}

// GroupStartOldest reports whether ctx asks a new group to start at the
// oldest message; def when it asks nothing (the transport's configured
// start).
func GroupStartOldest(ctx context.Context, def bool) bool {
	if oldest, ok := ctx.Value(groupStartKey{}).(bool); ok {
		return oldest
	}
	return def
}
