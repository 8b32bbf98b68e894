package redis

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"
)

// trimmer keeps the streams a transport consumes from growing without
// bound: every trim_interval it removes from each stream the entries that
// every group of it has acknowledged (XTRIM MINID, approximate, below the
// oldest entry any group still has pending or has not yet read). A stream
// without groups is left alone: its entries wait for the first group.
// Trimming runs where messages are consumed, since only groups advance
// what may go, and needs XINFO, XPENDING and XTRIM.
type trimmer struct {
	t *Transport

	mu      sync.Mutex
	streams map[string]int  // open subscriptions per stream
	failing map[string]bool // streams whose last trim failed (logged once)
	stop    chan struct{}
	done    chan struct{} // nil until the loop starts
}

func newTrimmer(t *Transport) *trimmer {
	return &trimmer{t: t, streams: map[string]int{}, failing: map[string]bool{}, stop: make(chan struct{})}
}

// add counts a subscription on stream, starting the loop on the first.
func (tr *trimmer) add(stream string) {
	if tr.t.s.NoTrimAcked {
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.streams[stream]++
	if tr.done == nil {
		tr.done = make(chan struct{})
		go tr.loop()
	}
}

// remove uncounts a subscription on stream.
func (tr *trimmer) remove(stream string) {
	if tr.t.s.NoTrimAcked {
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.streams[stream]--; tr.streams[stream] <= 0 {
		delete(tr.streams, stream)
		delete(tr.failing, stream)
	}
}

// close stops the loop and waits for it.
func (tr *trimmer) close() {
	tr.mu.Lock()
	done := tr.done
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	tr.mu.Unlock()
	if done != nil {
		<-done
	}
}

func (tr *trimmer) loop() {
	defer close(tr.done)
	tick := time.NewTicker(tr.t.s.TrimInterval)
	defer tick.Stop()
	for {
		select {
		case <-tr.stop:
			return
		case <-tick.C:
		}
		tr.mu.Lock()
		streams := make([]string, 0, len(tr.streams))
		for s := range tr.streams {
			streams = append(streams, s)
		}
		tr.mu.Unlock()
		for _, s := range streams {
			ctx, cancel := context.WithTimeout(context.Background(), tr.t.s.TrimInterval)
			err := tr.trimAcked(ctx, s)
			cancel()
			tr.report(s, err)
		}
	}
}

// report logs a stream's first failure, and its recovery.
func (tr *trimmer) report(stream string, err error) {
	tr.mu.Lock()
	was := tr.failing[stream]
	if _, open := tr.streams[stream]; open {
		tr.failing[stream] = err != nil
	}
	tr.mu.Unlock()
	switch {
	case err != nil && !was:
		tr.t.logger.Warn("redis: trimming acknowledged entries failed; the stream keeps them until a trim succeeds (the user needs XINFO, XPENDING and XTRIM)",
			"stream", stream, "error", err)
	case err == nil && was:
		tr.t.logger.Info("redis: trimming acknowledged entries works again", "stream", stream)
	}
}

// trimAcked removes the entries of stream that every group acknowledged.
func (tr *trimmer) trimAcked(ctx context.Context, stream string) error {
	c := tr.t.client
	groups, err := c.XInfoGroups(ctx, stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return nil
		}
		return err
	}
	if len(groups) == 0 {
		return nil
	}
	var lowest streamID
	for i, g := range groups {
		// Entries after last-delivered-id are unread; of those up to it,
		// the pending ones are unacknowledged.
		keep := g.LastDeliveredID
		if g.Pending > 0 {
			p, err := c.XPending(ctx, stream, g.Name).Result()
			if err != nil {
				return err
			}
			if p.Count > 0 {
				keep = p.Lower
			}
		}
		id, ok := parseStreamID(keep)
		if !ok {
			return nil // an id this code does not understand: trim nothing
		}
		if i == 0 || id.less(lowest) {
			lowest = id
		}
	}
	if lowest == (streamID{}) {
		return nil
	}
	// MINID removes entries below the id; approximate (~) removes only
	// whole internal nodes, which is cheap and never removes more. One
	// approximate XTRIM removes at most 100 nodes' worth of entries
	// (10,000 by default), which keeps each call short for the server:
	// trim again while a call removes entries, or a stream that takes more
	// than that many entries per trim_interval would grow without end.
	for ctx.Err() == nil {
		n, err := c.XTrimMinIDApprox(ctx, stream, lowest.String(), 0).Result()
		if err != nil || n == 0 {
			return err
		}
	}
	return nil
}

// streamID is a stream entry id, milliseconds-sequence.
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return streamID{ms, seq}, err1 == nil && err2 == nil
}

func (a streamID) less(b streamID) bool { return a.ms < b.ms || a.ms == b.ms && a.seq < b.seq }

func (a streamID) String() string {
	return strconv.FormatUint(a.ms, 10) + "-" + strconv.FormatUint(a.seq, 10)
}
