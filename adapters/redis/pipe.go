package redis

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/msgkit/msgkit/sdk/driver"
)

// Publishes go through a pipe: one connection, written and read at once,
// on which the XADDs of concurrent publishes leave together in one write
// and their replies come back in one read (rueidis's auto-pipelining). A
// go-redis pool gives each concurrent publish a connection of its own and
// waits for a pipeline's replies before it writes on that connection
// again, so eight publishers cost eight round trips where the pipe costs
// about one.
//
// The pipe is made from the go-redis client's options: it dials with the
// client's dialer (so TLS, and the current primary behind sentinels, are
// the client's) and logs in with its credentials and database. Redis
// Cluster and wait_replicas publish through go-redis instead: a cluster
// spreads streams over nodes, and WAIT counts the replicas of the writes
// of its own connection, which the pipe shares between publishers.

// pipeOptions are rueidis's options for a pipe to the server of o, an
// initialized go-redis client's options, or false when o uses what the
// pipe cannot do the same way (a streaming credentials provider).
func pipeOptions(o *goredis.Options) (rueidis.ClientOption, bool) {
	if o.StreamingCredentialsProvider != nil || o.Dialer == nil {
		return rueidis.ClientOption{}, false
	}
	ro := rueidis.ClientOption{
		InitAddress:       []string{o.Addr},
		Username:          o.Username,
		Password:          o.Password,
		SelectDB:          o.DB,
		ClientName:        o.ClientName,
		ForceSingleClient: true, // never probe for a cluster
		PipelineMultiplex: -1,   // one connection
		DisableCache:      true, // no CLIENT TRACKING: the pipe only writes
		DisableRetry:      true, // the engine retries, knowing what may repeat
		AlwaysRESP2:       o.Protocol == 2,
		ClientSetInfo:     rueidis.DisableClientSetInfo, // one command fewer for the user's ACL to allow
		DialCtxFn: func(ctx context.Context, _ string, _ *net.Dialer, _ *tls.Config) (net.Conn, error) {
			return o.Dialer(ctx, o.Network, o.Addr)
		},
	}
	switch {
	case o.CredentialsProviderContext != nil:
		ro.AuthCredentialsFn = func(rueidis.AuthCredentialsContext) (rueidis.AuthCredentials, error) {
			user, pass, err := o.CredentialsProviderContext(context.Background())
			return rueidis.AuthCredentials{Username: user, Password: pass}, err
		}
	case o.CredentialsProvider != nil:
		ro.AuthCredentialsFn = func(rueidis.AuthCredentialsContext) (rueidis.AuthCredentials, error) {
			user, pass := o.CredentialsProvider()
			return rueidis.AuthCredentials{Username: user, Password: pass}, nil
		}
	}
	return ro, true
}

// pipe is the publishing connection: a rueidis client, replaced by a new
// one after the server says it is a replica (READONLY), as go-redis drops
// such a connection: where an address (a DNS name, the sentinels' answer)
// moves to a new primary, the old connection still reaches the demoted
// one, and only a new dial finds the new primary.
type pipe struct {
	opts    rueidis.ClientOption
	current atomic.Pointer[rueidis.Client]

	mu       sync.Mutex
	closed   bool
	renewing bool
	renewals sync.WaitGroup
}

// openPipe connects a pipe by ctx's deadline, or returns nil where
// publishes go through client (Redis Cluster, wait_replicas, options the
// pipe cannot follow).
func openPipe(ctx context.Context, s settings, client goredis.UniversalClient) (*pipe, error) {
	c, ok := client.(*goredis.Client)
	if !ok || s.WaitReplicas > 0 {
		return nil, nil
	}
	ro, ok := pipeOptions(c.Options())
	if !ok {
		return nil, nil
	}
	type opened struct {
		c   rueidis.Client
		err error
	}
	done := make(chan opened, 1)
	go func() {
		p, err := rueidis.NewClient(ro)
		done <- opened{p, err}
	}()
	select {
	case o := <-done:
		if o.err != nil {
			return nil, o.err
		}
		p := &pipe{opts: ro}
		p.current.Store(&o.c)
		return p, nil
	case <-ctx.Done():
		go func() { // the dial is bounded by the client's dial timeout
			if o := <-done; o.err == nil {
				o.c.Close()
			}
		}()
		return nil, fmt.Errorf("no answer from the server: %w", ctx.Err())
	}
}

// client is the connection to publish on now.
func (p *pipe) client() rueidis.Client { return *p.current.Load() }

// failed looks at the error a call on c returned: after READONLY it dials
// a new connection in the background, which later calls use; the engine
// sends the failed entries again.
func (p *pipe) failed(c rueidis.Client, err error) {
	if !hasReply(err, "READONLY") {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.renewing || p.client() != c {
		return
	}
	p.renewing = true
	p.renewals.Add(1)
	go func() {
		defer p.renewals.Done()
		n, err := rueidis.NewClient(p.opts)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.renewing = false
		if err != nil {
			return // the next READONLY tries again
		}
		if p.closed {
			n.Close()
			return
		}
		p.current.Store(&n)
		c.Close()
	}()
}

// close closes the connection, after any renewal in progress.
func (p *pipe) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.renewals.Wait()
	p.client().Close()
}

// xadd is the XADD of m to topic, trimmed as configured, with m's fields
// as fields writes them.
func (t *Transport) xadd(c rueidis.Client, topic string, m *driver.Message, fields *entryFields) (rueidis.Completed, error) {
	values, err := fields.of(m)
	if err != nil {
		return rueidis.Completed{}, err
	}
	key := c.B().Xadd().Key(topic)
	switch {
	case t.s.MaxLen > 0:
		return withFields(key.Maxlen().Almost().Threshold(strconv.FormatInt(t.s.MaxLen, 10)).Id("*").FieldValue(), values), nil
	case t.s.Retention > 0:
		return withFields(key.Minid().Almost().Threshold(t.minID()).Id("*").FieldValue(), values), nil
	}
	return withFields(key.Id("*").FieldValue(), values), nil
}

// withFields adds the field and value pairs of values to an XADD and
// builds it. (A type parameter, for rueidis's builder type has no
// exported name.)
func withFields[B interface {
	FieldValue(field, value string) B
	Build() rueidis.Completed
}](b B, values []string) rueidis.Completed {
	for i := 0; i < len(values); i += 2 {
		b = b.FieldValue(values[i], values[i+1])
	}
	return b.Build()
}

// addPiped sends msgs through the pipe and reports how many leading
// entries were added.
func (t *Transport) addPiped(ctx context.Context, topic string, msgs []*driver.Message) (int, error) {
	c := t.pipe.client()
	added, err := t.addOn(ctx, c, topic, msgs)
	if err != nil {
		t.pipe.failed(c, err)
	}
	return added, err
}

// addOn sends msgs on c, one XADD with Do or many with DoMulti.
func (t *Transport) addOn(ctx context.Context, c rueidis.Client, topic string, msgs []*driver.Message) (int, error) {
	fields := t.entries()
	if len(msgs) == 1 {
		cmd, err := t.xadd(c, topic, msgs[0], &fields)
		if err != nil {
			return 0, err
		}
		if err := c.Do(ctx, cmd).Error(); err != nil {
			return 0, err
		}
		return 1, nil
	}
	cmds := make(rueidis.Commands, len(msgs))
	for i, m := range msgs {
		var err error
		if cmds[i], err = t.xadd(c, topic, m, &fields); err != nil {
			return 0, err
		}
	}
	for i, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}
