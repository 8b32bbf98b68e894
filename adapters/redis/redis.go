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
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/msgkit/adapters/internal/bridge"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// DriverName is the name the driver registers under.
const DriverName = "redis"

func init() { sdk.Register(DriverName, Driver{}) }

// Driver opens Redis Streams transports.
type Driver struct{}

// Open validates cfg, connects and checks the server answers.
func (Driver) Open(ctx context.Context, cfg sdk.Config) (driver.Transport, error) {
	t, err := Driver{}.openWatermill(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return bridge.Transport(t), nil
}

func (Driver) openWatermill(ctx context.Context, cfg sdk.Config) (*Transport, error) {
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	client := goredis.NewClient(s.opts)
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redis: connect to %s: %s", s.where(), explain(err))
	}
	t := &Transport{s: s, client: client, logger: slog.Default().With("driver", DriverName), subs: map[*Subscriber]struct{}{}}
	t.persistent = serverPersists(ctx, client)
	t.pub = &Publisher{t: t}
	return t, nil
}

func explain(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "invalid password"), strings.Contains(msg, "invalid username-password"):
		return msg + " (the user name or password in the URL was refused; check the credentials)"
	case strings.Contains(msg, "NOAUTH"):
		return msg + " (the server requires a password; put it in the URL: redis://:PASSWORD@host:port/0)"
	case strings.Contains(msg, "without any password configured"):
		return msg + " (the server has no password; remove it from the URL)"
	case strings.Contains(msg, "connection refused"):
		return msg + " (nothing listens there; is Redis running, and is the port right?)"
	}
	return msg
}

// serverPersists reports whether the server writes an append-only file, the
// only setting under which acknowledged stream entries survive a restart
// without loss. A server that hides CONFIG (managed Redis) counts as not
// persistent: the capability is declared only when it can be seen to hold.
func serverPersists(ctx context.Context, c *goredis.Client) bool {
	v, err := c.ConfigGet(ctx, "appendonly").Result()
	return err == nil && v["appendonly"] == "yes"
}

// Transport is an open Redis Streams transport.
type Transport struct {
	s          settings
	client     *goredis.Client // publishing, acks, claims, group setup
	logger     *slog.Logger
	persistent bool
	pub        *Publisher

	mu   sync.Mutex
	subs map[*Subscriber]struct{}
}

// Capabilities declares what Redis Streams guarantee under this
// configuration and server.
func (t *Transport) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{
		ConsumerGroups:          true,
		Ordering:                sdk.OrderingNone, // competing consumers, claims and nacks reorder
		DurableGroups:           true,
		NewGroupsReceiveHistory: t.s.startOldest,
		Persistent:              t.persistent,
		RequestReply:            true, // reply streams are deleted when their consumer closes
		MaxPayloadBytes:         t.s.maxPayload,
	}
}

// Publisher returns the pipelining publisher.
func (t *Transport) Publisher() message.Publisher { return t.pub }

// Subscriber returns a subscriber in the named group.
func (t *Transport) Subscriber(group string) (message.Subscriber, error) {
	if group == "" {
		return nil, errors.New("redis: consumer group is empty; name the group (usually the service name)")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs == nil {
		return nil, fmt.Errorf("redis: transport %w", sdk.ErrClosed)
	}
	s := &Subscriber{t: t, group: group, closing: make(chan struct{})}
	t.subs[s] = struct{}{}
	return s, nil
}

// ReplySubscriber returns a subscriber for a client's private reply topic:
// its stream is deleted when the subscriber closes.
func (t *Transport) ReplySubscriber(topic string) (message.Subscriber, error) {
	s, err := t.Subscriber(topic)
	if err != nil {
		return nil, err
	}
	s.(*Subscriber).ephemeral = true
	return s, nil
}

func (t *Transport) forget(s *Subscriber) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs != nil {
		delete(t.subs, s)
	}
}

// Close closes every subscriber (handing back their unacked messages), the
// publisher and the connection pool.
func (t *Transport) Close() error {
	t.mu.Lock()
	subs := t.subs
	t.subs = nil
	t.mu.Unlock()
	for s := range subs {
		_ = s.Close()
	}
	_ = t.pub.Close()
	if err := t.client.Close(); err != nil && !errors.Is(err, goredis.ErrClosed) {
		return fmt.Errorf("redis: close: %w", err)
	}
	return nil
}

// Publisher appends messages to streams, pipelining a batch into one round
// trip.
type Publisher struct {
	t      *Transport
	mu     sync.RWMutex
	closed bool
}

// Publish XADDs msgs to the topic's stream in one pipeline, trimming by
// max_len or retention when configured.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return fmt.Errorf("redis: publish to %q: publisher %w", topic, sdk.ErrClosed)
	}
	if len(msgs) == 0 {
		return nil
	}
	ctx := msgs[0].Context()
	args := make([]goredis.XAddArgs, len(msgs))
	for i, m := range msgs {
		args[i] = goredis.XAddArgs{Stream: topic, Values: encode(m), Approx: true}
		if p.t.s.maxLen > 0 {
			args[i].MaxLen = p.t.s.maxLen
		} else if p.t.s.retention > 0 {
			args[i].MinID = fmt.Sprint(timeNow().Add(-p.t.s.retention).UnixMilli())
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.t.s.pubTimeout)
		defer cancel()
	}
	// While the server is unreachable (a restart), keep trying until the
	// message context or publish_timeout ends. An XADD whose reply was lost
	// may then be applied twice: at least once, never zero times.
	delay := 50 * time.Millisecond
	for {
		added, err := p.add(ctx, args)
		args = args[added:]
		if err == nil {
			return nil
		}
		if !transient(err) || ctx.Err() != nil {
			return fmt.Errorf("redis: publish to %q on %s: %d of %d message(s) not added: %w", topic, p.t.s.where(), len(args), len(msgs), err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// add sends args in one pipeline and reports how many leading entries were
// added.
func (p *Publisher) add(ctx context.Context, args []goredis.XAddArgs) (int, error) {
	if len(args) == 1 {
		if err := p.t.client.XAdd(ctx, &args[0]).Err(); err != nil {
			return 0, err
		}
		return 1, nil
	}
	cmds, err := p.t.client.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
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

// transient reports whether err is the connection failing (the server
// restarting or out of reach) rather than the server refusing the command.
func transient(err error) bool {
	var ne net.Error
	msg := err.Error()
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		strings.HasPrefix(msg, "LOADING") || strings.Contains(msg, "connection refused") || strings.Contains(msg, "broken pipe")
}

// Close makes further Publish calls fail.
func (p *Publisher) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return nil
}
