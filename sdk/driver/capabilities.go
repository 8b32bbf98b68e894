package driver

import "fmt"

// ReplyTopicPrefix starts every client's private reply topic. A transport
// recognises a reply topic by it when sending, and may keep no durable
// broker objects for such topics.
const ReplyTopicPrefix = "_reply."

// Capabilities is a transport's declaration of what it guarantees. A zero
// field means "not supported". The conformance suite skips the tests of a
// capability that is not declared and fails any test whose capability is
// declared but not delivered.
type Capabilities struct {
	// ConsumerGroups: members of one group compete for messages (each
	// message to one member) and distinct groups each receive every
	// message. Without it every subscriber of a topic competes, whatever
	// group it names.
	ConsumerGroups bool
	// Ordering is the order in which one group receives messages.
	Ordering Ordering
	// DurableGroups: messages published while a group has no running
	// subscriber are delivered when one subscribes again.
	DurableGroups bool
	// NewGroupsReceiveHistory: a group created after messages were
	// published still receives them (Kafka, Redis Streams from the start
	// of the stream).
	NewGroupsReceiveHistory bool
	// ChoosesGroupStart: OpenSubscription creates a group that does not
	// exist yet where its context asks (WithGroupStart): at the topic's
	// oldest message or at the latest.
	ChoosesGroupStart bool
	// RemovesGroups: RemoveGroup deletes a consumer group and what the
	// broker keeps for it, so that a temporary group (a CLI's tail) leaves
	// nothing behind.
	RemovesGroups bool
	// Persistent: acknowledged messages survive a broker restart.
	Persistent bool
	// RequestReply: OpenReplySubscription works and reply topics reach it.
	RequestReply bool
	// MaxPayloadBytes is the largest payload carried; 0 means no limit
	// below what the process can hold.
	MaxPayloadBytes int
	// MaxMetadataEntries is the largest number of metadata entries
	// carried, standard attributes included; 0 means no limit.
	MaxMetadataEntries int
	// MaxMetadataBytes is the largest total size of metadata keys and
	// values carried; 0 means no limit.
	MaxMetadataBytes int
}

// Ordering describes what order a consumer group sees messages in.
type Ordering int

const (
	// OrderingNone promises nothing about order.
	OrderingNone Ordering = iota
	// OrderingPerKey delivers messages with the same ordering key in
	// publish order to a group, one at a time, even with competing
	// consumers.
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
