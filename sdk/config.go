package sdk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultDriver is the driver used when Config.Driver is empty: the
// in-process broker of adapters/memory, which needs no server.
const DefaultDriver = "memory"

// Where a new consumer group starts (Config.NewGroupStart).
const (
	GroupStartOldest = "oldest"
	GroupStartLatest = "latest"
)

// GroupStart returns NewGroupStart, or GroupStartOldest when it is empty.
func (c Config) GroupStart() string {
	if c.NewGroupStart == "" {
		return GroupStartOldest
	}
	return c.NewGroupStart
}

// DefaultShutdownTimeout bounds Client.Close when its context has no deadline.
const DefaultShutdownTimeout = 30 * time.Second

// The default nack backoff: a message whose handler failed is delivered
// again after DefaultNackBackoff, then after twice as long each time it
// fails again, up to DefaultNackBackoffMax.
const (
	DefaultNackBackoff    = 100 * time.Millisecond
	DefaultNackBackoffMax = 30 * time.Second
)

// Environment variables read by LoadConfig. Each overrides the file.
const (
	EnvDriver          = "MESSAGING_DRIVER"           // driver
	EnvURL             = "MESSAGING_URL"              // url
	EnvShutdownTimeout = "MESSAGING_SHUTDOWN_TIMEOUT" // shutdown_timeout
	EnvNackBackoff     = "MESSAGING_NACK_BACKOFF"     // nack_backoff
	EnvNackBackoffMax  = "MESSAGING_NACK_BACKOFF_MAX" // nack_backoff_max
	EnvRequire         = "MESSAGING_REQUIRE"          // require, comma-separated
	EnvNewGroupStart   = "MESSAGING_NEW_GROUP_START"  // new_group_start
	// EnvOptionPrefix followed by an option name in upper case sets that
	// option: MESSAGING_OPT_PREFETCH=100 sets options.prefetch.
	EnvOptionPrefix = "MESSAGING_OPT_"
	// EnvMiddlewarePrefix does the same for the middleware section:
	// MESSAGING_MW_RETRY_ATTEMPTS=5 sets middleware.retry_attempts.
	EnvMiddlewarePrefix = "MESSAGING_MW_"
)

// Config selects and configures a driver. The zero value opens the
// in-process memory driver.
//
// In YAML:
//
//	driver: rabbitmq                  # default "memory"
//	url: amqp://guest:guest@127.0.0.1:5672/
//	shutdown_timeout: 30s             # default 30s
//	nack_backoff: 100ms               # first redelivery delay after a failure; 0 turns the backoff off
//	nack_backoff_max: 30s             # the longest it grows to
//	require: [consumer_groups]        # capabilities Open insists on
//	new_group_start: oldest           # where a new group starts, where the broker keeps history
//	options:                          # driver-specific, see docs/
//	  prefetch: 100
type Config struct {
	// Driver is the registered driver name: memory, rabbitmq, redis, kafka,
	// nats, sqs, sns. Empty means DefaultDriver.
	Driver string
	// URL locates the broker; its form is the driver's (amqp://, redis://,
	// kafka://host:port, nats://, an AWS endpoint). It may hold credentials: it is
	// redacted whenever the config is printed.
	URL string
	// ShutdownTimeout bounds Client.Close when the context passed to Close
	// has no deadline. Zero means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// NackBackoff is how long a message whose handler failed waits before
	// it is delivered again; each next failure doubles it, up to
	// NackBackoffMax. It holds back only that message (and the later ones
	// of its ordering key). Zero means DefaultNackBackoff; negative turns
	// the backoff off (nack_backoff: 0 in a file).
	NackBackoff time.Duration
	// NackBackoffMax caps NackBackoff's growth. Zero means
	// DefaultNackBackoffMax.
	NackBackoffMax time.Duration
	// NewGroupStart is where a group that did not exist starts, on every
	// driver that keeps history: GroupStartOldest (the default: nothing
	// published before the group existed is lost) or GroupStartLatest.
	// Drivers' own options (kafka initial_offset, redis and nats
	// new_group_start) override it. Brokers that keep no history
	// (RabbitMQ, SNS, the memory broker) start a group when it is created:
	// create it early with Client.EnsureGroup.
	NewGroupStart string
	// Require lists capabilities the service cannot do without (see
	// Requirement); Open fails, naming what is missing, when the driver
	// does not provide one. In a file: require: [consumer_groups,
	// ordering_per_key], or a comma-separated string.
	Require []Requirement
	// Options holds driver-specific settings by snake_case name. Drivers
	// reject names they do not know.
	Options map[string]string
	// Middleware holds the settings of the middleware stack (retry,
	// breaker, timeout...), read by middleware.FromConfig.
	Middleware map[string]string

	// sources remembers where each key was set, for error messages.
	sources map[string]string
	// app is the file's app: section, the service's own settings.
	app *yaml.Node
}

// App decodes the config file's app: section, the service's own settings
// kept in the same file, into v (with gopkg.in/yaml.v3 rules: exported
// fields, `yaml:"name"` tags). It is nil without an app: section; msgkit
// reads nothing in it.
func (c Config) App(v any) error {
	if c.app == nil {
		return nil
	}
	if err := c.app.Decode(v); err != nil {
		return &ConfigError{Key: "app", Source: c.Source("app"), Reason: "cannot be read into " + fmt.Sprintf("%T", v), Err: err}
	}
	return nil
}

// DriverName returns Driver, or DefaultDriver when it is empty.
func (c Config) DriverName() string {
	if c.Driver == "" {
		return DefaultDriver
	}
	return c.Driver
}

// String renders the config with secrets redacted.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "driver=%s", c.DriverName())
	if c.URL != "" {
		fmt.Fprintf(&b, " url=%s", RedactURL(c.URL))
	}
	for _, sec := range []struct {
		name   string
		values map[string]string
	}{{"options", c.Options}, {"middleware", c.Middleware}} {
		keys := make([]string, 0, len(sec.values))
		for k := range sec.values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := sec.values[k]
			if isSecretName(k) {
				v = "REDACTED"
			}
			fmt.Fprintf(&b, " %s.%s=%s", sec.name, k, v)
		}
	}
	return b.String()
}

// Source reports where key (for example "url" or "options.prefetch") was set:
// a file and line, an environment variable, or "" when set in code.
func (c Config) Source(key string) string { return c.sources[key] }

// checkNackBackoff refuses a nack_backoff above the longest the wait grows
// to (nack_backoff_max, or its default): every wait would be cut to it.
func (c Config) checkNackBackoff() error {
	initial, most := DefaultNackBackoff, DefaultNackBackoffMax
	if c.NackBackoff != 0 {
		initial = c.NackBackoff // below 0: off
	}
	if c.NackBackoffMax > 0 {
		most = c.NackBackoffMax
	}
	if initial <= most {
		return nil
	}
	what := "nack_backoff_max"
	if c.NackBackoffMax <= 0 {
		what = "nack_backoff_max's default"
	}
	return c.Invalid("nack_backoff", nil, "%v is above %s %v, the longest the wait grows to; raise nack_backoff_max or lower nack_backoff", initial, what, most)
}

// Invalid builds a *ConfigError for key, filled in with where the key was set.
// Drivers use it so that every config error names the key and its origin.
func (c Config) Invalid(key string, err error, format string, args ...any) *ConfigError {
	return &ConfigError{Key: key, Source: c.Source(key), Reason: fmt.Sprintf(format, args...), Err: err}
}

// CheckOptions returns a *ConfigError naming the first option that is not in
// known, listing the known ones. Drivers call it first in Open.
func (c Config) CheckOptions(known ...string) error { return c.OptionsSection().Check(known...) }

// OptionString returns option key, or def when it is not set.
func (c Config) OptionString(key, def string) string { return c.OptionsSection().String(key, def) }

// OptionInt returns option key as an integer, or def when it is not set.
func (c Config) OptionInt(key string, def int) (int, error) { return c.OptionsSection().Int(key, def) }

// OptionBool returns option key as a boolean, or def when it is not set.
func (c Config) OptionBool(key string, def bool) (bool, error) {
	return c.OptionsSection().Bool(key, def)
}

// OptionDuration returns option key as a duration ("500ms", "2s"), or def
// when it is not set.
func (c Config) OptionDuration(key string, def time.Duration) (time.Duration, error) {
	return c.OptionsSection().Duration(key, def)
}

// OptionsSection returns the driver options as a Section.
func (c Config) OptionsSection() Section {
	return Section{name: "options", owner: fmt.Sprintf("driver %q", c.DriverName()), values: c.Options, cfg: c}
}

// MiddlewareSection returns the middleware settings as a Section.
func (c Config) MiddlewareSection() Section {
	return Section{name: "middleware", owner: "the middleware section", values: c.Middleware, cfg: c}
}

// Section is one mapping of a config (options: or middleware:) with typed
// accessors whose errors name the key and where it was set.
type Section struct {
	name   string
	owner  string
	values map[string]string
	cfg    Config
}

// Check returns a *ConfigError naming the first key that is not in known,
// listing the known ones.
func (s Section) Check(known ...string) error {
	names := make([]string, 0, len(s.values))
	for k := range s.values {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !contains(known, k) {
			list := "none"
			if len(known) > 0 {
				sorted := append([]string(nil), known...)
				sort.Strings(sorted)
				list = strings.Join(sorted, ", ")
			}
			what := "option"
			if s.name == "middleware" {
				what = "setting"
			}
			return s.cfg.Invalid(s.name+"."+k, nil, "%s has no %s %q; its %ss are: %s", s.owner, what, k, what, list)
		}
	}
	return nil
}

// Has reports whether key is set.
func (s Section) Has(key string) bool {
	_, ok := s.values[key]
	return ok
}

// String returns key, or def when it is not set.
func (s Section) String(key, def string) string {
	if v, ok := s.values[key]; ok {
		return v
	}
	return def
}

// Int returns key as an integer, or def when it is not set.
func (s Section) Int(key string, def int) (int, error) {
	v, ok := s.values[key]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, s.cfg.Invalid(s.name+"."+key, nil, "want a whole number, got %q", v)
	}
	return n, nil
}

// Bool returns key as a boolean, or def when it is not set.
func (s Section) Bool(key string, def bool) (bool, error) {
	v, ok := s.values[key]
	if !ok {
		return def, nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return false, s.cfg.Invalid(s.name+"."+key, nil, "want true or false, got %q", v)
	}
	return b, nil
}

// Duration returns key as a duration ("500ms", "2s"), or def when it is not
// set.
func (s Section) Duration(key string, def time.Duration) (time.Duration, error) {
	v, ok := s.values[key]
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return 0, s.cfg.Invalid(s.name+"."+key, nil, "want a duration such as 500ms or 2s, got %q", v)
	}
	return d, nil
}

// LoadConfig reads a YAML config file, then applies the MESSAGING_*
// environment variables over it. An empty path reads the environment only.
func LoadConfig(path string) (Config, error) {
	var cfg Config
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, &ConfigError{Source: path, Reason: "cannot read the config file", Err: err}
		}
		cfg, err = ParseConfig(path, data)
		if err != nil {
			return Config{}, err
		}
	}
	if err := cfg.applyEnv(os.LookupEnv, os.Environ()); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// ParseConfig parses YAML config text; name (usually the file path) appears
// in error messages.
func ParseConfig(name string, data []byte) (Config, error) {
	cfg := Config{sources: map[string]string{}}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, nil // an empty file selects every default
		}
		return Config{}, &ConfigError{Source: name, Reason: "the file is not valid YAML", Err: err}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return Config{}, &ConfigError{Source: at(name, root), Reason: "the top level must be a mapping of keys such as driver: and url:"}
	}
	if err := uniqueKeys(name, "", root); err != nil {
		return Config{}, err
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		src := at(name, k)
		switch k.Value {
		case "driver", "url", "shutdown_timeout", "nack_backoff", "nack_backoff_max", "new_group_start":
			if v.Kind != yaml.ScalarNode {
				return Config{}, &ConfigError{Key: k.Value, Source: src, Reason: "want a single value, not a list or mapping"}
			}
			if err := cfg.set(k.Value, v.Value, src); err != nil {
				return Config{}, err
			}
		case "app":
			cfg.app = v
			cfg.noteSource("app", src)
		case "require":
			var names []string
			switch v.Kind {
			case yaml.ScalarNode:
				names = []string{v.Value}
			case yaml.SequenceNode:
				for _, item := range v.Content {
					names = append(names, item.Value)
				}
			default:
				return Config{}, &ConfigError{Key: k.Value, Source: src, Reason: "want a list of requirements, such as [consumer_groups, ordering_per_key]"}
			}
			if err := cfg.set("require", strings.Join(names, ","), src); err != nil {
				return Config{}, err
			}
		case "options", "middleware":
			if v.Kind != yaml.MappingNode {
				return Config{}, &ConfigError{Key: k.Value, Source: src, Reason: "want a mapping of names to values"}
			}
			if err := uniqueKeys(name, k.Value+".", v); err != nil {
				return Config{}, err
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				ok, ov := v.Content[j], v.Content[j+1]
				if ov.Kind != yaml.ScalarNode {
					return Config{}, &ConfigError{Key: k.Value + "." + ok.Value, Source: at(name, ok), Reason: "want a single value, not a list or mapping"}
				}
				cfg.setIn(k.Value, ok.Value, ov.Value, at(name, ok))
			}
		default:
			return Config{}, &ConfigError{Key: k.Value, Source: src,
				Reason: "unknown key; the top-level keys are driver, url, shutdown_timeout, nack_backoff, nack_backoff_max, new_group_start, require, options (driver-specific settings), middleware and app (the service's own settings)"}
		}
	}
	return cfg, nil
}

// uniqueKeys refuses a mapping that sets a key twice: YAML parsers keep
// one of the two values, and which one a reader took would be a guess.
func uniqueKeys(name, prefix string, m *yaml.Node) error {
	first := map[string]*yaml.Node{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if was, ok := first[k.Value]; ok {
			return &ConfigError{Key: prefix + k.Value, Source: at(name, k),
				Reason: fmt.Sprintf("set twice (also at line %d); keep one of them", was.Line)}
		}
		first[k.Value] = k
	}
	return nil
}

func at(name string, n *yaml.Node) string {
	if n == nil || n.Line == 0 {
		return name
	}
	return fmt.Sprintf("%s:%d", name, n.Line)
}

func (c *Config) set(key, value, source string) error {
	switch key {
	case "driver":
		c.Driver = strings.TrimSpace(value)
	case "url":
		c.URL = strings.TrimSpace(value)
	case "shutdown_timeout":
		d, err := time.ParseDuration(strings.TrimSpace(value))
		if err != nil || d <= 0 {
			return &ConfigError{Key: key, Source: source, Reason: fmt.Sprintf("want a positive duration such as 10s, got %q", value)}
		}
		c.ShutdownTimeout = d
	case "new_group_start":
		v := strings.TrimSpace(value)
		if v != GroupStartOldest && v != GroupStartLatest {
			return &ConfigError{Key: key, Source: source, Reason: fmt.Sprintf("want oldest (a new group receives what was published before it existed, where the broker keeps it) or latest, got %q", value)}
		}
		c.NewGroupStart = v
	case "require":
		rs, err := ParseRequirements(value)
		if err != nil {
			return &ConfigError{Key: key, Source: source, Reason: err.Error()}
		}
		c.Require = rs
	case "nack_backoff", "nack_backoff_max":
		v := strings.TrimSpace(value)
		d, err := time.ParseDuration(v)
		off := v == "0" || v == "off" || err == nil && d == 0 // 0s, 0ms: off too, not the default
		if off {
			d, err = -1, nil
		}
		if err != nil || (d < 0 && !off) {
			return &ConfigError{Key: key, Source: source, Reason: fmt.Sprintf("want a duration such as 100ms, or 0 (off), got %q", value)}
		}
		if key == "nack_backoff" {
			c.NackBackoff = d
		} else if d < 0 {
			return &ConfigError{Key: key, Source: source, Reason: fmt.Sprintf("want a positive duration such as 30s, got %q", value)}
		} else {
			c.NackBackoffMax = d
		}
	}
	c.noteSource(key, source)
	return nil
}

func (c *Config) setIn(section, name, value, source string) {
	m := &c.Options
	if section == "middleware" {
		m = &c.Middleware
	}
	if *m == nil {
		*m = map[string]string{}
	}
	(*m)[name] = value
	c.noteSource(section+"."+name, source)
}

func (c *Config) noteSource(key, source string) {
	if c.sources == nil {
		c.sources = map[string]string{}
	}
	c.sources[key] = source
}

func (c *Config) applyEnv(lookup func(string) (string, bool), environ []string) error {
	for env, key := range map[string]string{EnvDriver: "driver", EnvURL: "url", EnvShutdownTimeout: "shutdown_timeout", EnvNackBackoff: "nack_backoff", EnvNackBackoffMax: "nack_backoff_max", EnvRequire: "require", EnvNewGroupStart: "new_group_start"} {
		if v, ok := lookup(env); ok && v != "" {
			if err := c.set(key, v, "environment variable "+env); err != nil {
				return err
			}
		}
	}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		for prefix, section := range map[string]string{EnvOptionPrefix: "options", EnvMiddlewarePrefix: "middleware"} {
			if strings.HasPrefix(name, prefix) && len(name) > len(prefix) {
				c.setIn(section, strings.ToLower(strings.TrimPrefix(name, prefix)), value, "environment variable "+name)
			}
		}
	}
	return nil
}

// RedactURL returns raw with any password replaced by "xxxxx", for logs and
// errors. User information without a password is replaced whole: it may be
// a token (NATS reads nats://token@host as one). A value that does not
// parse as a URL is hidden entirely, since it may be a secret written in an
// unexpected form.
func RedactURL(raw string) string {
	if first, hosts := SplitURLHosts(raw); len(hosts) > 1 {
		r := RedactURL(first)
		at := strings.LastIndex(r, "@") + 1
		if at == 0 {
			_, rest, _ := strings.Cut(r, "://")
			at = len(r) - len(rest)
		}
		return r[:at] + strings.Replace(r[at:], hosts[0], strings.Join(hosts, ","), 1)
	}
	u, err := ParseURL(raw)
	if errors.Is(err, errUserInfo) {
		// The user information does not parse as such: everything up to
		// the last '@' may be part of a password.
		scheme, _, _ := strings.Cut(raw, "://")
		return scheme + "://xxxxx@" + raw[strings.LastIndex(raw, "@")+1:]
	}
	if err != nil {
		return "<unparseable URL redacted>"
	}
	q := u.Query()
	for k := range q {
		if isSecretName(k) {
			q.Set(k, "xxxxx")
		}
	}
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); !hasPassword && u.User.Username() != "" {
			u.User = url.User("xxxxx")
		}
	}
	return u.Redacted()
}

// SplitURLHosts returns raw with only the first host of its
// comma-separated host list (scheme://user:password@h1:p1,h2:p2/path, as
// clients of clustered brokers write it, which net/url cannot parse), and
// every host of the list; hosts has one element for a URL with one host.
// The user information ends at the last '@' before the path.
func SplitURLHosts(raw string) (first string, hosts []string) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw, nil
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest, "@")
	if at >= end {
		// A '/', '?' or '#' before the last '@': a password holding one, not
		// a host list; ParseURL refuses it, RedactURL hides it.
		return raw, []string{rest}
	}
	authority := rest[:end]
	hosts = strings.Split(authority[at+1:], ",")
	return scheme + "://" + authority[:at+1] + hosts[0] + rest[end:], hosts
}

// ParseURL parses a broker URL as url.Parse does, and refuses one whose
// user or password holds a character that ends the user information
// ('/', '?', '#'): url.Parse would read the rest of the password as the
// host, a path or a fragment, and it would then reach messages. Any '@'
// before the host's must therefore be percent-encoded, in a vhost or path
// too. Its errors never hold the URL.
func ParseURL(raw string) (*url.URL, error) {
	_, rest, found := strings.Cut(raw, "://")
	if !found {
		rest = raw
	}
	at := strings.LastIndex(rest, "@")
	u, err := url.Parse(raw)
	switch {
	case at >= 0 && (err != nil || u.User == nil):
		return nil, errUserInfo
	case err != nil:
		return nil, errors.New("the URL does not parse")
	case at < 0:
		return u, nil
	}
	read := u.User.Username()
	if pw, ok := u.User.Password(); ok {
		read += ":" + pw
	}
	if written, err := url.PathUnescape(rest[:at]); err != nil || written != read {
		return nil, errUserInfo
	}
	return u, nil
}

var errUserInfo = errors.New("the user or password in the URL holds a character that must be percent-encoded ('/' as %2F, '?' as %3F, '#' as %23, '@' as %40, '%' as %25), or an '@' in the path must be (%40)")

func isSecretName(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"password", "passwd", "secret", "token", "credential", "access_key", "api_key", "private_key"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// configChecks validate sections of the config that other packages read,
// by section name.
var configChecks sync.Map

// RegisterConfigCheck makes Open validate the config section that another
// package reads (package middleware registers "middleware" from its init),
// so that a misspelt key fails at Open, naming it, rather than being
// ignored by a service that never builds that package's stack.
func RegisterConfigCheck(section string, check func(Config) error) {
	configChecks.Store(section, check)
}

// checkSections runs the registered checks; a middleware section that no
// imported package checks is reported as unread.
func (c Config) checkSections() (unread []string, err error) {
	if len(c.Middleware) == 0 {
		return nil, nil
	}
	check, ok := configChecks.Load("middleware")
	if !ok {
		return []string{"middleware"}, nil
	}
	return nil, check.(func(Config) error)(c)
}
