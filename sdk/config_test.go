package sdk

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfigReadsEveryKey(t *testing.T) {
	cfg, err := ParseConfig("app.yaml", []byte(`
driver: rabbitmq
url: amqp://guest:secret@127.0.0.1:5672/
shutdown_timeout: 5s
options:
  prefetch: 100
  queue_type: quorum
`))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	if cfg.Driver != "rabbitmq" || cfg.URL != "amqp://guest:secret@127.0.0.1:5672/" || cfg.ShutdownTimeout != 5*time.Second {
		t.Fatalf("unexpected config: %+v", cfg)
	}
	if cfg.Options["prefetch"] != "100" || cfg.Options["queue_type"] != "quorum" {
		t.Fatalf("options not read: %v", cfg.Options)
	}
	if got := cfg.Source("options.prefetch"); got != "app.yaml:6" {
		t.Fatalf("Source(options.prefetch) = %q, want app.yaml:6", got)
	}
}

func TestEmptyConfigSelectsMemory(t *testing.T) {
	cfg, err := ParseConfig("empty.yaml", nil)
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	if cfg.DriverName() != "memory" {
		t.Fatalf("DriverName() = %q, want memory", cfg.DriverName())
	}
}

func TestConfigErrorsNameKeyAndPlace(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"malformed YAML", "driver: [rabbitmq\n", []string{"bad.yaml", "not valid YAML", "line"}},
		{"unknown top-level key", "driver: memory\nurll: x\n", []string{`key "urll"`, "bad.yaml:2", "top-level keys are driver, url"}},
		{"bad duration", "shutdown_timeout: soon\n", []string{`key "shutdown_timeout"`, "bad.yaml:1", `"soon"`}},
		{"negative nack backoff", "nack_backoff: -5s\n", []string{`key "nack_backoff"`, "bad.yaml:1", "0 (off)", `"-5s"`}},
		{"nack backoff max off", "nack_backoff_max: 0\n", []string{`key "nack_backoff_max"`, "positive duration"}},
		{"list where a value belongs", "driver:\n  - memory\n", []string{`key "driver"`, "single value"}},
		{"options not a mapping", "options: 3\n", []string{`key "options"`, "mapping"}},
		{"top level not a mapping", "- a\n- b\n", []string{"bad.yaml:1", "top level must be a mapping"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig("bad.yaml", []byte(c.yaml))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want a *ConfigError, got %T: %v", err, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q should contain %q", err, w)
				}
			}
		})
	}
}

func TestEnvironmentOverridesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "messaging.yaml")
	if err := os.WriteFile(path, []byte("driver: rabbitmq\nurl: amqp://file/\noptions:\n  prefetch: 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvURL, "amqp://env/")
	t.Setenv(EnvOptionPrefix+"PREFETCH", "200")
	t.Setenv(EnvOptionPrefix+"QUEUE_TYPE", "quorum")
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if cfg.Driver != "rabbitmq" {
		t.Errorf("driver from file lost: %q", cfg.Driver)
	}
	if cfg.URL != "amqp://env/" {
		t.Errorf("MESSAGING_URL should override the file: got %q", cfg.URL)
	}
	if cfg.Options["prefetch"] != "200" || cfg.Options["queue_type"] != "quorum" {
		t.Errorf("MESSAGING_OPT_* should set options: %v", cfg.Options)
	}
	if got := cfg.Source("url"); got != "environment variable MESSAGING_URL" {
		t.Errorf("Source(url) = %q", got)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "cannot read the config file") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("want a clear not-found error wrapping os.ErrNotExist, got %v", err)
	}
}

func TestOptionAccessorsReportBadValues(t *testing.T) {
	cfg, err := ParseConfig("c.yaml", []byte("options:\n  prefetch: lots\n  confirm: maybe\n  wait: forever\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.OptionInt("prefetch", 1); err == nil || !strings.Contains(err.Error(), `"options.prefetch" (from c.yaml:2): want a whole number, got "lots"`) {
		t.Errorf("OptionInt: %v", err)
	}
	if _, err := cfg.OptionBool("confirm", true); err == nil || !strings.Contains(err.Error(), "want true or false") {
		t.Errorf("OptionBool: %v", err)
	}
	if _, err := cfg.OptionDuration("wait", time.Second); err == nil || !strings.Contains(err.Error(), "want a duration") {
		t.Errorf("OptionDuration: %v", err)
	}
	if n, err := cfg.OptionInt("absent", 7); err != nil || n != 7 {
		t.Errorf("OptionInt default: %d, %v", n, err)
	}
	err = cfg.CheckOptions("prefetch", "confirm")
	if err == nil || !strings.Contains(err.Error(), `has no option "wait"; its options are: confirm, prefetch`) {
		t.Errorf("CheckOptions: %v", err)
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	cfg := Config{Driver: "rabbitmq", URL: "amqp://user:hunter2@host:5672/?token=abc", Options: map[string]string{"sasl_password": "hunter2", "prefetch": "5"}}
	s := cfg.String()
	if strings.Contains(s, "hunter2") || strings.Contains(s, "abc") {
		t.Fatalf("secret leaked: %s", s)
	}
	if !strings.Contains(s, "prefetch=5") || !strings.Contains(s, "user:xxxxx@host") {
		t.Fatalf("non-secret parts missing: %s", s)
	}
	if got := RedactURL("::not a url"); strings.Contains(got, "not a url") {
		t.Fatalf("unparseable URL should be hidden, got %q", got)
	}
	// User information without a password may be a token (NATS).
	for _, raw := range []string{"nats://s3cr3ttoken@host:4222", "tls://s3cr3ttoken@host:4222,h2:4222", "amqp://s3cr3ttoken@host/"} {
		if got := RedactURL(raw); strings.Contains(got, "s3cr3t") || !strings.Contains(got, "xxxxx@host") {
			t.Errorf("RedactURL(%q) = %q: the token must go, the host stay", raw, got)
		}
	}
	// A cluster's node list stays readable; the password goes.
	if got, want := RedactURL("amqp://u:hunter2@h1:5672,h2:5673,h3/vh?token=abc"), "amqp://u:xxxxx@h1:5672,h2:5673,h3/vh?token=xxxxx"; got != want {
		t.Fatalf("RedactURL of a node list: got %q, want %q", got, want)
	}
}

func TestNackBackoffIsReadAndZeroTurnsItOff(t *testing.T) {
	cfg, err := ParseConfig("app.yaml", []byte("nack_backoff: 250ms\nnack_backoff_max: 1m\n"))
	if err != nil || cfg.NackBackoff != 250*time.Millisecond || cfg.NackBackoffMax != time.Minute {
		t.Fatalf("want 250ms and 1m, got %v %v (%v)", cfg.NackBackoff, cfg.NackBackoffMax, err)
	}
	for _, off := range []string{"0", "off"} {
		cfg, err := ParseConfig("app.yaml", []byte("nack_backoff: "+off+"\n"))
		if err != nil || cfg.NackBackoff >= 0 {
			t.Fatalf("nack_backoff: %s should turn the backoff off (negative), got %v (%v)", off, cfg.NackBackoff, err)
		}
	}
	t.Setenv(EnvNackBackoff, "2s")
	cfg, err = LoadConfig("")
	if err != nil || cfg.NackBackoff != 2*time.Second {
		t.Fatalf("%s=2s: got %v (%v)", EnvNackBackoff, cfg.NackBackoff, err)
	}
}

func TestNewGroupStartIsReadAndChecked(t *testing.T) {
	cfg, err := ParseConfig("app.yaml", []byte("new_group_start: latest\n"))
	if err != nil || cfg.GroupStart() != GroupStartLatest {
		t.Fatalf("want latest, got %q (%v)", cfg.GroupStart(), err)
	}
	if (Config{}).GroupStart() != GroupStartOldest {
		t.Fatal("the default must be oldest")
	}
	if _, err := ParseConfig("app.yaml", []byte("new_group_start: newest\n")); err == nil || !strings.Contains(err.Error(), "want oldest") {
		t.Fatalf("an unknown start should be refused saying what is allowed, got %v", err)
	}
}

// The service's own settings live in the app: section, handed back as
// written; the client gives back the config it was opened with.
func TestAppSectionAndClientConfig(t *testing.T) {
	cfg, err := ParseConfig("svc.yaml", []byte("driver: memory\napp:\n  listen: \":8080\"\n  shards: [1, 2]\n"))
	if err != nil {
		t.Fatal(err)
	}
	var app struct {
		Listen string `yaml:"listen"`
		Shards []int  `yaml:"shards"`
	}
	if err := cfg.App(&app); err != nil || app.Listen != ":8080" || len(app.Shards) != 2 {
		t.Fatalf("app section: %+v, %v", app, err)
	}
	var wrong struct{ Listen int }
	if err := cfg.App(&wrong); err == nil || !strings.Contains(err.Error(), `key "app"`) {
		t.Fatalf("an app section that does not fit should name the key: %v", err)
	}
}

// A key set twice in one mapping is refused naming both lines: a YAML
// parser keeps one of the values, and the file's reader cannot tell which.
func TestKeySetTwiceIsAConfigError(t *testing.T) {
	for _, c := range []struct{ yaml, key, line, also string }{
		{"driver: redis\nurl: redis://a:6379/0\nurl: redis://b:6379/0\n", "url", "svc.yaml:3", "also at line 2"},
		{"driver: redis\noptions:\n  batch_size: 10\n  stream_max_len: 5\n  batch_size: 20\n", "options.batch_size", "svc.yaml:5", "also at line 3"},
		{"middleware:\n  retry: \"3\"\n  retry: \"5\"\n", "middleware.retry", "svc.yaml:3", "also at line 2"},
	} {
		_, err := ParseConfig("svc.yaml", []byte(c.yaml))
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != c.key || ce.Source != c.line || !strings.Contains(err.Error(), c.also) {
			t.Errorf("%q: want a ConfigError for %s at %s saying %q, got %v", c.yaml, c.key, c.line, c.also, err)
		}
	}
	if _, err := ParseConfig("svc.yaml", []byte("driver: redis\noptions:\n  url: x\nurl: redis://a:6379/0\n")); err != nil {
		t.Errorf("the same name in two mappings is not a key set twice: %v", err)
	}
}

// nack_backoff 0s is off, as 0 and off are, not the default; a
// nack_backoff above the longest the wait grows to, and a
// shutdown_timeout of 0, are refused naming the key.
func TestNackBackoffZeroIsOffAndAboveItsMaxIsRefused(t *testing.T) {
	for _, v := range []string{"0", "off", "0s", "0ms"} {
		cfg, err := ParseConfig("svc.yaml", []byte("nack_backoff: "+v+"\n"))
		if err != nil || cfg.NackBackoff >= 0 {
			t.Errorf("nack_backoff %s: want off (below 0), got %v, %v", v, cfg.NackBackoff, err)
		}
	}
	for _, c := range []struct{ yaml, key, want string }{
		{"nack_backoff: 1m\nnack_backoff_max: 1s\n", "nack_backoff", "1m0s is above nack_backoff_max 1s"},
		{"nack_backoff: 1m\n", "nack_backoff", "above nack_backoff_max's default 30s"},
		{"shutdown_timeout: 0s\n", "shutdown_timeout", "want a positive duration"},
		{"nack_backoff_max: 0s\n", "nack_backoff_max", "want a positive duration"},
	} {
		cfg, err := ParseConfig("svc.yaml", []byte("driver: memory\n"+c.yaml))
		if err == nil {
			_, err = CheckConfig(cfg)
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != c.key || !strings.HasPrefix(ce.Source, "svc.yaml:") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: want a ConfigError for %s saying %q, got %v", c.yaml, c.key, c.want, err)
		}
	}
	if cfg, err := ParseConfig("svc.yaml", []byte("driver: memory\nnack_backoff: 2s\nnack_backoff_max: 2s\n")); err != nil {
		t.Fatal(err)
	} else if _, err := CheckConfig(cfg); err != nil {
		t.Errorf("nack_backoff equal to its max is fine: %v", err)
	}
}
