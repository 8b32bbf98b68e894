package redis

import (
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/msgkit/sdk"
)

type settings struct {
	opts          *goredis.Options // from the URL; holds the password, never printed
	addr          string
	batchSize     int64
	block         time.Duration
	claimIdle     time.Duration
	claimInterval time.Duration
	maxLen        int64
	retention     time.Duration
	startOldest   bool
	maxPayload    int
	pubTimeout    time.Duration
}

var options = []string{"batch_size", "block", "claim_idle", "claim_interval", "max_len", "retention", "new_group_start", "max_payload_bytes", "publish_timeout"}

func parseSettings(cfg sdk.Config) (settings, error) {
	if err := cfg.CheckOptions(options...); err != nil {
		return settings{}, err
	}
	if cfg.URL == "" {
		return settings{}, cfg.Invalid("url", nil, "the redis driver needs the server's URL, such as redis://127.0.0.1:6379/0 (set url: or MESSAGING_URL)")
	}
	opts, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		return settings{}, cfg.Invalid("url", nil, "want redis://[user:password@]host:port/db or rediss://..., got %q", sdk.RedactURL(cfg.URL))
	}
	s := settings{opts: opts, addr: opts.Addr}
	var batch, maxLen int
	if batch, err = cfg.OptionInt("batch_size", 100); err != nil {
		return settings{}, err
	}
	if batch < 1 {
		return settings{}, cfg.Invalid("options.batch_size", nil, "must be at least 1 (messages read per XREADGROUP), got %d", batch)
	}
	s.batchSize = int64(batch)
	if maxLen, err = cfg.OptionInt("max_len", 0); err != nil {
		return settings{}, err
	}
	if maxLen < 0 {
		return settings{}, cfg.Invalid("options.max_len", nil, "must be 0 (no trimming) or a positive length, got %d", maxLen)
	}
	s.maxLen = int64(maxLen)
	if s.maxPayload, err = cfg.OptionInt("max_payload_bytes", 16<<20); err != nil {
		return settings{}, err
	}
	durations := []struct {
		key string
		dst *time.Duration
		def time.Duration
	}{
		{"block", &s.block, 5 * time.Second},
		{"claim_idle", &s.claimIdle, 30 * time.Second},
		{"claim_interval", &s.claimInterval, 5 * time.Second},
		{"retention", &s.retention, 0},
		{"publish_timeout", &s.pubTimeout, 30 * time.Second},
	}
	for _, d := range durations {
		if *d.dst, err = cfg.OptionDuration(d.key, d.def); err != nil {
			return settings{}, err
		}
		if *d.dst < 0 {
			return settings{}, cfg.Invalid("options."+d.key, nil, "must not be negative, got %v", *d.dst)
		}
	}
	if s.claimIdle < time.Millisecond || s.claimInterval < time.Millisecond || s.block < time.Millisecond {
		return settings{}, cfg.Invalid("options.claim_idle", nil, "block, claim_idle and claim_interval must be at least 1ms")
	}
	switch start := cfg.OptionString("new_group_start", cfg.GroupStart()); start {
	case "latest":
	case "oldest":
		s.startOldest = true
	default:
		return settings{}, cfg.Invalid("options.new_group_start", nil, "want latest (a new group sees messages published from now on) or oldest (the whole stream), got %q", start)
	}
	if s.maxLen > 0 && s.retention > 0 {
		return settings{}, cfg.Invalid("options.retention", nil, "set max_len or retention, not both")
	}
	return s, nil
}

func (s settings) where() string { return fmt.Sprintf("redis at %s (db %d)", s.addr, s.opts.DB) }
