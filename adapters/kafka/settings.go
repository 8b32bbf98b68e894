package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/msgkit/msgkit/sdk"
)

type settings struct {
	brokers     []string
	clientID    string
	partitions  int32
	replication int16
	create      bool
	startOldest bool
	idempotent  bool
	maxPayload  int
	pubTimeout  time.Duration
	nackDelay   time.Duration
	session     time.Duration
	heartbeat   time.Duration
	rebalance   time.Duration
	fetchWait   time.Duration

	base []kgo.Opt // the caller's client's options (New), in place of brokers, TLS and SASL

	tls     *tls.Config
	sasl    string // mechanism, "" for none
	user    string
	passwrd string // never printed; named so no format verb picks it up by accident
}

var options = []string{
	"brokers", "version", "client_id", "partitions", "replication_factor", "create_topics",
	"initial_offset", "idempotent", "max_payload_bytes", "publish_timeout", "nack_delay",
	"session_timeout", "heartbeat_interval", "rebalance_timeout", "fetch_max_wait",
	"tls", "tls_ca_file", "tls_cert_file", "tls_key_file", "tls_server_name", "tls_insecure_skip_verify",
	"sasl_mechanism", "sasl_user", "sasl_password",
}

const urlHelp = "want kafka://host:port[,host:port...] (or user:password@ before the hosts for SASL), such as kafka://127.0.0.1:9092"

func parseSettings(cfg sdk.Config) (settings, error) {
	if err := cfg.CheckOptions(options...); err != nil {
		return settings{}, err
	}
	s := settings{clientID: cfg.OptionString("client_id", "msgkit")}
	if err := s.parseBrokers(cfg); err != nil {
		return settings{}, err
	}
	var err error
	if err := checkVersion(cfg); err != nil {
		return settings{}, err
	}
	ints := []struct {
		key      string
		def, min int
		what     string
	}{
		{"partitions", 3, 1, "partitions of a topic the driver creates"},
		{"replication_factor", -1, -1, "replicas of a topic the driver creates (-1: the broker's default)"},
		{"max_payload_bytes", 1000000, 1, "largest payload; keep it below the broker's message.max.bytes"},
	}
	vals := make([]int, len(ints))
	for i, n := range ints {
		if vals[i], err = cfg.OptionInt(n.key, n.def); err != nil {
			return settings{}, err
		}
		if vals[i] < n.min || vals[i] == 0 {
			return settings{}, cfg.Invalid("options."+n.key, nil, "%s: want %d or more (not 0), got %d", n.what, n.min, vals[i])
		}
	}
	s.partitions, s.replication, s.maxPayload = int32(vals[0]), int16(vals[1]), vals[2]
	if s.create, err = cfg.OptionBool("create_topics", true); err != nil {
		return settings{}, err
	}
	if s.idempotent, err = cfg.OptionBool("idempotent", true); err != nil {
		return settings{}, err
	}
	start := "oldest"
	if cfg.GroupStart() == sdk.GroupStartLatest {
		start = "newest"
	}
	switch o := cfg.OptionString("initial_offset", start); o {
	case "oldest":
		s.startOldest = true
	case "newest":
	default:
		return settings{}, cfg.Invalid("options.initial_offset", nil, "want oldest (a new group reads the topic from the start) or newest (only what is published after it joins), got %q", o)
	}
	durations := []struct {
		key string
		dst *time.Duration
		def time.Duration
	}{
		{"publish_timeout", &s.pubTimeout, 30 * time.Second},
		{"nack_delay", &s.nackDelay, 100 * time.Millisecond},
		{"session_timeout", &s.session, 10 * time.Second},
		{"heartbeat_interval", &s.heartbeat, 3 * time.Second},
		{"rebalance_timeout", &s.rebalance, 60 * time.Second},
		{"fetch_max_wait", &s.fetchWait, 500 * time.Millisecond},
	}
	for _, d := range durations {
		if *d.dst, err = cfg.OptionDuration(d.key, d.def); err != nil {
			return settings{}, err
		}
		if *d.dst <= 0 {
			return settings{}, cfg.Invalid("options."+d.key, nil, "must be positive, got %v", *d.dst)
		}
	}
	if s.fetchWait < time.Millisecond {
		return settings{}, cfg.Invalid("options.fetch_max_wait", nil, "want at least 1ms (how long the broker may hold a fetch while it has nothing new), got %v", s.fetchWait)
	}
	if s.heartbeat >= s.session {
		return settings{}, cfg.Invalid("options.heartbeat_interval", nil, "must be shorter than session_timeout (%v), got %v; Kafka advises a third of it", s.session, s.heartbeat)
	}
	if err := s.parseTLS(cfg); err != nil {
		return settings{}, err
	}
	if err := s.parseSASL(cfg); err != nil {
		return settings{}, err
	}
	return s, nil
}

// parseBrokers reads kafka://[user:password@]host:port,host:port or the
// brokers option. net/url cannot parse a host list, hence the hand parsing.
func (s *settings) parseBrokers(cfg sdk.Config) error {
	list := cfg.OptionString("brokers", "")
	if cfg.URL != "" {
		if list != "" {
			return cfg.Invalid("options.brokers", nil, "set the brokers in url or in options.brokers, not both")
		}
		rest, ok := strings.CutPrefix(cfg.URL, "kafka://")
		if !ok {
			return cfg.Invalid("url", nil, "%s; the URL does not start with kafka://", urlHelp)
		}
		rest, _, _ = strings.Cut(rest, "/")
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			user, pass, _ := strings.Cut(rest[:at], ":")
			s.user, s.passwrd = user, pass
			rest = rest[at+1:]
		}
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

func (s *settings) parseTLS(cfg sdk.Config) error {
	on, err := cfg.OptionBool("tls", false)
	if err != nil {
		return err
	}
	ca, cert, key := cfg.OptionString("tls_ca_file", ""), cfg.OptionString("tls_cert_file", ""), cfg.OptionString("tls_key_file", "")
	skip, err := cfg.OptionBool("tls_insecure_skip_verify", false)
	if err != nil {
		return err
	}
	if !on {
		if ca != "" || cert != "" || key != "" || skip {
			return cfg.Invalid("options.tls", nil, "tls_* options are set but tls is not true; set tls: true to connect with TLS")
		}
		return nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.OptionString("tls_server_name", ""), InsecureSkipVerify: skip} //nolint:gosec // opt-in, documented
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return cfg.Invalid("options.tls_ca_file", err, "cannot read the CA bundle")
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return cfg.Invalid("options.tls_ca_file", nil, "%s holds no PEM certificate", ca)
		}
	}
	if (cert == "") != (key == "") {
		return cfg.Invalid("options.tls_cert_file", nil, "a client certificate needs both tls_cert_file and tls_key_file")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return cfg.Invalid("options.tls_cert_file", err, "cannot load the client certificate and key")
		}
		c.Certificates = []tls.Certificate{pair}
	}
	s.tls = c
	return nil
}

func (s *settings) parseSASL(cfg sdk.Config) error {
	if u := cfg.OptionString("sasl_user", ""); u != "" {
		if s.user != "" {
			return cfg.Invalid("options.sasl_user", nil, "the user is set in both url and options.sasl_user; keep one")
		}
		s.user = u
	}
	if p := cfg.OptionString("sasl_password", ""); p != "" {
		s.passwrd = p
	}
	mech := strings.ToUpper(cfg.OptionString("sasl_mechanism", ""))
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
func checkVersion(cfg sdk.Config) error {
	v := cfg.OptionString("version", "3.6.0")
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
		kgo.ProducerBatchMaxBytes(int32(s.maxPayload+64<<10)),
		kgo.ProduceRequestTimeout(s.pubTimeout),
		// A topic the cluster does not know fails its records after a few
		// quick metadata checks instead of waiting out the publish timeout:
		// the driver then checks (or creates) the topic and tries again.
		kgo.UnknownTopicRetries(3),
		kgo.MetadataMinAge(200*time.Millisecond),
	)
	if !s.idempotent {
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
// only for records marked after an ack.
func (s settings) consumerOptions(topic, group string, oldest bool) []kgo.Opt {
	start := kgo.NewOffset().AtEnd()
	if oldest {
		start = kgo.NewOffset().AtStart()
	}
	return append(s.clientOptions(),
		kgo.ConsumeTopics(topic),
		kgo.ConsumerGroup(group),
		kgo.ConsumeResetOffset(start),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.FetchMaxWait(s.fetchWait),
		kgo.FetchMaxBytes(int32(max(50<<20, s.maxPayload+64<<10))),
		kgo.SessionTimeout(s.session),
		kgo.HeartbeatInterval(s.heartbeat),
		kgo.RebalanceTimeout(s.rebalance),
	)
}
