package rabbitmq

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

// Options tune a RabbitMQ transport. They are the keys of a config file's
// options section for this driver, as fields: Open fills them from the
// config, and New takes them from the caller. A zero field takes its
// default.
type Options struct {
	// Prefetch is how many messages the broker sends a consumer ahead of
	// its acks (default 100).
	Prefetch int `option:"prefetch" default:"100" min:"1" help:"messages the broker sends ahead of acks, per consumer"`
	// PublishChannels is the size of the pool of long-lived publish
	// channels (default 8).
	PublishChannels int `option:"publish_channels" default:"8" min:"1" help:"long-lived publish channels in the pool"`
	// ConfirmWindow is how many unconfirmed publishes one Publish call
	// keeps in flight (default 256).
	ConfirmWindow int `option:"confirm_window" default:"256" min:"1" help:"unconfirmed publishes in flight per Publish call"`
	// NoConfirms publishes without publisher confirms: faster, and a
	// message the broker drops is not reported (publisher_confirms: false).
	NoConfirms bool `option:"!publisher_confirms"`
	// PublishTimeout bounds a Publish whose context has no deadline
	// (default 30s).
	PublishTimeout time.Duration `option:"publish_timeout" default:"30s" min:"1ms"`
	// Transient publishes messages that a broker restart loses
	// (persistent: false).
	Transient bool `option:"!persistent"`
	// Exchange, when set, is one topic exchange shared by every topic, with
	// the topic as routing key; by default each topic has its own fanout
	// exchange.
	Exchange string `option:"exchange"`
	// QueueType is the type of the queues the driver declares: classic
	// (default) or quorum.
	QueueType string `option:"queue_type" default:"classic" oneof:"classic|quorum" help:"quorum queues are replicated across a cluster"`
	// DeadLetter gives each group queue a broker-side dead-letter queue.
	DeadLetter bool `option:"dead_letter"`
	// DeliveryLimit is how many redeliveries a quorum queue allows before
	// it dead-letters a message (0: the broker's default).
	DeliveryLimit int `option:"delivery_limit" min:"0" help:"redeliveries before a quorum queue dead-letters a message"`
	// WireFormat is how metadata headers are named: msgkit (the metadata
	// keys as they are: ce-type, correlation-id...) or cloudevents (the
	// CloudEvents AMQP binding's binary mode: cloudEvents:type,
	// cloudEvents:specversion, cloudEvents:id...), for consumers using a
	// CloudEvents SDK. Both are read either way.
	WireFormat string `option:"wire_format" default:"msgkit" oneof:"msgkit|cloudevents" help:"cloudevents: headers follow the CloudEvents AMQP binding (cloudEvents:*)"`
	// NoDeclare (declare: false) uses exchanges and queues the platform
	// declared, as they are: the driver checks they exist and never
	// declares, binds or deletes one.
	NoDeclare bool `option:"!declare"`
	// MaxPayloadBytes is the largest payload accepted (default 16 MiB).
	MaxPayloadBytes int `option:"max_payload_bytes" default:"16777216" min:"1" help:"largest payload accepted"`
	// ReconnectMaxInterval caps the wait between redial attempts
	// (default 5s).
	ReconnectMaxInterval time.Duration `option:"reconnect_max_interval" default:"5s" min:"1ms"`
}

// check holds the options that depend on each other; cfg names where they
// were set.
func (o Options) check(cfg sdk.Config) error {
	if o.DeliveryLimit > 0 && o.QueueType != "quorum" {
		return cfg.Invalid("options.delivery_limit", nil, "needs queue_type: quorum (classic queues do not count deliveries)")
	}
	if o.NoDeclare {
		for _, k := range []string{"queue_type", "dead_letter", "delivery_limit"} {
			if cfg.OptionsSection().Has(k) {
				return cfg.Invalid("options."+k, nil, "describes the queues msgkit declares, and declare is false: the platform's queues are used as they are; remove %s, or set declare: true", k)
			}
		}
	}
	return nil
}

// settings is the validated configuration of a transport.
type settings struct {
	Options
	url   string // with credentials; never printed
	host  string // the nodes' host:port, comma-separated, for messages
	vhost string
	user  string
	tls   *tls.Config // nil for amqp://
	// dialURL is url for amqp091 with the first node only, and with TLS
	// amqp:// and a connection this driver already secured (see
	// dialOnce); nodes are the host:port of each node of the cluster, in
	// the URL's order, where the connections go.
	dialURL string
	nodes   []string
	// nodeServerName: TLS verifies each node by its own host name (the
	// URL's; tls_server_name was not set).
	nodeServerName bool
}

func parseSettings(cfg sdk.Config) (settings, error) {
	var (
		o  Options
		to sdk.TLSOptions // for the connection Open makes: New takes the caller's connection as it is
	)
	if err := cfg.OptionsSection().Decode(&o, &to); err != nil {
		return settings{}, err
	}
	if err := o.check(cfg); err != nil {
		return settings{}, err
	}
	if cfg.URL == "" {
		return settings{}, cfg.Invalid("url", nil,
			"the rabbitmq driver needs the broker's URL, such as amqp://guest:guest@127.0.0.1:5672/ (set url: or MESSAGING_URL)")
	}
	first, hosts := sdk.SplitURLHosts(cfg.URL)
	u, err := sdk.ParseURL(first)
	if err != nil {
		return settings{}, cfg.Invalid("url", nil, "%v; got %q", err, sdk.RedactURL(cfg.URL))
	}
	if (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
		return settings{}, cfg.Invalid("url", nil, "want amqp://user:password@host:port[,host:port...]/vhost or amqps://..., got %q", sdk.RedactURL(cfg.URL))
	}
	port := "5672"
	if u.Scheme == "amqps" {
		port = "5671"
	}
	var nodes []string
	for i, h := range hosts {
		if i == 0 {
			h = u.Host // as parsed: a bracketed IPv6 address stays one
		}
		host, p, err := net.SplitHostPort(h)
		if err != nil { // no port
			host, p = strings.Trim(h, "[]"), port
		}
		if host == "" {
			return settings{}, cfg.Invalid("url", nil, "node %d of the URL has no host; want host:port[,host:port...], got %q", i+1, sdk.RedactURL(cfg.URL))
		}
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return settings{}, cfg.Invalid("url", nil, "node %d of the URL has port %q, not a number; got %q", i+1, p, sdk.RedactURL(cfg.URL))
		}
		nodes = append(nodes, net.JoinHostPort(host, p))
	}
	s := settings{Options: o, url: cfg.URL, host: strings.Join(nodes, ","), nodes: nodes, vhost: "/", user: u.User.Username()}
	if p := u.Path; len(p) > 1 {
		s.vhost = p[1:]
	}
	if s.user == "" {
		s.user = "guest"
	}
	if s.tls, err = tlsConfig(cfg, u, to); err != nil {
		return settings{}, err
	}
	s.dialURL = first
	if s.tls != nil {
		_, rest, _ := strings.Cut(first, "://")
		s.dialURL = "amqp://" + rest
		s.nodeServerName = s.tls.ServerName == ""
	}
	return s, nil
}

// tlsConfig builds the connection's TLS configuration from the tls_*
// options; the amqps scheme decides whether there is one. amqp091's own URL
// query keys for TLS (cacertfile, certfile, keyfile,
// server_name_indication) are read as the matching option, so a URL
// written for other RabbitMQ clients keeps working; both at once is refused.
func tlsConfig(cfg sdk.Config, u *url.URL, to sdk.TLSOptions) (*tls.Config, error) {
	q := u.Query()
	for _, k := range []struct {
		query, option string
		field         *string
	}{
		{"cacertfile", "tls_ca_file", &to.CAFile},
		{"certfile", "tls_cert_file", &to.CertFile},
		{"keyfile", "tls_key_file", &to.KeyFile},
		{"server_name_indication", "tls_server_name", &to.ServerName},
	} {
		v := q.Get(k.query)
		if v == "" {
			continue
		}
		if *k.field != "" {
			return nil, cfg.Invalid("options."+k.option, nil, "the URL's %s= says the same; set one of them", k.query)
		}
		*k.field = v
	}
	amqps := u.Scheme == "amqps"
	tc, err := to.ClientConfig(cfg, &amqps, "amqps://")
	if err != nil || tc == nil {
		return nil, err
	}
	return tc, nil
}

// where names the broker in errors: host and vhost, never the password.
func (s settings) where() string {
	if s.user == "" { // the caller's own connection
		return fmt.Sprintf("%s (vhost %q)", s.host, s.vhost)
	}
	return fmt.Sprintf("%s (vhost %q, user %q)", s.host, s.vhost, s.user)
}
