package awsq

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	bodyfix "github.com/msgkit/msgkit/internal/awshttp"
	"github.com/msgkit/msgkit/sdk"
)

// Settings are the options both drivers understand.
type Settings struct {
	Driver       string
	Endpoint     string // "" for AWS's own endpoints
	Region       string
	accessKey    string
	secretKey    string // never printed
	sessionToken string // never printed
	Prefix       string // prepended to every queue and topic name

	Create           bool
	FIFO             bool
	Visibility       time.Duration
	Wait             time.Duration // long polling
	NackDelay        time.Duration
	MaxReceiveCount  int // > 0 adds a dead-letter queue with this redrive limit
	PublishTimeout   time.Duration
	SendersPerTarget int
	AckFlush         time.Duration
}

// Options lists the option names; a driver may add its own.
var Options = []string{"endpoint", "region", "access_key_id", "secret_access_key", "session_token", "prefix",
	"create", "fifo", "visibility_timeout", "wait_time", "nack_delay", "max_receive_count", "publish_timeout",
	"senders", "ack_flush_interval"}

// ParseSettings reads the shared options. The URL, when set, is the
// endpoint (http://127.0.0.1:4100 for an emulator); without it the SDK's
// endpoint for the region is used.
func ParseSettings(cfg sdk.Config, driver string, extra ...string) (Settings, error) {
	if err := cfg.CheckOptions(append(append([]string{}, Options...), extra...)...); err != nil {
		return Settings{}, err
	}
	s := Settings{Driver: driver, Endpoint: cfg.OptionString("endpoint", ""), Region: cfg.OptionString("region", ""),
		accessKey: cfg.OptionString("access_key_id", ""), secretKey: cfg.OptionString("secret_access_key", ""),
		sessionToken: cfg.OptionString("session_token", ""), Prefix: cfg.OptionString("prefix", "")}
	if cfg.URL != "" {
		if s.Endpoint != "" {
			return Settings{}, cfg.Invalid("options.endpoint", nil, "set the endpoint in url or in options.endpoint, not both")
		}
		s.Endpoint = cfg.URL
	}
	if s.Endpoint != "" {
		u, err := url.Parse(s.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Settings{}, cfg.Invalid("url", err, "the %s endpoint must be an http:// or https:// URL such as http://127.0.0.1:4100, got %q; leave it empty for AWS itself", driver, sdk.RedactURL(s.Endpoint))
		}
		if u.User != nil {
			return Settings{}, cfg.Invalid("url", nil, "put AWS credentials in access_key_id and secret_access_key (or the environment), not in the endpoint URL")
		}
	}
	if (s.accessKey == "") != (s.secretKey == "") {
		return Settings{}, cfg.Invalid("options.access_key_id", nil, "static credentials need both access_key_id and secret_access_key; set neither to use the default AWS credential chain")
	}
	if s.sessionToken != "" && s.accessKey == "" {
		return Settings{}, cfg.Invalid("options.session_token", nil, "a session token needs access_key_id and secret_access_key")
	}
	if p := s.Prefix; p != "" && QueueName(p, "", false) != p {
		return Settings{}, cfg.Invalid("options.prefix", nil, "may hold only letters, digits, '-' and '_', got %q", p)
	}
	var err error
	if s.Create, err = cfg.OptionBool("create", true); err != nil {
		return Settings{}, err
	}
	if s.FIFO, err = cfg.OptionBool("fifo", false); err != nil {
		return Settings{}, err
	}
	if s.MaxReceiveCount, err = cfg.OptionInt("max_receive_count", 0); err != nil {
		return Settings{}, err
	}
	if s.MaxReceiveCount < 0 || s.MaxReceiveCount > 1000 {
		return Settings{}, cfg.Invalid("options.max_receive_count", nil, "want 0 (no dead-letter queue) or 1..1000 receives before SQS moves a message to <queue>-dlq, got %d", s.MaxReceiveCount)
	}
	if s.SendersPerTarget, err = cfg.OptionInt("senders", 8); err != nil {
		return Settings{}, err
	}
	if s.SendersPerTarget < 1 {
		return Settings{}, cfg.Invalid("options.senders", nil, "want at least 1 concurrent batch send per queue or topic, got %d", s.SendersPerTarget)
	}
	durations := []struct {
		key      string
		dst      *time.Duration
		def, min time.Duration
		max      time.Duration
		what     string
	}{
		{"visibility_timeout", &s.Visibility, 30 * time.Second, time.Second, 12 * time.Hour, "whole seconds from 1s to 12h"},
		{"wait_time", &s.Wait, 20 * time.Second, time.Second, 20 * time.Second, "long-polling wait, whole seconds from 1s to 20s"},
		{"nack_delay", &s.NackDelay, 0, 0, 12 * time.Hour, "whole seconds from 0s to 12h"},
		{"publish_timeout", &s.PublishTimeout, 30 * time.Second, time.Millisecond, 24 * time.Hour, "positive"},
		{"ack_flush_interval", &s.AckFlush, 20 * time.Millisecond, time.Millisecond, time.Minute, "from 1ms to 1m"},
	}
	for _, d := range durations {
		if *d.dst, err = cfg.OptionDuration(d.key, d.def); err != nil {
			return Settings{}, err
		}
		v := *d.dst
		if v < d.min || v > d.max || (strings.Contains(d.what, "whole seconds") && v%time.Second != 0) {
			return Settings{}, cfg.Invalid("options."+d.key, nil, "want %s, got %v", d.what, v)
		}
	}
	return s, nil
}

// AWSConfig builds the SDK configuration: static credentials when given,
// else the default chain (environment, shared files, SSO, instance role).
// The HTTP transport is the transport's own, so that Close can drop its
// idle connections (and their goroutines) with closeIdle.
func (s Settings) AWSConfig(ctx context.Context) (c aws.Config, closeIdle func(), err error) {
	var opts []func(*awsconfig.LoadOptions) error
	if s.Region != "" {
		opts = append(opts, awsconfig.WithRegion(s.Region))
	}
	if s.accessKey != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(s.accessKey, s.secretKey, s.sessionToken)))
	}
	c, err = awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, nil, fmt.Errorf("%s: load the AWS configuration: %w", s.Driver, err)
	}
	if c.Region == "" {
		return aws.Config{}, nil, &sdk.ConfigError{Key: "options.region", Reason: "no AWS region: set options.region, or AWS_REGION in the environment"}
	}
	// The loaded client carries what the environment asked for (a CA bundle,
	// proxies); take its transport and keep a handle on it.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if bc, ok := c.HTTPClient.(*awshttp.BuildableClient); ok {
		tr = bc.GetTransport()
	}
	tr.MaxIdleConnsPerHost = 64 // concurrent long polls, batch sends and deletes to one endpoint
	// DetachedBody: without it about one receive in a hundred is retried and
	// its first attempt's messages stay invisible for a visibility timeout.
	c.HTTPClient = &http.Client{Transport: bodyfix.DetachedBody(tr)}
	return c, tr.CloseIdleConnections, nil
}

// Where names the endpoint and region for errors and logs, never a secret.
func (s Settings) Where(region string) string {
	if s.Endpoint != "" {
		return fmt.Sprintf("%s at %s (region %s)", s.Driver, sdk.RedactURL(s.Endpoint), region)
	}
	return fmt.Sprintf("%s in %s", s.Driver, region)
}

// QueueName maps a topic (and group) to a valid SQS queue or SNS topic name:
// letters, digits, '-' and '_' (others become '-'), at most 80 characters
// including the ".fifo" suffix FIFO queues need. Long names are shortened
// with a hash of the whole so distinct names stay distinct.
func QueueName(topic, group string, fifo bool) string {
	name := topic
	if group != "" {
		name += "-" + group
	}
	var b strings.Builder
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	out := b.String()
	limit := 80
	if fifo {
		limit -= len(".fifo")
	}
	limit -= len("-dlq") // room for the dead-letter queue's suffix
	if len(out) > limit {
		out = out[:limit-9] + "-" + shortHash(name)
	}
	if fifo {
		out += ".fifo"
	}
	return out
}

func shortHash(s string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return fmt.Sprintf("%08x", h)
}
