// Package redis is the Redis Streams driver, on go-redis v9.
//
// A topic is a stream; a consumer group is a Redis consumer group on it;
// each Subscribe call is one consumer reading batches with XREADGROUP
// COUNT batch_size. Acks are batched into one XACK per batch, publishing
// pipelines XADD. Pending messages of a consumer that died are claimed by
// the others with XAUTOCLAIM once idle for claim_idle; a consumer that
// closes cleanly hands its unacked messages back at once. See
// docs/adapters/redis.md.
//
// watermill-redisstream is not used underneath: it reads with COUNT 1, acks
// each message with its own round trip, publishes each message with its own
// XADD, and deletes idle consumers in a way that can drop their pending
// messages (watermill-redisstream issue #24).
//
//	import _ "github.com/msgkit/msgkit/adapters/redis"
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// DriverName is the name the driver registers under.
const DriverName = "redis"

func init() {
	sdk.Register(DriverName, Driver{})
	// go-redis writes its own notices ("failed to dial", pool events) to
	// stderr through a logger of its own, process-wide: send them to slog,
	// at debug level, where the errors they concern are also returned.
	goredis.SetLogger(slogLogger{})
}

// slogLogger passes go-redis's notices to slog.Default().
type slogLogger struct{}

func (slogLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...), "driver", DriverName)
}

// Driver opens Redis Streams transports.
type Driver struct{}

// CheckConfig validates cfg as Open does, without connecting.
func (Driver) CheckConfig(cfg sdk.Config) error {
	_, err := parseSettings(cfg)
	return err
}

// Open validates cfg, connects and checks the server answers, by ctx's
// deadline.
func (Driver) Open(ctx context.Context, cfg sdk.Config) (driver.Transport, error) {
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	client := s.newClient()
	if err := ping(ctx, client); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redis: connect to %s: %w", s.where(), explain(err, s.opts.TLSConfig))
	}
	t, err := newTransport(ctx, s, client, true)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	return t, nil
}

// New returns a transport on the caller's own go-redis client (its
// address, credentials, TLS, pool). Each subscription reads with a client
// of its own made from client's options, since a blocked XREADGROUP holds
// its connection, and publishes share one pipelined connection made from
// client's options (see docs/adapters/redis.md), which client's hooks do
// not see. A bad option is a *sdk.ConfigError naming it.
// Close leaves client open.
func New(ctx context.Context, client *goredis.Client, o Options) (*Transport, error) {
	if err := sdk.FillOptions(DriverName, &o); err != nil {
		return nil, err
	}
	s, err := newSettings(sdk.Config{}, o, client.Options())
	if err != nil {
		return nil, err
	}
	if err := ping(ctx, client); err != nil {
		return nil, fmt.Errorf("redis: connect to %s: %w", s.where(), explain(err, s.opts.TLSConfig))
	}
	return newTransport(ctx, s, client, false)
}

func newTransport(ctx context.Context, s settings, client goredis.UniversalClient, owned bool) (*Transport, error) {
	pipe, err := openPipe(ctx, s, client)
	if err != nil {
		return nil, fmt.Errorf("redis: connect the publishing connection to %s: %w", s.where(), explain(err, s.opts.TLSConfig))
	}
	t := &Transport{s: s, client: client, pipe: pipe, ownsClient: owned, logger: slog.Default().With("driver", DriverName)}
	t.trim = newTrimmer(t)
	t.persistent = serverPersists(ctx, client)
	return t, nil
}

// ping checks the server answers, by ctx's deadline: go-redis bounds a new
// connection's handshake by its own timeouts, not by the context, so a
// server that accepts and never answers would hold Open past it.
func ping(ctx context.Context, client goredis.UniversalClient) error {
	done := make(chan error, 1)
	go func() { done <- client.Ping(ctx).Err() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer from the server (is it Redis, and is TLS configured as the server expects?): %w", ctx.Err())
	}
}

// explain adds to a connection error what to change: credentials, the
// address, or the TLS settings tc (nil without TLS).
func explain(err error, tc *tls.Config) error {
	if e := sdk.ExplainTLS(err, tc); e != err {
		return e
	}
	msg := err.Error()
	hint := ""
	switch {
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "invalid password"), strings.Contains(msg, "invalid username-password"):
		hint = "the user name or password in the URL was refused; check the credentials"
	case strings.Contains(msg, "NOAUTH"):
		hint = "the server requires a password; put it in the URL: redis://:PASSWORD@host:port/0"
	case strings.Contains(msg, "without any password configured"):
		hint = "the server has no password; remove it from the URL"
	case strings.Contains(msg, "connection refused"):
		hint = "nothing listens there; is Redis running, and is the port right?"
	case tc == nil && (errors.Is(err, io.EOF) || strings.Contains(msg, "connection reset")):
		hint = "the server closed the connection: if it listens with TLS there, write rediss:// in the URL"
	default:
		return err
	}
	return fmt.Errorf("%w (%s)", err, hint)
}

// serverPersists reports whether the server writes an append-only file, the
// only setting under which acknowledged stream entries survive a restart
// without loss. A server that hides CONFIG (managed Redis) counts as not
// persistent: the capability is declared only when it can be seen to hold.
func serverPersists(ctx context.Context, c goredis.UniversalClient) bool {
	v, err := c.ConfigGet(ctx, "appendonly").Result()
	if err == nil {
		return v["appendonly"] == "yes"
	}
	// A user whose ACL does not allow CONFIG (as it should not) may still
	// read INFO persistence.
	info, err := c.Info(ctx, "persistence").Result()
	return err == nil && strings.Contains(info, "aof_enabled:1")
}

// refusedError is a command the server refused by its ACL.
type refusedError struct{ err error }

func (e *refusedError) Error() string {
	return e.err.Error() + " (the server refused it: the user's ACL does not allow this command on this key; see docs/security.md for the rules each role needs)"
}

func (e *refusedError) Unwrap() error { return e.err }

// explainRefusal marks an ACL refusal (NOPERM) as such, and returns any
// other error as it is.
func explainRefusal(err error) error {
	if err != nil && strings.HasPrefix(err.Error(), "NOPERM") {
		return &refusedError{err}
	}
	return err
}

// Transport is an open Redis Streams transport.
type Transport struct {
	s          settings
	client     goredis.UniversalClient // acks, claims, group setup: a *goredis.Client, or a *goredis.ClusterClient for Redis Cluster
	pipe       *pipe                   // publishing (pipe.go); nil: publishes go through client
	ownsClient bool                    // false: the caller's (New), left open by Close
	logger     *slog.Logger
	persistent bool

	subs driver.Subscriptions[*subscription]
	trim *trimmer
}

// Capabilities declares what Redis Streams guarantee under this
// configuration and server.
func (t *Transport) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{
		ConsumerGroups:          true,
		Ordering:                sdk.OrderingNone, // competing consumers, claims and nacks reorder
		DurableGroups:           true,
		NewGroupsReceiveHistory: t.s.startOldest,
		ChoosesGroupStart:       true,
		Persistent:              t.persistent,
		RequestReply:            true, // reply streams are deleted when their subscription closes
		RemovesGroups:           true,
		MaxPayloadBytes:         t.s.MaxPayloadBytes,
		// Redis takes fields of any size; the bound keeps one message's
		// metadata from costing every consumer's memory.
		MaxMetadataBytes: 64 << 10,
	}
}

// SendOptions: a publish is one pipeline, retried until publish_timeout
// when the caller's context has no deadline. Publishes to one stream that
// find every pipeline slot taken queue and share the next one (up to 1000
// entries): many concurrent one-message publishes cost a round trip per
// pipeline instead of one each.
//
// On the pipe, 32 publishes to a stream go at once: the pipe writes
// concurrent calls together anyway, so a publish that queued for a slot
// would only wait for a hand-off (8 goroutines publishing one message
// each ran at 0.7× rueidis with 4 slots, level with it with 16 or 32;
// docs/benchmarks.md). Through go-redis (Cluster, wait_replicas) each
// call holds a pooled connection for a round trip, so 4 go at once and
// the rest share.
func (t *Transport) SendOptions() driver.SendOptions {
	inFlight := 4
	if t.pipe != nil {
		inFlight = 32
	}
	return driver.SendOptions{Timeout: t.s.PublishTimeout, Coalesce: true, MaxMessages: 1000, MaxInFlight: inFlight}
}

// SendBatch XADDs msgs to the topic's stream in one pipeline, trimming by
// max_len or retention when configured. Entries added before a failure
// count as sent; an XADD whose reply was lost may be applied twice after
// the engine retries: at least once, never zero times.
func (t *Transport) SendBatch(ctx context.Context, topic string, msgs []*driver.Message) error {
	if t.subs.Closed() {
		return fmt.Errorf("redis: publish to %s: transport %w", sdk.QuoteName(topic), sdk.ErrClosed)
	}
	added, err := untilDone(ctx, func() (int, error) {
		if t.pipe != nil {
			return t.addPiped(ctx, topic, msgs)
		}
		return t.add(ctx, topic, msgs)
	})
	if err == nil {
		return nil
	}
	err = fmt.Errorf("redis: publish to %s on %s: %w", sdk.QuoteName(topic), t.s.where(), explainRefusal(err))
	if added == 0 {
		return err
	}
	errs := make(driver.BatchError, len(msgs))
	for i := added; i < len(msgs); i++ {
		errs[i] = err
	}
	return errs
}

// entries returns the writer of the fields of a batch's entries in the
// configured layout.
func (t *Transport) entries() entryFields {
	return entryFields{watermill: t.s.WireFormat == "watermill"}
}

// minID is the oldest entry id retention keeps.
func (t *Transport) minID() string {
	return strconv.FormatInt(timeNow().Add(-t.s.Retention).UnixMilli(), 10)
}

// add sends msgs with go-redis in one pipeline and reports how many
// leading entries were added.
func (t *Transport) add(ctx context.Context, topic string, msgs []*driver.Message) (int, error) {
	args := make([]goredis.XAddArgs, len(msgs))
	fields := t.entries()
	for i, m := range msgs {
		values, err := fields.of(m)
		if err != nil {
			return 0, err
		}
		args[i] = goredis.XAddArgs{Stream: topic, Values: values, Approx: true}
		if t.s.MaxLen > 0 {
			args[i].MaxLen = t.s.MaxLen
		} else if t.s.Retention > 0 {
			args[i].MinID = t.minID()
		}
	}
	if t.s.WaitReplicas > 0 {
		return t.addReplicated(ctx, args)
	}
	if len(args) == 1 {
		if err := t.client.XAdd(ctx, &args[0]).Err(); err != nil {
			return 0, err
		}
		return 1, nil
	}
	cmds, err := t.client.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		for i := range args {
			pipe.XAdd(ctx, &args[i])
		}
		return nil
	})
	added := 0
	for _, c := range cmds {
		if c.Err() != nil {
			break
		}
		added++
	}
	return added, err
}

// addReplicated sends args and a WAIT in one pipeline: the entries count
// as added only once WaitReplicas replicas have them.
func (t *Transport) addReplicated(ctx context.Context, args []goredis.XAddArgs) (int, error) {
	var wait *goredis.Cmd
	cmds, err := t.client.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		for i := range args {
			pipe.XAdd(ctx, &args[i])
		}
		wait = pipe.Do(ctx, "WAIT", t.s.WaitReplicas, t.s.WaitTimeout.Milliseconds())
		return nil
	})
	for _, c := range cmds[:len(args)] {
		if c.Err() != nil {
			return 0, c.Err()
		}
	}
	if err != nil {
		return 0, err
	}
	n, err := wait.Int64()
	if err != nil {
		return 0, fmt.Errorf("WAIT for %d replicas: %w", t.s.WaitReplicas, err)
	}
	if n < int64(t.s.WaitReplicas) {
		return 0, &notReplicatedError{got: n, want: t.s.WaitReplicas, within: t.s.WaitTimeout}
	}
	return len(args), nil
}

// notReplicatedError is a publish that reached the primary and fewer
// replicas than wait_replicas: a failover could lose it, so it is sent
// again.
type notReplicatedError struct {
	got    int64
	want   int
	within time.Duration
}

func (e *notReplicatedError) Error() string {
	return fmt.Sprintf("the primary has the entries but only %d of the %d replicas (wait_replicas) confirmed them within %v (wait_timeout); sending again", e.got, e.want, e.within)
}

// IsRetryable reports whether err is the connection failing (the server
// restarting or out of reach) rather than the server refusing the command.
// Only the innermost error's text is read: the wrapping messages hold the
// topic's name, which may hold any of these words.
func (t *Transport) IsRetryable(err error) bool {
	var ne net.Error
	var nr *notReplicatedError
	cause := innermost(err).Error()
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, rueidis.ErrClosing) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.As(err, &nr) ||
		strings.Contains(cause, "connection refused") || strings.Contains(cause, "broken pipe") ||
		// A server loading its data after a restart, running a script past
		// its time limit, or a cluster moving or missing slots.
		hasReply(err, "LOADING") || hasReply(err, "BUSY ") || hasReply(err, "TRYAGAIN") || hasReply(err, "CLUSTERDOWN") ||
		// A failover in progress: the old primary, now a replica, or a
		// primary that lost its replicas.
		hasReply(err, "READONLY") || hasReply(err, "MASTERDOWN") || hasReply(err, "NOREPLICAS")
}

// innermost is the error err wraps at the bottom of its chain: for an
// error the server gave, its reply.
func innermost(err error) error {
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(err) {
		err = u
	}
	return err
}

// hasReply reports whether the innermost error err wraps, the server's
// reply for an error the server gave, starts with code.
func hasReply(err error, code string) bool {
	return strings.HasPrefix(innermost(err).Error(), code)
}

// OpenSubscription creates the group on the topic's stream if needed (so
// the group receives every message published from now on, or the whole
// stream with new_group_start: oldest) and returns a consumer of it.
func (t *Transport) OpenSubscription(ctx context.Context, topic, group string) (driver.Subscription, error) {
	if group == "" {
		return nil, errors.New("redis: consumer group is empty; name the group (usually the service name)")
	}
	return t.subscribe(ctx, topic, group, false)
}

// OpenReplySubscription consumes a client's private reply stream, deleted
// when the subscription closes.
func (t *Transport) OpenReplySubscription(ctx context.Context, topic string) (driver.Subscription, error) {
	return t.subscribe(ctx, topic, topic, true)
}

func (t *Transport) subscribe(ctx context.Context, topic, group string, ephemeral bool) (driver.Subscription, error) {
	if t.subs.Closed() {
		return nil, fmt.Errorf("redis: subscribe to %s: transport %w", sdk.QuoteName(topic), driver.ErrClosed)
	}
	if err := t.createGroup(ctx, topic, group); err != nil {
		return nil, err
	}
	s := t.newSubscription(topic, group, ephemeral)
	if err := t.subs.Add(s); err != nil {
		return nil, fmt.Errorf("redis: transport %w", err)
	}
	t.trim.add(topic)
	return s, nil
}

// RemoveGroup destroys the group on the topic's stream (XGROUP DESTROY),
// with its pending entries; the stream and other groups stay.
func (t *Transport) RemoveGroup(ctx context.Context, topic, group string) error {
	if group == "" {
		return errors.New("redis: consumer group is empty; name the group to remove")
	}
	ctx, cancel := context.WithTimeout(ctx, t.s.PublishTimeout)
	defer cancel()
	err := errUntilDone(ctx, func() error { return t.client.XGroupDestroy(ctx, topic, group).Err() })
	if err != nil && strings.Contains(err.Error(), "requires the key to exist") {
		return nil // no stream, so no group
	}
	if err != nil {
		return fmt.Errorf("redis: remove group %s of stream %s: %w", sdk.QuoteName(group), sdk.QuoteName(topic), explainRefusal(err))
	}
	return nil
}

// As reaches the go-redis client the transport acks with
// (*goredis.UniversalClient always; **goredis.Client, or
// **goredis.ClusterClient with Redis Cluster), and the rueidis client it
// publishes with (*rueidis.Client, except with Redis Cluster or
// wait_replicas, where go-redis publishes; a new one replaces it when the
// server it reaches turns out to be a replica).
func (t *Transport) As(target any) bool {
	switch p := target.(type) {
	case *rueidis.Client:
		if t.pipe == nil {
			return false
		}
		*p = t.pipe.client()
		return true
	case **goredis.Client:
		c, ok := t.client.(*goredis.Client)
		*p = c
		return ok
	case **goredis.ClusterClient:
		c, ok := t.client.(*goredis.ClusterClient)
		*p = c
		return ok
	case *goredis.UniversalClient:
		*p = t.client
		return true
	}
	return false
}

// Close closes every subscription (handing back what they held) and the
// connection pool.
func (t *Transport) Close() error {
	first, _ := t.subs.Close()
	if first {
		t.trim.close()
		if t.pipe != nil {
			t.pipe.close()
		}
	}
	if !first || !t.ownsClient {
		return nil
	}
	if err := t.client.Close(); err != nil && !errors.Is(err, goredis.ErrClosed) {
		return fmt.Errorf("redis: close: %w", err)
	}
	return nil
}

var _ driver.Transport = (*Transport)(nil)
