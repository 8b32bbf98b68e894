package awsq

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	bodyfix "github.com/msgkit/msgkit/internal/awshttp"
	"github.com/msgkit/msgkit/sdk"
)

// Options tune an SQS or SNS transport. They are the keys of a config
// file's options section for these drivers, as fields, except the region
// and the credentials, which a caller of New sets in its own aws.Config:
// Open fills them from the config, and New takes them from the caller. A
// zero field takes its default.
type Options struct {
	// Endpoint replaces AWS's endpoint, for an emulator or a proxy, such
	// as http://127.0.0.1:4100.
	Endpoint string `option:"endpoint"`
	// AllowHTTP lets an http:// endpoint be elsewhere than on this machine
	// (requests and messages would cross the network unencrypted).
	AllowHTTP bool `option:"allow_http"`
	// Prefix is prepended to every queue and topic name: letters, digits,
	// '-' and '_'.
	Prefix string `option:"prefix"`
	// NoCreate uses only queues and topics that exist (create: false).
	NoCreate bool `option:"!create"`
	// FIFO uses FIFO queues, which keep the order of an ordering key (SQS
	// only).
	FIFO bool `option:"fifo"`
	// VisibilityTimeout is how long a received message stays hidden before
	// it is handed out again (default 30s, whole seconds up to 12h): the
	// lease of an unacked message.
	VisibilityTimeout time.Duration `option:"visibility_timeout" default:"30s" min:"1s" max:"12h"`
	// WaitTime is the long-polling wait of one receive (default 20s, whole
	// seconds up to 20s).
	WaitTime time.Duration `option:"wait_time" default:"20s" min:"1s" max:"20s"`
	// NackDelay is the least time a nacked message stays hidden (whole
	// seconds up to 12h).
	NackDelay time.Duration `option:"nack_delay" min:"0s" max:"12h"`
	// MaxReceiveCount, when above 0, gives each queue a dead-letter queue,
	// <queue>-dlq, to which SQS moves a message received this many times.
	MaxReceiveCount int `option:"max_receive_count" min:"0" max:"1000" help:"0 for no dead-letter queue, or 1..1000 receives before SQS moves a message to <queue>-dlq"`
	// PublishTimeout bounds a Publish whose context has no deadline
	// (default 30s).
	PublishTimeout time.Duration `option:"publish_timeout" default:"30s" min:"1ms" max:"24h"`
	// Senders is how many batch sends run at once per queue or topic
	// (default 8).
	Senders int `option:"senders" default:"8" min:"1" help:"concurrent batch sends per queue or topic"`
	// Receivers is how many long polls a subscription keeps in flight at
	// once (default 4): one poll returns at most ten messages, so the next
	// is on its way while one is handled. Each idle poll is a billed
	// receive every wait_time.
	Receivers int `option:"receivers" default:"4" min:"1" max:"64" help:"concurrent long polls per subscription"`
	// AckFlushInterval is how long acks wait to fill a batch of ten
	// deletes (default 20ms).
	AckFlushInterval time.Duration `option:"ack_flush_interval" default:"20ms" min:"1ms" max:"1m"`
}

// check holds what the tags cannot say; cfg names where it was set.
func (o Options) check(cfg sdk.Config, driver string) error {
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"visibility_timeout", o.VisibilityTimeout}, {"wait_time", o.WaitTime}, {"nack_delay", o.NackDelay}} {
		if d.v%time.Second != 0 {
			return cfg.Invalid("options."+d.key, nil, "SQS counts it in whole seconds, got %v", d.v)
		}
	}
	if o.Endpoint != "" {
		u, err := sdk.ParseURL(o.Endpoint)
		if err != nil {
			return cfg.Invalid("url", nil, "%v; got %q", err, sdk.RedactURL(o.Endpoint))
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg.Invalid("url", nil, "the %s endpoint must be an http:// or https:// URL such as http://127.0.0.1:4100, got %q; leave it empty for AWS itself", driver, sdk.RedactURL(o.Endpoint))
		}
		if u.User != nil {
			return cfg.Invalid("url", nil, "put AWS credentials in access_key_id and secret_access_key (or the environment), not in the endpoint URL")
		}
		if u.Scheme == "http" && !o.AllowHTTP && !isLoopback(u.Hostname()) {
			return cfg.Invalid("url", nil, "the %s endpoint %s is http:// on another machine: requests and messages would cross the network unencrypted; use https://, or set allow_http: true on a network you trust",
				driver, u.Host)
		}
	}
	if p := o.Prefix; p != "" && QueueName(p, "", false) != p {
		return cfg.Invalid("options.prefix", nil, "may hold only letters, digits, '-' and '_', got %q", p)
	}
	if o.FIFO && driver == "sns" {
		return cfg.Invalid("options.fifo", nil, "the sns driver does not support FIFO topics yet; for per-key order use the sqs driver with fifo: true")
	}
	return nil
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// credentials are the options that say who Open connects as, and where;
// New takes the caller's aws.Config instead.
type credentials struct {
	Region       string `option:"region"`
	AccessKey    string `option:"access_key_id"`
	SecretKey    string `option:"secret_access_key"` // never printed
	SessionToken string `option:"session_token"`     // never printed
	// RoleARN is a role to assume with the credentials above (or the
	// default chain's); the role's temporary credentials sign every call.
	RoleARN         string `option:"role_arn"`
	RoleSessionName string `option:"role_session_name" default:"msgkit"`
	RoleExternalID  string `option:"role_external_id"` // never printed
}

// Settings are the validated configuration of a transport.
type Settings struct {
	Options
	Driver string
	creds  credentials
	tls    *tls.Config // the tls_* options (Open only); nil: the SDK's defaults
}

// NewSettings completes and checks o, as a driver's New receives it.
func NewSettings(o Options, driver string) (Settings, error) {
	if err := sdk.FillOptions(driver, &o); err != nil {
		return Settings{}, err
	}
	if err := o.check(sdk.Config{}, driver); err != nil {
		return Settings{}, err
	}
	return Settings{Options: o, Driver: driver}, nil
}

// ParseSettings reads the options. The URL, when set, is the endpoint
// (http://127.0.0.1:4100 for an emulator); without it the SDK's endpoint
// for the region is used.
func ParseSettings(cfg sdk.Config, driver string) (Settings, error) {
	s := Settings{Driver: driver}
	var to sdk.TLSOptions
	if err := cfg.OptionsSection().Decode(&s.Options, &s.creds, &to); err != nil {
		return Settings{}, err
	}
	if cfg.URL != "" {
		if s.Endpoint != "" {
			return Settings{}, cfg.Invalid("options.endpoint", nil, "set the endpoint in url or in options.endpoint, not both")
		}
		s.Endpoint = cfg.URL
	}
	if err := s.check(cfg, driver); err != nil {
		return Settings{}, err
	}
	if c := s.creds; (c.AccessKey == "") != (c.SecretKey == "") {
		return Settings{}, cfg.Invalid("options.access_key_id", nil, "static credentials need both access_key_id and secret_access_key; set neither to use the default AWS credential chain")
	}
	if c := s.creds; c.SessionToken != "" && c.AccessKey == "" {
		return Settings{}, cfg.Invalid("options.session_token", nil, "a session token needs access_key_id and secret_access_key")
	}
	if err := s.creds.checkRole(cfg); err != nil {
		return Settings{}, err
	}
	// AWS's own endpoints are https://; a custom one says by its scheme.
	https := s.Endpoint == "" || strings.HasPrefix(strings.ToLower(s.Endpoint), "https://")
	tc, err := to.ClientConfig(cfg, &https, "https://")
	if err != nil {
		return Settings{}, err
	}
	s.tls = tc
	return s, nil
}

func (c credentials) checkRole(cfg sdk.Config) error {
	if c.RoleARN == "" {
		if c.RoleExternalID != "" {
			return cfg.Invalid("options.role_external_id", nil, "an external id is used only to assume a role; set role_arn too")
		}
		return nil
	}
	// arn:PARTITION:iam::ACCOUNT:role/NAME
	parts := strings.SplitN(c.RoleARN, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "iam" || !strings.HasPrefix(parts[5], "role/") {
		return cfg.Invalid("options.role_arn", nil, "want a role's ARN, such as arn:aws:iam::123456789012:role/orders-publisher, got %q", c.RoleARN)
	}
	if n := len(c.RoleSessionName); n < 2 || n > 64 || strings.Trim(c.RoleSessionName, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@-_") != "" {
		return cfg.Invalid("options.role_session_name", nil, "want 2 to 64 letters, digits or +=,.@-_ (AWS's rule), got %q", c.RoleSessionName)
	}
	return nil
}

// AWSConfig builds the SDK configuration: static credentials when given,
// else the default chain (environment, shared files, SSO, instance role).
// The HTTP transport is the transport's own, so that Close can end its
// connections (and their goroutines) with closeIdle: at once where idle,
// and once no request is in flight for the others.
func (s Settings) AWSConfig(ctx context.Context) (c aws.Config, closeIdle func(), err error) {
	var opts []func(*awsconfig.LoadOptions) error
	if s.creds.Region != "" {
		opts = append(opts, awsconfig.WithRegion(s.creds.Region))
	}
	if c := s.creds; c.AccessKey != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(awscreds.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, c.SessionToken)))
	}
	c, err = awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, nil, fmt.Errorf("%s: load the AWS configuration: %w", s.Driver, err)
	}
	if c.Region == "" {
		return aws.Config{}, nil, &sdk.ConfigError{Key: "options.region", Reason: "no AWS region: set options.region, or AWS_REGION in the environment"}
	}
	if r := s.creds; r.RoleARN != "" {
		// STS is called as the environment configures it (its endpoint,
		// AWS_ENDPOINT_URL_STS, its CA), not through the tls_* options,
		// which are for the SQS or SNS endpoint.
		c.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(c), r.RoleARN,
			func(o *stscreds.AssumeRoleOptions) {
				o.RoleSessionName = r.RoleSessionName
				if r.RoleExternalID != "" {
					o.ExternalID = aws.String(r.RoleExternalID)
				}
			}))
	}
	// The loaded client carries what the environment asked for (a CA bundle,
	// proxies); take its transport and keep a handle on it.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if bc, ok := c.HTTPClient.(*awshttp.BuildableClient); ok {
		tr = bc.GetTransport()
	}
	if s.tls != nil {
		tr.TLSClientConfig = s.tls.Clone()
	}
	tr.MaxIdleConnsPerHost = 64 // concurrent long polls, batch sends and deletes to one endpoint
	conns := new(connections)
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	tr.DialContext = conns.dialer(dial)
	// DetachedBody: without it about one receive in a hundred is retried and
	// its first attempt's messages stay invisible for a visibility timeout.
	c.HTTPClient = &http.Client{Transport: conns.roundTripper(bodyfix.DetachedBody(tr))}
	return c, func() { tr.CloseIdleConnections(); conns.close() }, nil
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
