// Package sdk is msgkit's portable messaging API: one Client to publish,
// subscribe, request and reply over whichever broker the configuration
// selects.
//
// Open (or OpenFile, which reads a YAML file and MESSAGING_* environment
// variables) picks a registered driver by name; the adapters register
// themselves when imported (adapters/all imports every one). NewClient
// wraps a transport built in code, from an adapter's typed constructor
// (rabbitmq.New, redis.New, kafka.New, nats.New, sqs.New) or from any
// Watermill publisher and subscriber (WatermillTransport).
//
//   - Publish sends Messages; standard attributes (EventType, Source, Time,
//     ContentType, CorrelationID, CausationID, OrderingKey) travel as
//     metadata every consumer can read. Encode, Handle, Request[Req, Resp]
//     and Reply carry typed values with the client's Codec (JSON unless
//     WithCodec says otherwise).
//   - Subscribe runs a Handler for each message of a topic as a member of a
//     consumer group: nil acknowledges, an error or a panic leaves the
//     message for redelivery after a growing backoff, Permanent marks an
//     error that no redelivery will cure. EnsureGroup creates a group
//     before anything consumes it.
//   - Request and Respond do request/reply with correlation, deadlines and
//     refusal codes (Reject, RemoteError).
//   - Capabilities says what the driver guarantees; Require makes Open
//     refuse a driver that lacks what the service needs.
//   - Close drains running handlers within a deadline.
//
// Delivery is at least once. Package middleware adds retry, dead letters,
// circuit breaking, timeouts and observability; package outbox publishes
// messages written in a database transaction; package conformance is the
// suite every driver passes; package sdk/driver is the contract an adapter
// implements.
package sdk
