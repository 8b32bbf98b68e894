package rabbitmq

import (
	"fmt"
	"net/url"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

// settings is the parsed, validated driver configuration.
type settings struct {
	url               string // with credentials; never printed
	host              string // host:port, for messages
	vhost             string
	user              string
	prefetch          int
	publishChannels   int
	confirmWindow     int
	confirms          bool
	publishTimeout    time.Duration
	persistent        bool
	exchange          string // "" = one fanout exchange per topic
	queueType         string // classic | quorum
	deadLetter        bool
	deliveryLimit     int
	maxPayload        int
	reconnectMaxDelay time.Duration
}

var options = []string{
	"prefetch", "publish_channels", "confirm_window", "publisher_confirms", "publish_timeout", "persistent",
	"exchange", "queue_type", "dead_letter", "delivery_limit", "max_payload_bytes", "reconnect_max_interval",
}

func parseSettings(cfg sdk.Config) (settings, error) {
	if err := cfg.CheckOptions(options...); err != nil {
		return settings{}, err
	}
	if cfg.URL == "" {
		return settings{}, cfg.Invalid("url", nil,
			"the rabbitmq driver needs the broker's URL, such as amqp://guest:guest@127.0.0.1:5672/ (set url: or MESSAGING_URL)")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
		return settings{}, cfg.Invalid("url", nil, "want amqp://user:password@host:port/vhost or amqps://..., got %q", sdk.RedactURL(cfg.URL))
	}
	s := settings{url: cfg.URL, host: u.Host, vhost: "/", user: u.User.Username()}
	if p := u.Path; len(p) > 1 {
		s.vhost = p[1:]
	}
	if s.user == "" {
		s.user = "guest"
	}
	ints := []struct {
		key  string
		dst  *int
		def  int
		min  int
		hint string
	}{
		{"prefetch", &s.prefetch, 100, 1, "messages the broker sends ahead of acks, per consumer"},
		{"publish_channels", &s.publishChannels, 8, 1, "long-lived publish channels in the pool"},
		{"confirm_window", &s.confirmWindow, 256, 1, "unconfirmed publishes in flight per Publish call"},
		{"delivery_limit", &s.deliveryLimit, 0, 0, "redeliveries before a quorum queue dead-letters a message"},
		{"max_payload_bytes", &s.maxPayload, 16 << 20, 1, "largest payload accepted"},
	}
	for _, o := range ints {
		if *o.dst, err = cfg.OptionInt(o.key, o.def); err != nil {
			return settings{}, err
		}
		if *o.dst < o.min {
			return settings{}, cfg.Invalid("options."+o.key, nil, "must be at least %d (%s), got %d", o.min, o.hint, *o.dst)
		}
	}
	if s.confirms, err = cfg.OptionBool("publisher_confirms", true); err != nil {
		return settings{}, err
	}
	if s.persistent, err = cfg.OptionBool("persistent", true); err != nil {
		return settings{}, err
	}
	if s.deadLetter, err = cfg.OptionBool("dead_letter", false); err != nil {
		return settings{}, err
	}
	if s.publishTimeout, err = cfg.OptionDuration("publish_timeout", 30*time.Second); err != nil {
		return settings{}, err
	}
	if s.reconnectMaxDelay, err = cfg.OptionDuration("reconnect_max_interval", 5*time.Second); err != nil {
		return settings{}, err
	}
	s.exchange = cfg.OptionString("exchange", "")
	s.queueType = cfg.OptionString("queue_type", "classic")
	switch s.queueType {
	case "classic", "quorum":
	default:
		return settings{}, cfg.Invalid("options.queue_type", nil, "want classic or quorum, got %q", s.queueType)
	}
	if s.deliveryLimit > 0 && s.queueType != "quorum" {
		return settings{}, cfg.Invalid("options.delivery_limit", nil, "needs queue_type: quorum (classic queues do not count deliveries)")
	}
	return s, nil
}

// where names the broker in errors: host and vhost, never the password.
func (s settings) where() string {
	return fmt.Sprintf("%s (vhost %q, user %q)", s.host, s.vhost, s.user)
}
