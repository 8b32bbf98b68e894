package sdk

import (
	"fmt"
	"slices"
	"strings"
)

// Requirement is a capability a service cannot do without. Stated with
// Require or the config's require: key, a missing one fails Open, naming
// it and the drivers that have it, instead of being found out by losing
// messages or their order.
type Requirement string

// The requirements, one per capability.
const (
	RequireConsumerGroups          Requirement = "consumer_groups"
	RequireOrderingPerKey          Requirement = "ordering_per_key"
	RequireDurableGroups           Requirement = "durable_groups"
	RequireNewGroupsReceiveHistory Requirement = "new_groups_receive_history"
	RequirePersistent              Requirement = "persistent"
	RequireRequestReply            Requirement = "request_reply"
)

// requirements says what each requirement means and which of this
// module's drivers meet it (some only as configured).
var requirements = map[Requirement]struct {
	meaning string
	met     func(Capabilities) bool
	drivers string
}{
	RequireConsumerGroups: {"every group gets every message, members of a group share them",
		func(c Capabilities) bool { return c.ConsumerGroups }, "memory, rabbitmq, redis, kafka, nats, sns"},
	RequireOrderingPerKey: {"messages with one ordering key are handled one at a time, in publish order",
		func(c Capabilities) bool { return c.Ordering == OrderingPerKey }, "memory, kafka, sqs with fifo: true"},
	RequireDurableGroups: {"a group keeps what is published while none of its members runs",
		func(c Capabilities) bool { return c.DurableGroups }, "memory, rabbitmq, redis, kafka, nats, sqs, sns"},
	RequireNewGroupsReceiveHistory: {"a group created later still receives what was published before",
		func(c Capabilities) bool { return c.NewGroupsReceiveHistory }, "redis, kafka and nats (with new groups starting at the oldest message), sqs"},
	RequirePersistent: {"acknowledged messages survive a broker restart",
		func(c Capabilities) bool { return c.Persistent }, "rabbitmq (persistent, with publisher confirms), redis (with appendonly yes), kafka, nats (file storage), sqs, sns"},
	RequireRequestReply: {"Request and Respond work",
		func(c Capabilities) bool { return c.RequestReply }, "every driver of this module"},
}

// ParseRequirements reads requirement names ("consumer_groups,
// ordering_per_key"), as the config's require: key holds them.
func ParseRequirements(names string) ([]Requirement, error) {
	var out []Requirement
	for _, n := range strings.FieldsFunc(names, func(r rune) bool { return r == ',' || r == ' ' }) {
		r := Requirement(n)
		if _, ok := requirements[r]; !ok {
			known := make([]string, 0, len(requirements))
			for k := range requirements {
				known = append(known, string(k))
			}
			slices.Sort(known)
			return nil, fmt.Errorf("unknown requirement %q; the requirements are %s", n, strings.Join(known, ", "))
		}
		out = append(out, r)
	}
	return out, nil
}

// Require makes Open and OpenFile fail unless the driver provides every
// one of rs (see Requirement); the config's require: key adds to them.
func Require(rs ...Requirement) Option {
	return func(c *Client) { c.require = append(c.require, rs...) }
}

// checkRequirements returns an error naming each requirement caps misses.
func checkRequirements(driverName string, caps Capabilities, rs []Requirement) error {
	var missing []string
	for _, r := range rs {
		req, ok := requirements[r]
		if !ok {
			return fmt.Errorf("messaging: unknown requirement %q", r)
		}
		if !req.met(caps) {
			missing = append(missing, fmt.Sprintf("%s (%s; drivers that provide it: %s)", r, req.meaning, req.drivers))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("messaging: driver %q, as configured, does not provide what this service requires: %s", driverName, strings.Join(missing, "; "))
}
