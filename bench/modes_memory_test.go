package bench

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/msgkit/msgkit/sdk"
)

func init() { modeBrokers["memory"] = memoryModes }

// memoryModes: msgkit on the in-process broker, and Watermill's gochannel
// (persistent, so that a backlog waits for its subscriber) beside it. The
// table gives absolute costs: nanoseconds of wall time per message on this
// machine, and allocations.
func memoryModes(b *testing.B) *broker {
	tr := unboundedMemory(b)
	c := sdk.NewClient(tr, sdk.WithLogger(quiet))
	b.Cleanup(func() { _ = c.Close(b.Context()) })
	gc := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NopLogger{})
	closeLater(b, gc)
	return &broker{
		name:     "in-process",
		absolute: true,
		newTopic: func(*testing.B) string { return uniqueTopic("memory-modes") },
		systems: []*system{
			msgkitSystem("msgkit memory", c),
			watermillSystem("watermill gochannel", gc, func(_, _ string) (message.Subscriber, error) { return sharedSubscriber{gc}, nil }, 1),
		},
	}
}

// sharedSubscriber is a subscriber whose Close leaves it open: gochannel is
// one pub/sub for every run, and a subscription ends with its context.
type sharedSubscriber struct{ message.Subscriber }

func (sharedSubscriber) Close() error { return nil }
