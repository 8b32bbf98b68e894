// Package memory is the in-process broker: the default driver, for
// development, tests and single-process services. It has real consumer
// group semantics (each group gets every message once, members compete),
// redelivers nacked messages in their original order, and keeps per-key
// order across competing consumers. Nothing survives the process.
//
// Import it for its side effect of registering the "memory" driver:
//
//	import _ "github.com/msgkit/msgkit/adapters/memory"
//
// URL forms:
//
//	""  or "memory://"   a private broker for this Client alone
//	"memory://NAME"      a broker shared by every Client in the process that names it
package memory

import (
	"context"
	"net/url"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/sdk"
)

// DriverName is the name the memory driver registers under.
const DriverName = "memory"

func init() { sdk.Register(DriverName, Driver{}) }

// Capabilities is what the memory driver declares; the conformance suite
// holds it to every claim.
var Capabilities = sdk.Capabilities{
	ConsumerGroups: true,
	Ordering:       sdk.OrderingPerKey,
	DurableGroups:  true,
	RequestReply:   true,
}

// Driver opens memory transports.
type Driver struct{}

var (
	sharedMu sync.Mutex
	shared   = map[string]*broker{}
)

// Open returns a transport on a private broker, or on the process-wide
// broker named by a memory://NAME URL. The memory driver has no options.
func (Driver) Open(_ context.Context, cfg sdk.Config) (sdk.Transport, error) {
	if err := cfg.CheckOptions(); err != nil {
		return nil, err
	}
	name, err := brokerName(cfg)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return &Transport{b: newBroker(), owned: true}, nil
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	b, ok := shared[name]
	if !ok {
		b = newBroker()
		shared[name] = b
	}
	return &Transport{b: b}, nil
}

func brokerName(cfg sdk.Config) (string, error) {
	if cfg.URL == "" {
		return "", nil
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "memory" || u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return "", cfg.Invalid("url", nil, "the memory driver takes an empty url, memory:// or memory://NAME (a broker shared in this process), got %q", sdk.RedactURL(cfg.URL))
	}
	return u.Host, nil
}

// New returns a transport on a new private broker, for tests and programs
// that build transports in code rather than from config.
func New() *Transport { return &Transport{b: newBroker(), owned: true} }

// Transport is an open memory transport.
type Transport struct {
	b     *broker
	owned bool // a private broker closes with its transport

	pubOnce sync.Once
	pub     *Publisher
}

// Capabilities returns the memory driver's capabilities.
func (t *Transport) Capabilities() sdk.Capabilities { return Capabilities }

// Publisher returns the transport's publisher.
func (t *Transport) Publisher() message.Publisher {
	t.pubOnce.Do(func() { t.pub = &Publisher{b: t.b} })
	return t.pub
}

// Subscriber returns a new subscriber in the named group.
func (t *Transport) Subscriber(group string) (message.Subscriber, error) {
	if group == "" {
		return nil, errNoGroup
	}
	return &Subscriber{b: t.b, group: group, closing: make(chan struct{})}, nil
}

// Close closes a private broker, which ends every subscription on it. A
// shared broker lives as long as the process.
func (t *Transport) Close() error {
	if t.owned {
		t.b.close()
	}
	return nil
}

var _ sdk.Transport = (*Transport)(nil)
