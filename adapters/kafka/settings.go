package kafka

import (
	"crypto/tls"
	"fmt"
	"hash/fnv"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/msgkit/msgkit/sdk"
)

// Options tune a Kafka transport. They are the keys of a config file's
// options section for this driver, as fields, except those that say how to
// connect (brokers, version, client_id, tls_*, sasl_*), which a caller of
// New sets on its own client: Open fills them from the config, and New
// takes them from the caller. A zero field takes its default.
type Options struct {
	// Partitions is the partition count of the topics the driver creates
	// (default 3).
	Partitions int32 `option:"partitions" default:"3" min:"1" help:"partitions of a topic the driver creates"`
	// ReplicationFactor is the replica count of the topics the driver
	// creates (default -1: the broker's default).
	ReplicationFactor int16 `option:"replication_factor" default:"-1" min:"-1" help:"replicas of a topic the driver creates, -1 for the broker's default"`
	// WireFormat is how records are written: watermill (the default:
	// metadata as plain headers, the id in _watermill_message_uuid, as
	// watermill-kafka writes) or cloudevents (the CloudEvents Kafka
	// binding's binary mode: ce_specversion, ce_id, ce_type, ce_source,
	// ce_time and the other ce-* attributes as ce_* headers, for consumers
	// using a CloudEvents SDK). Both are read either way.
	WireFormat string `option:"wire_format" default:"watermill" oneof:"watermill|cloudevents" help:"cloudevents: write the CloudEvents Kafka binding (ce_* headers)"`
	// NoCreateTopics uses only topics that exist (create_topics: false).
	NoCreateTopics bool `option:"!create_topics"`
	// InitialOffset is where a group that has no committed offset starts:
	// oldest (the topic from the start) or newest (what is published after
	// it joins). Empty takes the config's new_group_start, oldest by
	// default.
	InitialOffset string `option:"initial_offset" oneof:"oldest|newest" help:"oldest: a new group reads the topic from the start; newest: only what is published after it joins"`
	// NotIdempotent turns off the idempotent producer (idempotent: false).
	// Only Open's own producer reads it.
	NotIdempotent bool `option:"!idempotent"`
	// MaxPayloadBytes is the largest payload accepted (default 1000000);
	// keep it below the broker's message.max.bytes.
	MaxPayloadBytes int `option:"max_payload_bytes" default:"1000000" min:"1" help:"largest payload; keep it below the broker's message.max.bytes"`
	// PublishTimeout bounds a Publish whose context has no deadline
	// (default 30s).
	PublishTimeout time.Duration `option:"publish_timeout" default:"30s" min:"1ms"`
	// NackDelay is how long a nacked record waits before it is handed out
	// again (default 100ms).
	NackDelay time.Duration `option:"nack_delay" default:"100ms" min:"1ms"`
	// SessionTimeout is how long the group waits for a silent member before
	// it rebalances (default 10s).
	SessionTimeout time.Duration `option:"session_timeout" default:"10s" min:"1ms"`
	// HeartbeatInterval is how often a member tells the group it is alive
	// (default 3s); it must be shorter than SessionTimeout.
	HeartbeatInterval time.Duration `option:"heartbeat_interval" default:"3s" min:"1ms"`
	// RebalanceTimeout bounds a rebalance (default 60s).
	RebalanceTimeout time.Duration `option:"rebalance_timeout" default:"60s" min:"1ms"`
	// FetchMaxWait is how long the broker may hold a fetch while it has
	// nothing new (default 500ms).
	FetchMaxWait time.Duration `option:"fetch_max_wait" default:"500ms" min:"1ms"`
}

func (o Options) check(cfg sdk.Config) error {
	if o.ReplicationFactor == 0 {
		return cfg.Invalid("options.replication_factor", nil, "want -1 (the broker's default) or 1 or more, got 0")
	}
	if o.HeartbeatInterval >= o.SessionTimeout {
		return cfg.Invalid("options.heartbeat_interval", nil, "must be shorter than session_timeout (%v), got %v; Kafka advises a third of it",
			o.SessionTimeout, o.HeartbeatInterval)
	}
	return nil
}

// connOptions are the options that say how Open connects; New takes the
// caller's client instead.
type connOptions struct {
	Brokers       string `option:"brokers"`
	Version       string `option:"version" default:"3.6.0"`
	ClientID      string `option:"client_id" default:"msgkit"`
	SASLMechanism string `option:"sasl_mechanism"`
	SASLUser      string `option:"sasl_user"`
	SASLPassword  string `option:"sasl_password"`
	// SASLAllowPlaintext lets SASL PLAIN send the password without TLS.
	SASLAllowPlaintext bool `option:"sasl_allow_plaintext"`
}

// settings is the validated configuration of a transport.
type settings struct {
	Options
	brokers     []string
	clientID    string
	startOldest bool

	base []kgo.Opt // the caller's client's options (New), in place of brokers, TLS and SASL

	tls     *tls.Config
	sasl    string // mechanism, "" for none
	user    string
	passwrd string // never printed; named so no format verb picks it up by accident
}

const urlHelp = "want kafka://host:port[,host:port...] (or user:password@ before the hosts for SASL), such as kafka://127.0.0.1:9092"

func newSettings(cfg sdk.Config, o Options) (settings, error) {
	if err := o.check(cfg); err != nil {
		return settings{}, err
	}
	start := cfg.GroupStart()
	if o.InitialOffset != "" {
		start = map[string]string{"oldest": sdk.GroupStartOldest, "newest": sdk.GroupStartLatest}[o.InitialOffset]
	}
	return settings{Options: o, startOldest: start == sdk.GroupStartOldest}, nil
}

func parseSettings(cfg sdk.Config) (settings, error) {
	var o Options
	var c connOptions
	var to sdk.TLSOptions
	if err := cfg.OptionsSection().Decode(&o, &c, &to); err != nil {
		return settings{}, err
	}
	s, err := newSettings(cfg, o)
	if err != nil {
		return settings{}, err
	}
	s.clientID = c.ClientID
	if err := s.parseBrokers(cfg, c.Brokers); err != nil {
		return settings{}, err
	}
	if err := checkVersion(cfg, c.Version); err != nil {
		return settings{}, err
	}
	// The URL does not say whether to use TLS: the tls option does.
	if s.tls, err = to.ClientConfig(cfg, nil, ""); err != nil {
		return settings{}, err
	}
	if err := s.parseSASL(cfg, c); err != nil {
		return settings{}, err
	}
	return s, nil
}

// parseBrokers reads kafka://[user:password@]host:port,host:port or the
// brokers option. net/url cannot parse a host list, hence the hand parsing.
func (s *settings) parseBrokers(cfg sdk.Config, list string) error {
	if cfg.URL != "" {
		if list != "" {
			return cfg.Invalid("options.brokers", nil, "set the brokers in url or in options.brokers, not both")
		}
		rest, ok := strings.CutPrefix(cfg.URL, "kafka://")
		if !ok {
			return cfg.Invalid("url", nil, "%s; the URL does not start with kafka://", urlHelp)
		}
		// The user information ends at the last '@': a password may hold a
		// '/' that is not percent-encoded, so the path is cut after it.
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			user, pass, _ := strings.Cut(rest[:at], ":")
			var errUser, errPass error
			s.user, errUser = url.PathUnescape(user)
			s.passwrd, errPass = url.PathUnescape(pass)
			if errUser != nil || errPass != nil {
				return cfg.Invalid("url", nil, "the user or password in the URL has a %% not followed by two hex digits; percent-encode it (%%25 for %%)")
			}
			rest = rest[at+1:]
		}
		rest, _, _ = strings.Cut(rest, "/")
		list = rest
	}
	if list == "" {
		return cfg.Invalid("url", nil, "the kafka driver needs the brokers; %s (set url: or MESSAGING_URL)", urlHelp)
	}
	for _, b := range strings.Split(list, ",") {
		b = strings.TrimSpace(b)
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return cfg.Invalid("url", err, "broker %q is not host:port; %s", b, urlHelp)
		}
		s.brokers = append(s.brokers, b)
	}
	return nil
}

func (s *settings) parseSASL(cfg sdk.Config, o connOptions) error {
	if u := o.SASLUser; u != "" {
		if s.user != "" {
			return cfg.Invalid("options.sasl_user", nil, "the user is set in both url and options.sasl_user; keep one")
		}
		s.user = u
	}
	if p := o.SASLPassword; p != "" {
		s.passwrd = p
	}
	mech := strings.ToUpper(o.SASLMechanism)
	if mech == "" && s.user != "" {
		mech = saslPlain
	}
	switch mech {
	case "":
		if s.passwrd != "" {
			return cfg.Invalid("options.sasl_password", nil, "a SASL password is set without a user; set sasl_user too")
		}
		return nil
	case saslPlain, saslSCRAM256, saslSCRAM512:
	default:
		return cfg.Invalid("options.sasl_mechanism", nil, "want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got %q", mech)
	}
	if s.user == "" {
		return cfg.Invalid("options.sasl_user", nil, "SASL %s needs a user (sasl_user or user:password@ in the URL)", mech)
	}
	if mech == saslPlain && s.tls == nil && !o.SASLAllowPlaintext {
		// SCRAM never sends the password; PLAIN sends it as it is.
		return cfg.Invalid("options.tls", nil, "SASL PLAIN would send the password of user %q to %s in clear text: set tls: true, use sasl_mechanism: SCRAM-SHA-512, or set sasl_allow_plaintext: true on a network you trust",
			s.user, strings.Join(s.brokers, ","))
	}
	s.sasl = mech
	return nil
}

// where names the cluster for errors and logs: brokers and user, never the
// password.
func (s settings) where() string {
	w := "kafka at " + strings.Join(s.brokers, ",")
	if s.sasl != "" {
		w += fmt.Sprintf(" (SASL %s as %q)", s.sasl, s.user)
	}
	if s.tls != nil {
		w += " over TLS"
	}
	return w
}

// SASL mechanisms, as the option names them.
const (
	saslPlain    = "PLAIN"
	saslSCRAM256 = "SCRAM-SHA-256"
	saslSCRAM512 = "SCRAM-SHA-512"
)

// checkVersion validates the version option. franz-go negotiates every
// request's version with the brokers, so the option only states the
// cluster's version, which must have record headers (0.11).
func checkVersion(cfg sdk.Config, v string) error {
	parts := strings.Split(v, ".")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || len(parts) < 2 || len(parts) > 4 {
			return cfg.Invalid("options.version", nil, "want the Kafka version of the cluster, such as 3.6.0, got %q", v)
		}
		nums[i] = n
	}
	if nums[0] == 0 && nums[1] < 11 {
		return cfg.Invalid("options.version", nil, "the driver needs Kafka 0.11 or newer (record headers carry metadata), got %s", v)
	}
	return nil
}

// clientOptions are the options of every client: the transport's producer
// and each subscription's consumer.
func (s settings) clientOptions() []kgo.Opt {
	if s.base != nil {
		return append([]kgo.Opt(nil), s.base...)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(s.brokers...),
		kgo.ClientID(s.clientID),
		kgo.DialTimeout(10 * time.Second),
		kgo.WithLogger(nil),
	}
	if s.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(s.tls.Clone()))
	}
	switch s.sasl {
	case saslPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: s.user, Pass: s.passwrd}.AsMechanism()))
	case saslSCRAM256:
		opts = append(opts, kgo.SASL(scram.Auth{User: s.user, Pass: s.passwrd}.AsSha256Mechanism()))
	case saslSCRAM512:
		opts = append(opts, kgo.SASL(scram.Auth{User: s.user, Pass: s.passwrd}.AsSha512Mechanism()))
	}
	return opts
}

// producerOptions: acks from all in-sync replicas and, by default,
// idempotence, so a retried batch is neither duplicated nor reordered; the
// ordering key picks the partition as sarama's hash partitioner does, so
// watermill-kafka producers and ours put one key on one partition.
func (s settings) producerOptions() []kgo.Opt {
	opts := append(s.clientOptions(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv32a))),
		kgo.ProducerBatchMaxBytes(int32(s.MaxPayloadBytes+64<<10)),
		kgo.ProduceRequestTimeout(s.PublishTimeout),
		// A topic the cluster does not know fails its records after a few
		// quick metadata checks instead of waiting out the publish timeout:
		// the driver then checks (or creates) the topic and tries again.
		kgo.UnknownTopicRetries(3),
		kgo.MetadataMinAge(200*time.Millisecond),
	)
	if s.NotIdempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	return opts
}

func fnv32a(b []byte) uint32 {
	h := fnv.New32a()
	_, _ = h.Write(b)
	return h.Sum32()
}

// consumerOptions consume topic as a member of group: offsets are committed
// only for records marked after an ack. A group that starts at the newest
// records and finds a partition without a committed offset (pinStart saw
// fewer partitions than the topic has, as metadata can lag a topic just
// created) starts it at the first record published since the subscription
// began, not at the end as it is when the member joins, which under load
// can be seconds later: what was published meanwhile would be skipped.
func (s settings) consumerOptions(topic, group string, oldest bool) []kgo.Opt {
	start := kgo.NewOffset().AfterMilli(time.Now().UnixMilli())
	if oldest {
		start = kgo.NewOffset().AtStart()
	}
	return append(s.clientOptions(),
		kgo.ConsumeTopics(topic),
		kgo.ConsumerGroup(group),
		kgo.ConsumeResetOffset(start),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.FetchMaxWait(s.FetchMaxWait),
		kgo.FetchMaxBytes(int32(max(50<<20, s.MaxPayloadBytes+64<<10))),
		kgo.SessionTimeout(s.SessionTimeout),
		kgo.HeartbeatInterval(s.HeartbeatInterval),
		kgo.RebalanceTimeout(s.RebalanceTimeout),
	)
}
