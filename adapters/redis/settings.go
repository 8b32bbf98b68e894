package redis

import (
	"cmp"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/msgkit/sdk"
)

// Options tune a Redis Streams transport. They are the keys of a config
// file's options section for this driver, as fields: Open fills them from
// the config, and New takes them from the caller. A zero field takes its
// default.
type Options struct {
	// BatchSize is how many entries one XREADGROUP returns (default 100).
	BatchSize int `option:"batch_size" default:"100" min:"1" help:"messages read per XREADGROUP"`
	// Block is how long one XREADGROUP waits for entries (default 5s).
	Block time.Duration `option:"block" default:"5s" min:"1ms"`
	// ClaimIdle is how long an entry stays with a member before another
	// member claims it (default 30s): the lease of an unacked message.
	ClaimIdle time.Duration `option:"claim_idle" default:"30s" min:"1ms"`
	// ClaimInterval is how often a member looks for entries to claim
	// (default 5s).
	ClaimInterval time.Duration `option:"claim_interval" default:"5s" min:"1ms"`
	// MaxLen trims each stream to about this many entries on publish
	// (0: no trimming).
	MaxLen int64 `option:"max_len" min:"0" help:"0 (no trimming) or the most entries a stream keeps"`
	// Retention trims entries older than this on publish (0: no trimming).
	// Set MaxLen or Retention, not both.
	Retention time.Duration `option:"retention" min:"0s"`
	// NoTrimAcked keeps entries every group has acknowledged
	// (trim_acked: false); by default a consuming transport removes them
	// every TrimInterval.
	NoTrimAcked bool `option:"!trim_acked"`
	// TrimInterval is how often acknowledged entries are trimmed (default
	// 10s).
	TrimInterval time.Duration `option:"trim_interval" default:"10s" min:"10ms"`
	// NewGroupStart is where a group that does not exist yet starts: oldest
	// (the whole stream) or latest (what is published from now on). Empty
	// takes the config's new_group_start, oldest by default.
	NewGroupStart string `option:"new_group_start" oneof:"oldest|latest" help:"oldest: a new group reads the whole stream; latest: what is published from now on"`
	// MaxPayloadBytes is the largest payload accepted (default 16 MiB).
	MaxPayloadBytes int `option:"max_payload_bytes" default:"16777216" min:"1" help:"largest payload accepted"`
	// PublishTimeout bounds a Publish whose context has no deadline
	// (default 30s).
	PublishTimeout time.Duration `option:"publish_timeout" default:"30s" min:"1ms"`
}

func (o Options) check(cfg sdk.Config) error {
	if o.MaxLen > 0 && o.Retention > 0 {
		return cfg.Invalid("options.retention", nil, "set max_len or retention, not both")
	}
	return nil
}

// settings is the validated configuration of a transport.
type settings struct {
	Options
	opts        *goredis.Options // from the URL or the caller's client; holds the password, never printed
	addr        string
	startOldest bool
}

func newSettings(cfg sdk.Config, o Options, opts *goredis.Options) (settings, error) {
	if err := o.check(cfg); err != nil {
		return settings{}, err
	}
	return settings{Options: o, opts: opts, addr: opts.Addr, startOldest: cmp.Or(o.NewGroupStart, cfg.GroupStart()) == sdk.GroupStartOldest}, nil
}

func parseSettings(cfg sdk.Config) (settings, error) {
	var (
		o  Options
		to sdk.TLSOptions // for the connection Open makes: New takes the caller's client as it is
	)
	if err := cfg.OptionsSection().Decode(&o, &to); err != nil {
		return settings{}, err
	}
	if cfg.URL == "" {
		return settings{}, cfg.Invalid("url", nil, "the redis driver needs the server's URL, such as redis://127.0.0.1:6379/0 (set url: or MESSAGING_URL)")
	}
	if _, err := sdk.ParseURL(cfg.URL); err != nil {
		return settings{}, cfg.Invalid("url", nil, "%v; got %q", err, sdk.RedactURL(cfg.URL))
	}
	opts, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		return settings{}, cfg.Invalid("url", nil, "want redis://[user:password@]host:port/db or rediss://..., got %q", sdk.RedactURL(cfg.URL))
	}
	rediss := opts.TLSConfig != nil
	tc, err := to.ClientConfig(cfg, &rediss, "rediss://")
	if err != nil {
		return settings{}, err
	}
	if tc != nil {
		if tc.ServerName == "" {
			tc.ServerName = opts.TLSConfig.ServerName // the URL's host
		}
		opts.TLSConfig = tc
	}
	return newSettings(cfg, o, opts)
}

func (s settings) where() string { return fmt.Sprintf("redis at %s (db %d)", s.addr, s.opts.DB) }
