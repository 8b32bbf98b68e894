// Package bridge runs an adapter written on Watermill's Publisher and
// Subscriber on the driver contract, through sdk.WatermillTransport, and
// closes the adapter's own transport with it.
package bridge

import (
	"reflect"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// Watermill is an adapter transport built on Watermill's contract.
type Watermill interface {
	Capabilities() sdk.Capabilities
	Publisher() message.Publisher
	Subscriber(group string) (message.Subscriber, error)
	Close() error
}

// Replier is a Watermill transport with subscribers of its own for reply
// topics.
type Replier interface {
	ReplySubscriber(topic string) (message.Subscriber, error)
}

// Transport returns w as a driver transport; As reaches w itself.
func Transport(w Watermill) driver.Transport {
	newSub := w.Subscriber
	if r, ok := w.(Replier); ok {
		newSub = func(group string) (message.Subscriber, error) {
			if strings.HasPrefix(group, sdk.ReplyTopicPrefix) {
				return r.ReplySubscriber(group)
			}
			return w.Subscriber(group)
		}
	}
	return &transport{Transport: sdk.WatermillTransport(w.Publisher(), newSub, w.Capabilities()), w: w}
}

type transport struct {
	driver.Transport
	w Watermill
}

func (t *transport) As(target any) bool {
	p := reflect.ValueOf(target)
	if p.Kind() == reflect.Pointer && !p.IsNil() && reflect.TypeOf(t.w).AssignableTo(p.Elem().Type()) {
		p.Elem().Set(reflect.ValueOf(t.w))
		return true
	}
	return false
}

func (t *transport) Close() error { return t.w.Close() }
