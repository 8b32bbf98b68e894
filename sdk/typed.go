package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Codec turns values into payloads and back. The client's codec (JSON
// unless WithCodec says otherwise) is used by Encode, Handle, Request and
// Reply; a protobuf or CBOR codec plugs in the same way.
type Codec interface {
	// ContentType is the media type written to a message it encodes, such
	// as "application/json".
	ContentType() string
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default codec: encoding/json, content type application/json.
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) ContentType() string                { return "application/json" }
func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// WithCodec sets the codec the client encodes and decodes values with.
func WithCodec(c Codec) Option {
	return func(cl *Client) {
		if c != nil {
			cl.codec = c
		}
	}
}

// Encode returns a message whose payload is v encoded with the client's
// codec, its ContentType set to the codec's.
func (c *Client) Encode(v any) (*Message, error) {
	b, err := c.codec.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("messaging: encode %T with %s: %w", v, c.codec.ContentType(), err)
	}
	m := NewMessage(b)
	m.ContentType = c.codec.ContentType()
	return m, nil
}

// Decode decodes m's payload into v with the client's codec.
func (c *Client) Decode(m *Message, v any) error {
	if err := c.codec.Unmarshal(m.Payload, v); err != nil {
		return fmt.Errorf("messaging: decode message %s as %T (%s): %w", m.ID, v, c.codec.ContentType(), err)
	}
	return nil
}

// Handle returns a Handler that decodes each message into a T with the
// client's codec and calls h with it. A message that cannot be decoded
// fails with a permanent error (sdk.Permanent): redelivering it would not
// help, so the dead-letter middleware takes it at once.
func Handle[T any](c *Client, h func(ctx context.Context, v T, m *Message) error) Handler {
	return func(ctx context.Context, m *Message) error {
		var v T
		if err := c.Decode(m, &v); err != nil {
			return Permanent(err)
		}
		return h(ctx, v, m)
	}
}

// HandleJSON is Handle with the JSON codec, whatever the client's.
func HandleJSON[T any](h func(ctx context.Context, v T, m *Message) error) Handler {
	return func(ctx context.Context, m *Message) error {
		var v T
		if err := json.Unmarshal(m.Payload, &v); err != nil {
			return Permanent(fmt.Errorf("messaging: decode message %s as %T (application/json): %w", m.ID, v, err))
		}
		return h(ctx, v, m)
	}
}

// Request sends req, encoded with the client's codec, to topic and decodes
// the reply into a Resp. A responder's refusal or failure comes back as a
// *RemoteError (its Code set when the responder returned Reject).
func Request[Req, Resp any](ctx context.Context, c *Client, topic string, req Req) (Resp, error) {
	var resp Resp
	m, err := c.Encode(req)
	if err != nil {
		return resp, err
	}
	reply, err := c.Request(ctx, topic, m)
	if err != nil {
		return resp, err
	}
	if err := c.Decode(reply, &resp); err != nil {
		return resp, fmt.Errorf("messaging: reply to request %s on %s: %w", m.ID, QuoteName(topic), err)
	}
	return resp, nil
}

// Reply returns a Responder that decodes each request into a Req, calls f
// and sends back its Resp encoded with the client's codec. A request that
// cannot be decoded is answered with a *RemoteError of code
// CodeBadRequest, without calling f.
func Reply[Req, Resp any](c *Client, f func(ctx context.Context, req Req, m *Message) (Resp, error)) Responder {
	return func(ctx context.Context, m *Message) (*Message, error) {
		var req Req
		if err := c.Decode(m, &req); err != nil {
			return nil, Reject(CodeBadRequest, err.Error())
		}
		resp, err := f(ctx, req, m)
		if err != nil {
			return nil, err
		}
		reply, err := c.Encode(resp)
		if err != nil {
			return nil, Reject(CodeInternal, err.Error())
		}
		return reply, nil
	}
}

// CodeBadRequest is the RemoteError code of a request Reply could not
// decode.
const CodeBadRequest = "bad_request"

// CodeInternal is the code a requester's *RemoteError carries when the
// responder failed in a way that is not the request's fault: it panicked,
// its reply cannot be encoded (Reply), or the reply it returned cannot be
// published (sdk.IsRefused).
const CodeInternal = "internal"

// Reject returns the error a Responder returns to refuse a request for a
// reason the caller can act on: the caller's Request returns a
// *RemoteError with this Code and Message. Unlike other errors, a
// rejection is an answer, not a failure: the request is acknowledged.
func Reject(code, message string) error { return &RejectError{Code: code, Message: message} }

// RejectError is the error Reject returns.
type RejectError struct{ Code, Message string }

func (e *RejectError) Error() string { return e.Code + ": " + e.Message }

// rejection returns the code and message of err when it is, or wraps, a
// Reject.
func rejection(err error) (code, message string, ok bool) {
	var r *RejectError
	if errors.As(err, &r) {
		return r.Code, r.Message, true
	}
	return "", "", false
}
