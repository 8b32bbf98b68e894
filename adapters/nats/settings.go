package nats

import (
	"cmp"
	"crypto/tls"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/msgkit/sdk"
)

// Options tune a NATS JetStream transport. They are the keys of a config
// file's options section for this driver, as fields: Open fills them from
// the config, and New takes them from the caller. A zero field takes its
// default.
type Options struct {
	// BatchSize is how many messages one pull asks for (default 100).
	BatchSize int `option:"batch_size" default:"100" min:"1" help:"messages asked for per pull"`
	// MaxAckPending is how many unacked messages a group's consumer allows
	// in all (default 1000).
	MaxAckPending int `option:"max_ack_pending" default:"1000" min:"1" help:"unacked messages a group's consumer allows"`
	// Replicas is the replica count of the streams the driver creates
	// (default 1).
	Replicas int `option:"replicas" default:"1" min:"1" max:"5" help:"JetStream keeps 1 to 5 replicas of a stream"`
	// MaxLen is the most messages a created stream keeps (0: no limit).
	MaxLen int64 `option:"max_len" min:"0" help:"0 (no limit) or the most messages a stream keeps"`
	// FetchWait is how long one pull waits for messages (default 2s).
	FetchWait time.Duration `option:"fetch_wait" default:"2s" min:"10ms"`
	// AckWait is how long a message stays with a member before the server
	// redelivers it (default 30s): the lease of an unacked message.
	AckWait time.Duration `option:"ack_wait" default:"30s" min:"1s"`
	// Retention is how long a created stream keeps messages (0: no limit).
	Retention time.Duration `option:"retention" min:"0s"`
	// PublishAckTimeout is how long a publish waits for the stream to
	// acknowledge a message before it fails and is sent again (default
	// 5s): an acknowledgement is lost when the stream's leader changes.
	// The message id (Nats-Msg-Id) keeps the second copy out of the
	// stream.
	PublishAckTimeout time.Duration `option:"publish_ack_timeout" default:"5s" min:"10ms"`
	// PublishTimeout bounds a Publish whose context has no deadline
	// (default 30s).
	PublishTimeout time.Duration `option:"publish_timeout" default:"30s" min:"1ms"`
	// Storage is where created streams keep messages: file (default; they
	// survive a server restart) or memory.
	// WireFormat is how headers are written: watermill (the default: the
	// id in _watermill_message_uuid, metadata as headers, whose ce-* names
	// are already the CloudEvents NATS binding's) or cloudevents (also
	// ce-specversion 1.0 and ce-id, so that a CloudEvents SDK reads each
	// message as a binary-mode event).
	WireFormat string `option:"wire_format" default:"watermill" oneof:"watermill|cloudevents" help:"cloudevents: add ce-specversion and ce-id, for CloudEvents SDK consumers"`
	Storage    string `option:"storage" default:"file" oneof:"file|memory" help:"file: streams survive a server restart"`
	// NewGroupStart is where a group that does not exist yet starts: oldest
	// (the whole stream) or latest (what is published after it is
	// created). Empty takes the config's new_group_start, oldest by default.
	NewGroupStart string `option:"new_group_start" oneof:"oldest|latest" help:"oldest: a new group reads the whole stream; latest: what is published after it is created"`
}

// settings is the validated configuration of a transport.
type settings struct {
	Options
	url         string      // as given, credentials included; never printed
	hosts       []string    // host:port of each server, for messages
	tls         *tls.Config // the tls_* options, for tls:// URLs; nil: nats.go's defaults
	storage     jetstream.StorageType
	startOldest bool
}

func newSettings(cfg sdk.Config, o Options) settings {
	s := settings{Options: o, storage: jetstream.FileStorage, startOldest: cmp.Or(o.NewGroupStart, cfg.GroupStart()) == sdk.GroupStartOldest}
	if o.Storage == "memory" {
		s.storage = jetstream.MemoryStorage
	}
	return s
}

func parseSettings(cfg sdk.Config) (settings, error) {
	var o Options
	var to sdk.TLSOptions
	if err := cfg.OptionsSection().Decode(&o, &to); err != nil {
		return settings{}, err
	}
	if cfg.URL == "" {
		return settings{}, cfg.Invalid("url", nil, "the nats driver needs the server's URL, such as nats://127.0.0.1:4222 (set url: or MESSAGING_URL)")
	}
	s := newSettings(cfg, o)
	s.url = cfg.URL
	// nats.go takes a comma-separated list of servers and connects to any
	// that answers.
	anyTLS := false
	for i, one := range strings.Split(cfg.URL, ",") {
		one = strings.TrimSpace(one)
		if i > 0 && !strings.Contains(one, "://") {
			return settings{}, cfg.Invalid("url", nil, "server %d of the list has no scheme; write each server in full, with its credentials (nats://[user:password@]host:port or tls://...), separated by commas; got %q",
				i+1, sdk.RedactURL(cfg.URL))
		}
		u, err := sdk.ParseURL(one)
		if err != nil {
			return settings{}, cfg.Invalid("url", nil, "%v; got %q", err, sdk.RedactURL(cfg.URL)) // a password may hold the comma that split it
		}
		if u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
			return settings{}, cfg.Invalid("url", nil, "want nats://[user:password@]host:port or tls://..., several separated by commas, got %q",
				sdk.RedactURL(cfg.URL))
		}
		s.hosts = append(s.hosts, u.Host)
		tlsScheme := u.Scheme == "tls"
		if len(s.hosts) > 1 && tlsScheme != anyTLS {
			return settings{}, cfg.Invalid("url", nil, "mixes tls:// and nats:// servers; use tls:// for all of them or for none, got %q", sdk.RedactURL(cfg.URL))
		}
		anyTLS = tlsScheme
	}
	tc, err := to.ClientConfig(cfg, &anyTLS, "tls://")
	if err != nil {
		return settings{}, err
	}
	s.tls = tc
	return s, nil
}

func (s settings) where() string { return "nats at " + strings.Join(s.hosts, ",") }
