package sdk

import (
	"context"
	"errors"
)

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: retry middleware does not retry it and
// dead-letter middleware sends the message to the DLQ at once. Use it for
// messages that will never succeed (undecodable payload, failed validation).
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Publisher is anything that publishes like Client.Publish: the Client
// itself or a decorated one (middleware, the outbox).
type Publisher interface {
	Publish(ctx context.Context, topic string, msgs ...*Message) error
}

type ctxKey int

const (
	consumedKey ctxKey = iota
	stoppingKey
)

// Consumed returns the message whose handler ctx belongs to, or nil. Publish
// uses it to carry correlation and causation ids.
func Consumed(ctx context.Context) *Message {
	m, _ := ctx.Value(consumedKey).(*Message)
	return m
}

// Stopping returns a channel that is closed when the subscription running
// the handler of ctx starts to close, or nil outside a handler. Middleware
// that waits (a circuit breaker holding a message while open) stops waiting
// then, so that Close does not have to wait for it.
func Stopping(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(stoppingKey).(chan struct{})
	return ch
}

// inheritFrom fills m's correlation and causation ids from the message being
// handled: the correlation id is kept for the whole conversation (the
// parent's, or the parent's id when it had none) and the causation id is the
// parent's id. Values set by the caller win.
// WithCorrelationID starts a conversation outside a handler (an HTTP
// request, a job): Publish, Request and the outbox's Add give messages
// published with the returned context this correlation id, unless they set
// their own. Inside a handler the consumed message's correlation id is
// used instead.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey, id)
}

// CorrelationID returns the correlation id that messages published with ctx
// get: the consumed message's inside a handler, else WithCorrelationID's,
// else "".
func CorrelationID(ctx context.Context) string {
	if m := Consumed(ctx); m != nil {
		if m.CorrelationID != "" {
			return m.CorrelationID
		}
		return m.ID
	}
	id, _ := ctx.Value(correlationKey).(string)
	return id
}

type correlationKeyType struct{}

var correlationKey correlationKeyType

// Inherit sets m's CorrelationID and CausationID from ctx, where they are
// empty, as Publish does: from the message a handler is handling (its
// correlation id, and its id as the cause), else from WithCorrelationID.
// Code that stores messages to publish later (the outbox) calls it.
func Inherit(ctx context.Context, m *Message) {
	if parent := Consumed(ctx); parent != nil {
		m.inheritFrom(parent)
		return
	}
	if m.CorrelationID == "" {
		m.CorrelationID, _ = ctx.Value(correlationKey).(string)
	}
}

func (m *Message) inheritFrom(parent *Message) {
	if parent == nil {
		return
	}
	if m.CorrelationID == "" {
		m.CorrelationID = parent.CorrelationID
		if m.CorrelationID == "" {
			m.CorrelationID = parent.ID
		}
	}
	if m.CausationID == "" {
		m.CausationID = parent.ID
	}
}
