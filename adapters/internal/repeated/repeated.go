// Package repeated tells operators about received messages that carry a
// header more than once: metadata holds one value per key, so such a
// message cannot arrive exactly as it was sent. Non-Go producers make them
// (kafkajs with an array of values, a Java producer adding a header twice,
// a NATS client appending to a header). The driver delivers the message
// with what it documents keeping (Kafka the last value, as watermill-kafka
// and Kafka's lastHeader read it; NATS every value joined with commas, as
// HTTP reads a repeated field) and a Reporter logs it, once per header name
// and subscription, so that the change is never silent.
package repeated

import (
	"log/slog"
	"sort"
	"sync"
)

// Reporter logs, once per header name, that a subscription received a
// message carrying that header more than once. The zero value is not
// usable; make one with New.
type Reporter struct {
	logger *slog.Logger
	msg    string

	mu   sync.Mutex
	seen map[string]struct{}
}

// New returns a Reporter that logs with logger. driver names the driver
// ("kafka") and kept says what the metadata keeps ("the last value").
func New(logger *slog.Logger, driver, kept string) *Reporter {
	return &Reporter{
		logger: logger,
		msg: driver + ": a received message carries a header more than once; its metadata keeps " + kept +
			" (logged once per header name and subscription)",
		seen: map[string]struct{}{},
	}
}

// maxNames bounds how many header names a Reporter remembers: a producer
// repeating ever new names is logged for the first ones only.
const maxNames = 256

// Report logs each name in counts (a header name and how many times the
// message carries it, two or more) not logged before. It never logs a
// header's values, which may be secrets.
func (r *Reporter) Report(topic, group, id string, counts map[string]int) {
	names := make([]string, 0, len(counts))
	r.mu.Lock()
	for name := range counts {
		if _, ok := r.seen[name]; !ok && len(r.seen) < maxNames {
			r.seen[name] = struct{}{}
			names = append(names, name)
		}
	}
	r.mu.Unlock()
	sort.Strings(names)
	for _, name := range names {
		r.logger.Warn(r.msg, "topic", topic, "group", group, "message_id", id, "header", name, "times", counts[name])
	}
}
