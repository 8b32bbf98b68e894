package testenv

import (
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// Transport is a driver transport with the Watermill publisher and
// subscribers sdk builds on it, for adapter tests written against
// Watermill's API.
type Transport struct {
	driver.Transport
	pub message.Publisher
}

// Watermill wraps the result of a driver's Open.
func Watermill(tr driver.Transport, err error) (*Transport, error) {
	if err != nil {
		return nil, err
	}
	return &Transport{Transport: tr, pub: sdk.NewWatermillPublisher(tr)}, nil
}

// Publisher returns the transport's Watermill publisher.
func (t *Transport) Publisher() message.Publisher { return t.pub }

// Subscriber returns a Watermill subscriber in group.
func (t *Transport) Subscriber(group string) (message.Subscriber, error) {
	return sdk.NewWatermillSubscriber(t.Transport, group, nil), nil
}
