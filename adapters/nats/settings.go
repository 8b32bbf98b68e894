package nats

import (
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/msgkit/sdk"
)

// settings is the parsed, validated driver configuration.
type settings struct {
	url         string   // as given, credentials included; never printed
	hosts       []string // host:port of each server, for messages
	batchSize   int
	maxAck      int
	replicas    int
	maxLen      int64
	fetchWait   time.Duration
	ackWait     time.Duration
	retention   time.Duration
	pubTimeout  time.Duration
	storage     jetstream.StorageType
	startOldest bool
}

var options = []string{"batch_size", "fetch_wait", "ack_wait", "max_ack_pending", "storage", "replicas", "retention",
	"max_len", "new_group_start", "publish_timeout"}

func parseSettings(cfg sdk.Config) (settings, error) {
	if err := cfg.CheckOptions(options...); err != nil {
		return settings{}, err
	}
	if cfg.URL == "" {
		return settings{}, cfg.Invalid("url", nil, "the nats driver needs the server's URL, such as nats://127.0.0.1:4222 (set url: or MESSAGING_URL)")
	}
	s := settings{url: cfg.URL}
	// nats.go takes a comma-separated list of servers and connects to any
	// that answers.
	for _, one := range strings.Split(cfg.URL, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
			return settings{}, cfg.Invalid("url", nil, "want nats://[user:password@]host:port or tls://..., several separated by commas, got %q",
				sdk.RedactURL(one))
		}
		s.hosts = append(s.hosts, u.Host)
	}
	ints := []struct {
		key      string
		dst      *int
		def, min int
	}{
		{"batch_size", &s.batchSize, 100, 1},
		{"max_ack_pending", &s.maxAck, 1000, 1},
		{"replicas", &s.replicas, 1, 1},
	}
	for _, o := range ints {
		v, err := cfg.OptionInt(o.key, o.def)
		if err != nil {
			return settings{}, err
		}
		if v < o.min {
			return settings{}, cfg.Invalid("options."+o.key, nil, "must be at least %d, got %d", o.min, v)
		}
		*o.dst = v
	}
	if s.replicas > 5 {
		return settings{}, cfg.Invalid("options.replicas", nil, "JetStream keeps at most 5 replicas of a stream, got %d", s.replicas)
	}
	maxLen, err := cfg.OptionInt("max_len", 0)
	if err != nil {
		return settings{}, err
	}
	if maxLen < 0 {
		return settings{}, cfg.Invalid("options.max_len", nil, "must be 0 (no limit) or the most messages a stream keeps, got %d", maxLen)
	}
	s.maxLen = int64(maxLen)
	durations := []struct {
		key      string
		dst      *time.Duration
		def, min time.Duration
	}{
		{"fetch_wait", &s.fetchWait, 2 * time.Second, 10 * time.Millisecond},
		{"ack_wait", &s.ackWait, 30 * time.Second, time.Second},
		{"retention", &s.retention, 0, 0},
		{"publish_timeout", &s.pubTimeout, 30 * time.Second, time.Millisecond},
	}
	for _, d := range durations {
		if *d.dst, err = cfg.OptionDuration(d.key, d.def); err != nil {
			return settings{}, err
		}
		if *d.dst < d.min {
			return settings{}, cfg.Invalid("options."+d.key, nil, "must be at least %v, got %v", d.min, *d.dst)
		}
	}
	switch st := cfg.OptionString("storage", "file"); st {
	case "file":
		s.storage = jetstream.FileStorage
	case "memory":
		s.storage = jetstream.MemoryStorage
	default:
		return settings{}, cfg.Invalid("options.storage", nil, "want file (streams survive a server restart) or memory, got %q", st)
	}
	switch start := cfg.OptionString("new_group_start", cfg.GroupStart()); start {
	case "oldest":
		s.startOldest = true
	case "latest":
	default:
		return settings{}, cfg.Invalid("options.new_group_start", nil,
			"want oldest (a new group reads the whole stream) or latest (only what is published after it is created), got %q", start)
	}
	return s, nil
}

func (s settings) where() string { return "nats at " + strings.Join(s.hosts, ",") }
