package conformance

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// The hygiene tests hold a driver to what a user sees when something is
// wrong: bad config, a broker that is not there, one that accepts the
// connection and never answers. They need Harness.ConfigAt.

// deadlineSlack is how long after its context's deadline a call may return.
const deadlineSlack = 2 * time.Second

// openAt opens a transport from the harness's config for addr.
func (e *env) openAt(ctx context.Context, addr string) (driver.Transport, error) {
	return e.h.OpenConfig(ctx, e.h.ConfigAt(addr))
}

// secretOf returns the password the harness put in its config, to check it
// never reaches an error.
func (e *env) secretOf() string { return e.h.Secret }

func (e *env) checkNoSecret(what string, err error) {
	e.t.Helper()
	if s := e.secretOf(); s != "" && err != nil && strings.Contains(err.Error(), s) {
		e.t.Fatalf("guarantee broken: an error must never contain the password: %s: %v", what, err)
	}
}

func testUnknownOptionIsAConfigError(e *env) {
	cfg := e.h.ConfigAt("127.0.0.1:1")
	opts := map[string]string{"no_such_option_zz": "1"}
	for k, v := range cfg.Options {
		opts[k] = v
	}
	cfg.Options = opts
	ctx, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	tr, err := e.h.OpenConfig(ctx, cfg)
	if err == nil {
		_ = tr.Close()
	}
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "options.no_such_option_zz" {
		e.t.Fatalf("guarantee broken: an unknown option must fail Open with a *sdk.ConfigError naming options.no_such_option_zz, got %v", err)
	}
	e.checkNoSecret("Open with an unknown option", err)
}

// closedAddr returns a loopback address where nothing listens.
func (e *env) closedAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatalf("setup: listen: %v", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// silentAddr returns a loopback address that accepts connections and never
// answers; they are closed when the test ends.
func (e *env) silentAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatalf("setup: listen: %v", err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range conns {
					_ = c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	e.t.Cleanup(func() { _ = l.Close(); <-done })
	return l.Addr().String()
}

// unusable checks that a broker at addr that cannot be used fails the
// first call that needs it (Open, or Publish and Subscribe for a driver that
// connects lazily) by the context's deadline, without the password.
func (e *env) unusable(addr, what string) {
	const wait = 2 * time.Second
	bounded := func(call string, f func(ctx context.Context) error) error {
		e.t.Helper()
		ctx, cancel := context.WithTimeout(e.ctx, wait)
		defer cancel()
		start := time.Now()
		err := e.within(call, func() error { return f(ctx) })
		if took := time.Since(start); took > wait+deadlineSlack {
			e.t.Fatalf("guarantee broken: %s against %s must return by its context's deadline (%v): it took %v", call, what, wait, took)
		}
		e.checkNoSecret(call+" against "+what, err)
		return err
	}
	var tr driver.Transport
	err := bounded("Open", func(ctx context.Context) (err error) { tr, err = e.openAt(ctx, addr); return err })
	if err != nil {
		return // refused at Open, as it should be for a driver that connects there
	}
	defer tr.Close()
	err = bounded("Publish", func(ctx context.Context) error {
		m := message.NewMessage(uuid.NewString(), []byte("x"))
		m.SetContext(ctx)
		pub := sdk.NewWatermillPublisher(tr)
		defer pub.Close()
		return pub.Publish(e.topic, m)
	})
	if err == nil {
		e.t.Fatalf("guarantee broken: Publish against %s must fail, it returned nil", what)
	}
	err = bounded("Subscribe", func(ctx context.Context) error {
		s, err := tr.OpenSubscription(ctx, e.topic, uniqueName("g"))
		if err == nil {
			return errors.Join(errors.New("OpenSubscription returned no error"), s.Close())
		}
		return err
	})
	if err == nil {
		e.t.Fatalf("guarantee broken: Subscribe against %s must fail", what)
	}
}

func testUnreachableBrokerFailsByTheDeadline(e *env) {
	e.unusable(e.closedAddr(), "an address where nothing listens")
}

func testSilentBrokerFailsByTheDeadline(e *env) {
	e.unusable(e.silentAddr(), "a server that accepts the connection and never answers")
}
