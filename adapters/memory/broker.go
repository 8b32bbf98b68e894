package memory

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// envelope is one message waiting in, or in flight from, one group's queue.
type envelope struct {
	seq      uint64 // publish order within the topic; restores order on requeue
	id       string
	payload  []byte
	metadata map[string]string
	key      string // ordering key; "" means unordered
}

// broker holds topics, each with its consumer groups. Watermill's gochannel
// pub/sub is not used: it has no consumer groups (every subscriber receives
// every message) and no per-key ordering, which the conformance suite holds
// every driver that declares them to.
type broker struct {
	mu     sync.Mutex
	topics map[string]*topic
	closed bool
	done   chan struct{} // closed with the broker; unblocks every consumer and waiting publisher
	limits Options
}

type topic struct {
	seq    uint64
	groups map[string]*group
}

func newBroker(o Options) *broker {
	return &broker{topics: map[string]*topic{}, done: make(chan struct{}), limits: o}
}

func (b *broker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
}

// publish appends msgs to every group of the topic. A topic with no group yet
// keeps nothing, as with a RabbitMQ exchange that has no queue bound: the
// capability NewGroupsReceiveHistory is false. While a group of the topic
// holds its limit of waiting messages or bytes, publish waits for its
// consumers to take some, until ctx ends.
func (b *broker) publish(ctx context.Context, topicName string, envs []envelope) error {
	size := 0
	for _, e := range envs {
		size += len(e.payload)
	}
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return errBrokerClosed
		}
		t := b.topicLocked(topicName)
		var full string
		var room <-chan struct{}
		for name, g := range t.groups {
			if room = g.roomLocked(); room != nil {
				full = name
				break
			}
		}
		if room == nil {
			for i := range envs {
				t.seq++
				envs[i].seq = t.seq
			}
			for _, g := range t.groups {
				g.enqueue(envs, size)
			}
			b.mu.Unlock()
			return nil
		}
		b.mu.Unlock()
		select {
		case <-room:
		case <-b.done:
			return errBrokerClosed
		case <-ctx.Done():
			return &fullError{group: full, limits: b.limits, err: ctx.Err()}
		}
	}
}

var errBrokerClosed = errors.New("broker closed")

// fullError says a publish gave up waiting for room in a group.
type fullError struct {
	group  string
	limits Options
	err    error
}

func (e *fullError) Error() string {
	return fmt.Sprintf("group %q holds its limit of waiting messages (max_queued %d, max_queued_bytes %d) and its consumers took none before the publish's deadline: "+
		"they are slower than the publishers, or stopped; raise the limits or add consumers: %v", e.group, e.limits.MaxQueued, e.limits.MaxQueuedBytes, e.err)
}

func (e *fullError) Unwrap() error { return e.err }

// group returns the named group of a topic, creating it (empty) on first use.
func (b *broker) group(topicName, groupName string) (*group, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, false
	}
	t := b.topicLocked(topicName)
	g, ok := t.groups[groupName]
	if !ok {
		g = &group{inFlight: map[string]bool{}, changed: make(chan struct{}), limits: b.limits}
		t.groups[groupName] = g
	}
	return g, true
}

// removeGroup forgets a topic's group: what it held is dropped and nothing
// more is kept for it. Members still attached drain what they took.
func (b *broker) removeGroup(topicName, groupName string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.topics[topicName]; ok {
		if g, ok := t.groups[groupName]; ok {
			g.release()
			delete(t.groups, groupName)
		}
	}
}

// removeTopic forgets a topic and its groups (a client's reply topic).
func (b *broker) removeTopic(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.topics[name]; ok {
		for _, g := range t.groups {
			g.release()
		}
	}
	delete(b.topics, name)
}

func (b *broker) topicLocked(name string) *topic {
	t, ok := b.topics[name]
	if !ok {
		t = &topic{groups: map[string]*group{}}
		b.topics[name] = t
	}
	return t
}

// group is one consumer group's queue. Members take the first message whose
// ordering key is not already in flight, so each key is handled one message
// at a time, in order, however many members compete.
type group struct {
	mu       sync.Mutex
	queue    fifo            // waiting, in seq order
	bytes    int             // payload bytes waiting
	inFlight map[string]bool // ordering keys being handled
	changed  chan struct{}   // closed and replaced whenever a message may have become available, if watched
	watched  bool            // a member waits on changed
	room     chan struct{}   // not nil while a publisher waits for room; closed when there is some
	limits   Options
}

func (g *group) enqueue(envs []envelope, size int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.queue.push(envs)
	g.bytes += size
	g.signalLocked()
}

// roomLocked returns nil when the group is below its limits, and otherwise
// a channel closed when a consumer takes enough to bring it below them.
func (g *group) roomLocked() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.fullLocked() {
		return nil
	}
	if g.room == nil {
		g.room = make(chan struct{})
	}
	return g.room
}

func (g *group) fullLocked() bool {
	return g.queue.len() >= g.limits.MaxQueued || g.bytes >= g.limits.MaxQueuedBytes
}

// tookLocked wakes waiting publishers once the group is below its limits.
func (g *group) tookLocked() {
	if g.room != nil && !g.fullLocked() {
		close(g.room)
		g.room = nil
	}
}

// release wakes the publishers waiting for the group, which is gone.
func (g *group) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.room != nil {
		close(g.room)
		g.room = nil
	}
}

func (g *group) signalLocked() {
	if !g.watched {
		return // nobody holds the channel: a member looks at the queue first
	}
	close(g.changed)
	g.changed = make(chan struct{})
	g.watched = false
}

// take blocks until a message can be delivered, or stop or ctx ends, and
// returns up to max messages. It looks at the stop signals first: a
// consumer that is stopping must take nothing.
func (g *group) take(ctx context.Context, closing, brokerDone <-chan struct{}, max int) []envelope {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-closing:
			return nil
		case <-brokerDone:
			return nil
		default:
		}
		g.mu.Lock()
		out := g.takeLocked(max)
		if len(out) > 0 {
			g.mu.Unlock()
			return out
		}
		changed := g.changed
		g.watched = true
		g.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		case <-closing:
			return nil
		case <-brokerDone:
			return nil
		}
	}
}

// settle ends a delivery: an acked message is gone, any other goes back to
// its place in publish order for redelivery.
func (g *group) settle(e envelope, acked bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e.key != "" {
		delete(g.inFlight, e.key)
	}
	if !acked {
		g.bytes += len(e.payload)
		i := sort.Search(g.queue.len(), func(i int) bool { return g.queue.at(i).seq > e.seq })
		if i == 0 { // the usual case: back to the front
			g.queue.pushFront(e)
		} else {
			g.queue.insert(i, e)
		}
	}
	g.signalLocked()
}

// takeLocked takes up to max waiting messages whose ordering key is not in
// flight, marking their keys in flight. Taking from the front is by far the
// most common; a message taken from further back leaves a gap that is
// closed at once.
func (g *group) takeLocked(max int) []envelope {
	if g.queue.len() == 0 {
		return nil
	}
	out := make([]envelope, 0, min(max, g.queue.len()))
	prefix := true // every message taken so far was at the front
	for i := 0; i < g.queue.len() && len(out) < max; i++ {
		e := g.queue.at(i)
		if e.key != "" {
			if g.inFlight[e.key] {
				prefix = false
				continue
			}
			g.inFlight[e.key] = true
		}
		out = append(out, *e)
		e.seq = 0 // marks it taken, for the general case below
	}
	if len(out) == 0 {
		return nil
	}
	for _, e := range out {
		g.bytes -= len(e.payload)
	}
	defer g.tookLocked()
	if prefix {
		g.queue.popFront(len(out))
	} else {
		g.queue.keep(func(e *envelope) bool { return e.seq != 0 })
	}
	return out
}
