package sdk

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Driver builds transports for one kind of broker. An adapter package
// implements it and calls Register from its init function, the way
// database/sql drivers do, so a blank import is all a service needs.
type Driver interface {
	// Open connects to the broker described by cfg. It must validate cfg
	// (unknown options, malformed URL) and return a *ConfigError for bad input,
	// before any network call where possible.
	Open(ctx context.Context, cfg Config) (Transport, error)
}

// Transport is an open connection to a broker: the Watermill publisher and
// subscribers that carry messages, and the capabilities they guarantee.
//
// Watermill's message.Publisher and message.Subscriber are the driver
// contract, so any Watermill pub/sub can be wrapped as a Transport.
type Transport interface {
	// Capabilities declares what this transport guarantees. The conformance
	// suite checks every claim; the Client refuses work the transport
	// declares it cannot do (for example a payload above MaxPayloadBytes).
	Capabilities() Capabilities
	// Publisher returns the transport's publisher. It is safe for concurrent
	// use and is closed by Close.
	Publisher() message.Publisher
	// Subscriber returns a subscriber that consumes as a member of the named
	// consumer group: every group receives each message, and the members of
	// one group compete for them. Each call may return a new subscriber; the
	// caller closes it.
	Subscriber(group string) (message.Subscriber, error)
	// Close releases the connection. Publishers and subscribers obtained
	// from the transport must not be used afterwards.
	Close() error
}

// HandlerSubscriber is an optional fast path for a subscriber returned by
// Transport.Subscriber: Client.Subscribe uses it, when present, instead of
// the Watermill channel. The driver then calls handle on its own goroutines
// (a Kafka partition's, say), so a message is not handed from the driver's
// goroutine to the handler's and its ack handed back, and no Watermill
// message is built only to be taken apart: on a fast broker those cost more
// than the rest of the SDK's work. The Watermill Subscribe stays the
// contract every driver implements and the conformance suite checks.
type HandlerSubscriber interface {
	// SubscribeHandler consumes topic and calls handle for each message,
	// at most concurrency calls at once, keeping the order the transport
	// declares. handle returns true to ack the message and false to nack
	// it; the driver treats that as it treats an ack or nack on the channel
	// path. Consumption has started when SubscribeHandler returns, and stops
	// when ctx is cancelled or the subscriber is closed.
	SubscribeHandler(ctx context.Context, topic string, concurrency int, handle func(Delivery) bool) error
}

// Delivery is a received message on the HandlerSubscriber path. The
// handler may keep and modify Metadata; a redelivery must get a copy.
type Delivery struct {
	ID       string
	Payload  []byte
	Metadata map[string]string
}

// Capabilities is a driver's declaration of what it guarantees. A zero field
// means "not supported"; the conformance suite skips tests for a capability
// that is not declared and fails any test whose capability is declared but
// not delivered.
type Capabilities struct {
	// ConsumerGroups: members of one group compete for messages (each message
	// to one member) and distinct groups each receive every message.
	ConsumerGroups bool
	// Ordering is the order in which one group receives messages.
	Ordering Ordering
	// DurableGroups: messages published while a group has no running
	// subscriber are delivered when one subscribes again.
	DurableGroups bool
	// NewGroupsReceiveHistory: a group created after messages were published
	// still receives them (Kafka, Redis Streams from the start of the stream).
	NewGroupsReceiveHistory bool
	// Persistent: messages survive a broker restart.
	Persistent bool
	// RequestReply: the transport can provide a private reply address per
	// client for request/reply.
	RequestReply bool
	// MaxPayloadBytes is the largest payload accepted; 0 means no limit below
	// what the process can hold.
	MaxPayloadBytes int
	// MaxMetadataEntries is the largest number of metadata entries carried;
	// 0 means no limit.
	MaxMetadataEntries int
}

// Ordering describes what order a consumer group sees messages in.
type Ordering int

const (
	// OrderingNone promises nothing about order.
	OrderingNone Ordering = iota
	// OrderingPerKey delivers messages with the same ordering key (KeyOrderingKey)
	// in publish order to a group, one at a time, even with competing consumers.
	OrderingPerKey
)

func (o Ordering) String() string {
	switch o {
	case OrderingNone:
		return "none"
	case OrderingPerKey:
		return "per-key"
	default:
		return fmt.Sprintf("Ordering(%d)", int(o))
	}
}

var (
	driversMu sync.RWMutex
	drivers   = map[string]Driver{}
)

// Register makes a driver available under name for Open. It panics if name
// is empty, the driver is nil, or the name is taken: all programmer errors
// found at init time.
func Register(name string, d Driver) {
	if name == "" {
		panic("sdk: Register called with an empty driver name")
	}
	if d == nil {
		panic(fmt.Sprintf("sdk: Register(%q) called with a nil driver", name))
	}
	driversMu.Lock()
	defer driversMu.Unlock()
	if _, dup := drivers[name]; dup {
		panic(fmt.Sprintf("sdk: Register called twice for driver %q", name))
	}
	drivers[name] = d
}

// Drivers returns the names of the registered drivers, sorted.
func Drivers() []string {
	driversMu.RLock()
	defer driversMu.RUnlock()
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// adapterPackages names the import path of each adapter this module ships,
// so an unknown-driver error can say which import is missing.
var adapterPackages = map[string]string{
	"memory":   "github.com/msgkit/msgkit/adapters/memory",
	"rabbitmq": "github.com/msgkit/msgkit/adapters/rabbitmq",
	"redis":    "github.com/msgkit/msgkit/adapters/redis",
	"kafka":    "github.com/msgkit/msgkit/adapters/kafka",
	"sqs":      "github.com/msgkit/msgkit/adapters/sqs",
	"sns":      "github.com/msgkit/msgkit/adapters/sns",
}

func lookupDriver(name string) (Driver, error) {
	driversMu.RLock()
	d, ok := drivers[name]
	driversMu.RUnlock()
	if ok {
		return d, nil
	}
	registered := Drivers()
	list := "none"
	if len(registered) > 0 {
		list = strings.Join(registered, ", ")
	}
	reason := fmt.Sprintf("unknown driver %q; registered drivers: %s", name, list)
	if pkg, known := adapterPackages[name]; known {
		reason += fmt.Sprintf(`; add the import _ %q (or _ "github.com/msgkit/msgkit/adapters/all")`, pkg)
	}
	return nil, &ConfigError{Key: "driver", Reason: reason}
}
