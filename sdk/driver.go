package sdk

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/msgkit/msgkit/sdk/driver"
)

// Driver builds transports for one kind of broker. An adapter package
// implements it and calls Register from its init function, the way
// database/sql drivers do, so a blank import is all a service needs.
type Driver interface {
	// Open connects to the broker described by cfg and returns by ctx's
	// deadline. It must validate cfg (unknown options, malformed URL) and
	// return a *ConfigError for bad input, before any network call where
	// possible.
	Open(ctx context.Context, cfg Config) (driver.Transport, error)
}

// Capabilities is a transport's declaration of what it guarantees; see
// driver.Capabilities.
type Capabilities = driver.Capabilities

// Ordering describes what order a consumer group sees messages in.
type Ordering = driver.Ordering

const (
	// OrderingNone promises nothing about order.
	OrderingNone = driver.OrderingNone
	// OrderingPerKey delivers messages with the same ordering key
	// (KeyOrderingKey) in publish order to a group, one at a time, even
	// with competing consumers.
	OrderingPerKey = driver.OrderingPerKey
)

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
	"nats":     "github.com/msgkit/msgkit/adapters/nats",
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

// ConfigChecker is implemented by a Driver that can validate a config
// without connecting: the checks Open makes before its first network call
// (unknown options, malformed values and URLs), with the same errors.
type ConfigChecker interface {
	CheckConfig(cfg Config) error
}

// CheckConfig validates cfg as Open would, without connecting: the driver
// name, the middleware section when package middleware is linked in, and
// the driver's own options and URL when the driver is a ConfigChecker
// (every adapter in this module is). Errors are *ConfigError where the
// value at fault is known, naming key and source (file:line or
// environment variable). It reports whether the driver could check its
// options (false for a driver that is not a ConfigChecker).
func CheckConfig(cfg Config) (checkedOptions bool, err error) {
	d, err := configuredDriver(cfg)
	if err != nil {
		return false, err
	}
	if _, err := cfg.checkSections(); err != nil {
		return false, err
	}
	if err := cfg.checkNackBackoff(); err != nil {
		return false, err
	}
	cc, ok := d.(ConfigChecker)
	if !ok {
		return false, nil
	}
	return true, cc.CheckConfig(cfg)
}

// OpenTransport opens the transport cfg selects, as Open does, without a
// Client around it: for tools that drive the contract directly, such as
// the conformance suite run against a configured broker.
func OpenTransport(ctx context.Context, cfg Config) (driver.Transport, error) {
	d, err := configuredDriver(cfg)
	if err != nil {
		return nil, err
	}
	t, err := d.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("messaging: open driver %q: %w", cfg.DriverName(), err)
	}
	return t, nil
}

// configuredDriver returns the driver cfg names; an unknown name is a
// ConfigError that says where it was set.
func configuredDriver(cfg Config) (Driver, error) {
	d, err := lookupDriver(cfg.DriverName())
	if ce, ok := err.(*ConfigError); ok {
		ce.Source = cfg.Source("driver")
	}
	return d, err
}
