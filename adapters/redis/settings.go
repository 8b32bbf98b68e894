package redis

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
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
	// WaitReplicas, when above 0, makes a publish wait until this many
	// replicas have the entries (WAIT), so a failover to one of them
	// loses no acknowledged publish; a publish that is not replicated in
	// WaitTimeout fails (and is sent again: it may then arrive twice).
	WaitReplicas int `option:"wait_replicas" min:"0" help:"0, or how many replicas must have a publish before it counts as sent"`
	// WaitTimeout bounds that wait (default 1s).
	WaitTimeout time.Duration `option:"wait_timeout" default:"1s" min:"1ms"`
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
	// WireFormat is the stream entry layout publishes write: msgkit (id,
	// payload, h:<key> per metadata entry) or watermill (the stock
	// watermill-redisstream layout: _watermill_message_uuid, payload, and
	// the metadata msgpack-encoded in one field), for Watermill services
	// consuming the streams. Both are read either way.
	WireFormat string `option:"wire_format" default:"msgkit" oneof:"msgkit|watermill" help:"the entry layout publishes write; watermill: readable by watermill-redisstream subscribers"`
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
	// failover, for a redis+sentinel:// URL, finds the primary through
	// the sentinels; Open's client then supplies opts (its dialer follows
	// the primary).
	failover *goredis.FailoverOptions
	// cluster, for a redis+cluster:// URL, reaches a Redis Cluster.
	cluster *goredis.ClusterOptions
}

// sentinelOptions are the options of a redis+sentinel:// URL's sentinels,
// when they require a login of their own.
type sentinelOptions struct {
	User     string `option:"sentinel_user"`
	Password string `option:"sentinel_password"` // never printed
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
		so sentinelOptions
	)
	if err := cfg.OptionsSection().Decode(&o, &to, &so); err != nil {
		return settings{}, err
	}
	if cfg.URL == "" {
		return settings{}, cfg.Invalid("url", nil, "the redis driver needs the server's URL, such as redis://127.0.0.1:6379/0 (set url: or MESSAGING_URL)")
	}
	switch scheme := strings.SplitN(cfg.URL, "://", 2)[0]; {
	case strings.HasSuffix(scheme, "+sentinel"):
		return parseSentinel(cfg, o, to, so)
	case strings.HasSuffix(scheme, "+cluster"):
		if so != (sentinelOptions{}) {
			return settings{}, cfg.Invalid("options.sentinel_user", nil, "sentinel_user and sentinel_password are for a redis+sentinel:// URL, not redis+cluster://")
		}
		return parseCluster(cfg, o, to)
	}
	if so != (sentinelOptions{}) {
		return settings{}, cfg.Invalid("options.sentinel_user", nil, "sentinel_user and sentinel_password are for a redis+sentinel:// URL; %s", sentinelHelp)
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

const sentinelHelp = "want redis+sentinel://[user:password@]sentinel1:26379,sentinel2:26379,sentinel3:26379/db?master=NAME (or rediss+sentinel:// for TLS)"

// parseSentinel reads redis+sentinel://[user:password@]s1:26379,s2/db?master=NAME:
// the user and password are the primary's and replicas', the hosts the
// sentinels', NAME the primary's name as the sentinels monitor it.
func parseSentinel(cfg sdk.Config, o Options, to sdk.TLSOptions, so sentinelOptions) (settings, error) {
	first, hosts := sdk.SplitURLHosts(cfg.URL)
	u, err := sdk.ParseURL(first)
	if err != nil {
		return settings{}, cfg.Invalid("url", nil, "%v; got %q", err, sdk.RedactURL(cfg.URL))
	}
	if u.Scheme != "redis+sentinel" && u.Scheme != "rediss+sentinel" {
		return settings{}, cfg.Invalid("url", nil, "%s, got %q", sentinelHelp, sdk.RedactURL(cfg.URL))
	}
	q := u.Query()
	fo := &goredis.FailoverOptions{MasterName: q.Get("master"), SentinelUsername: so.User, SentinelPassword: so.Password}
	if fo.MasterName == "" {
		return settings{}, cfg.Invalid("url", nil, "the primary's name is missing: add ?master=NAME, as the sentinels monitor it; %s", sentinelHelp)
	}
	for k := range q {
		if k != "master" {
			return settings{}, cfg.Invalid("url", nil, "unknown URL parameter %q; a redis+sentinel:// URL takes only master=NAME (set the rest in options)", k)
		}
	}
	fo.Username = u.User.Username()
	fo.Password, _ = u.User.Password()
	fo.SentinelAddrs = addrs(u, hosts, "26379")
	if p := strings.Trim(u.Path, "/"); p != "" {
		if fo.DB, err = strconv.Atoi(p); err != nil || fo.DB < 0 {
			return settings{}, cfg.Invalid("url", nil, "the path must be the database number, got %q; %s", p, sentinelHelp)
		}
	}
	secure := u.Scheme == "rediss+sentinel"
	if fo.TLSConfig, err = to.ClientConfig(cfg, &secure, "rediss+sentinel://"); err != nil {
		return settings{}, err
	}
	s, err := newSettings(cfg, o, &goredis.Options{DB: fo.DB, TLSConfig: fo.TLSConfig})
	if err != nil {
		return settings{}, err
	}
	s.failover = fo
	s.addr = fmt.Sprintf("primary %q via sentinels %s", fo.MasterName, strings.Join(fo.SentinelAddrs, ","))
	return s, nil
}

const clusterHelp = "want redis+cluster://[user:password@]node1:6379,node2:6379,node3:6379 (or rediss+cluster:// for TLS): any of the cluster's nodes, from which the client learns the rest"

// parseCluster reads redis+cluster://[user:password@]node1:6379,node2:6379.
func parseCluster(cfg sdk.Config, o Options, to sdk.TLSOptions) (settings, error) {
	first, hosts := sdk.SplitURLHosts(cfg.URL)
	u, err := sdk.ParseURL(first)
	if err != nil {
		return settings{}, cfg.Invalid("url", nil, "%v; got %q", err, sdk.RedactURL(cfg.URL))
	}
	if u.Scheme != "redis+cluster" && u.Scheme != "rediss+cluster" {
		return settings{}, cfg.Invalid("url", nil, "%s, got %q", clusterHelp, sdk.RedactURL(cfg.URL))
	}
	if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
		return settings{}, cfg.Invalid("url", nil, "Redis Cluster has only database 0, got %q; %s", p, clusterHelp)
	}
	if u.RawQuery != "" {
		return settings{}, cfg.Invalid("url", nil, "a redis+cluster:// URL takes no parameters (set them in options); %s", clusterHelp)
	}
	if o.WaitReplicas > 0 {
		return settings{}, cfg.Invalid("options.wait_replicas", nil, "is not supported with Redis Cluster yet (WAIT would go to another node than the stream's); remove it")
	}
	co := &goredis.ClusterOptions{Username: u.User.Username()}
	co.Password, _ = u.User.Password()
	co.Addrs = addrs(u, hosts, "6379")
	secure := u.Scheme == "rediss+cluster"
	if co.TLSConfig, err = to.ClientConfig(cfg, &secure, "rediss+cluster://"); err != nil {
		return settings{}, err
	}
	s, err := newSettings(cfg, o, &goredis.Options{TLSConfig: co.TLSConfig})
	if err != nil {
		return settings{}, err
	}
	s.cluster = co
	s.addr = "cluster " + strings.Join(co.Addrs, ",")
	return s, nil
}

// addrs returns the host:port of each host of a URL's list, the first as
// u parsed it (a bracketed IPv6 address stays one), with port where a host
// has none.
func addrs(u *url.URL, hosts []string, port string) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		if i == 0 {
			h = u.Host
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), port)
		}
		out[i] = h
	}
	return out
}

// newClient makes the client Open connects with: through the sentinels
// for a redis+sentinel:// URL, and then opts are the client's, whose dialer
// finds the current primary for every new connection, the subscriptions'
// readers' too; a cluster client for a redis+cluster:// URL. Each call's
// context deadline bounds its reads and writes: without
// ContextTimeoutEnabled, go-redis waits for a server that stopped answering
// until its own read timeout, whatever the caller's deadline says.
func (s *settings) newClient() goredis.UniversalClient {
	switch {
	case s.cluster != nil:
		s.cluster.ContextTimeoutEnabled = true
		return goredis.NewClusterClient(s.cluster)
	case s.failover != nil:
		s.failover.ContextTimeoutEnabled = true
		c := goredis.NewFailoverClient(s.failover)
		s.opts = c.Options()
		return c
	}
	s.opts.ContextTimeoutEnabled = true
	return goredis.NewClient(s.opts)
}

// newReader makes a subscription's reader: a client of one connection (per
// node) that closing interrupts, with no silent retries: an XREADGROUP
// retried by go-redis after a dropped connection hides that the first one
// may have been applied (entries assigned to this consumer, reply lost).
// ReceiveBatch sees the error, and the next call first recovers those
// entries from its own pending list instead of leaving them for
// claim_idle.
func (s settings) newReader() goredis.UniversalClient {
	if s.cluster != nil {
		o := *s.cluster
		o.PoolSize, o.MinIdleConns, o.MaxRetries, o.ContextTimeoutEnabled = 1, 0, -1, true
		return goredis.NewClusterClient(&o)
	}
	o := *s.opts
	o.PoolSize, o.MinIdleConns, o.MaxRetries, o.ContextTimeoutEnabled = 1, 0, -1, true
	return goredis.NewClient(&o)
}

func (s settings) where() string { return fmt.Sprintf("redis at %s (db %d)", s.addr, s.opts.DB) }
