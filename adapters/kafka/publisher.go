package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/sdk"
)

// Publisher sends messages through one sarama AsyncProducer shared by every
// caller. watermill-kafka's publisher is not used: it wraps a SyncProducer
// and sends one message per round trip. Here concurrent Publish calls and
// the messages of one call share producer batches, and each call waits only
// for its own acknowledgements.
type Publisher struct {
	t        *Transport
	producer sarama.AsyncProducer

	mu     sync.RWMutex // held for reading by Publish, for writing by Close
	closed bool
	done   chan struct{} // closed when the result dispatcher ends
}

func newPublisher(t *Transport, client sarama.Client) (*Publisher, error) {
	producer, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("kafka: start the producer on %s: %w", t.s.where(), err)
	}
	p := &Publisher{t: t, producer: producer, done: make(chan struct{})}
	go p.dispatch()
	return p, nil
}

// call is one Publish call's outstanding records. The call is woken once,
// when the last acknowledgement arrives, not once per record: on a busy
// producer a wake-up per record cost more than the rest of the SDK's work.
type call struct {
	remaining atomic.Int64
	done      chan struct{} // closed when remaining reaches 0

	mu   sync.Mutex
	errs []error
}

func (c *call) settle(err error) {
	if err != nil {
		c.mu.Lock()
		c.errs = append(c.errs, err)
		c.mu.Unlock()
	}
	if c.remaining.Add(-1) == 0 {
		close(c.done)
	}
}

// dispatch hands every acknowledgement or error to the Publish call that
// sent the record; the call travels in the record's Metadata.
func (p *Publisher) dispatch() {
	defer close(p.done)
	successes, errs := p.producer.Successes(), p.producer.Errors()
	for successes != nil || errs != nil {
		select {
		case m, ok := <-successes:
			if !ok {
				successes = nil
				continue
			}
			m.Metadata.(*call).settle(nil)
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			e.Msg.Metadata.(*call).settle(e.Err)
		}
	}
}

// Publish sends msgs to topic and returns once the cluster acknowledged all
// of them (acks from all in-sync replicas), or with the first error. After a
// timeout or an error some messages may still have been written: the caller
// retries, and consumers see duplicates, never a loss.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	return p.send(context.Background(), topic, len(msgs), func(i int) *sarama.ProducerMessage { return toRecord(topic, msgs[i]) })
}

func (p *Publisher) send(ctx context.Context, topic string, n int, record func(i int) *sarama.ProducerMessage) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return fmt.Errorf("kafka: publish to %q: %w", topic, sdk.ErrClosed)
	}
	if n == 0 {
		return nil
	}
	if err := p.t.ensureTopic(topic, p.t.s.partitions); err != nil {
		return err
	}
	c := &call{done: make(chan struct{})}
	c.remaining.Store(int64(n))
	for i := 0; i < n; i++ {
		r := record(i)
		r.Metadata = c
		p.producer.Input() <- r
	}
	timer := time.NewTimer(p.t.s.pubTimeout)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
		return fmt.Errorf("kafka: publish %d message(s) to %q on %s: no acknowledgement within %v (publish_timeout); some may have been written",
			n, topic, p.t.s.where(), p.t.s.pubTimeout)
	case <-ctx.Done():
		return fmt.Errorf("kafka: publish %d message(s) to %q on %s: gave up waiting for the acknowledgements; some may have been written: %w",
			n, topic, p.t.s.where(), ctx.Err())
	}
	c.mu.Lock()
	failed := c.errs
	c.mu.Unlock()
	if len(failed) > 0 {
		return fmt.Errorf("kafka: publish to %q on %s: %d of %d message(s) failed: %w", topic, p.t.s.where(), len(failed), n, errors.Join(failed...))
	}
	return nil
}

// Close waits for running Publish calls, then flushes and stops the producer.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	// AsyncClose flushes what is buffered; dispatch ends when the producer
	// has closed both result channels, i.e. after the flush.
	p.producer.AsyncClose()
	<-p.done
	return nil
}

var (
	_ message.Publisher = (*Publisher)(nil)
)
