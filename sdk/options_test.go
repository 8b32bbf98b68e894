package sdk_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

type testOptions struct {
	Batch     int           `option:"batch_size" default:"100" min:"1" max:"1000" help:"messages a read returns"`
	Wait      time.Duration `option:"wait" default:"2s" min:"10ms"`
	Transient bool          `option:"!persistent"`
	Verbose   bool          `option:"verbose"`
	Storage   string        `option:"storage" default:"file" oneof:"file|memory"`
	Name      string        `option:"name"`
	Limit     int64         `option:"limit"`
	untagged  int
}

func decode(t *testing.T, yaml string) (testOptions, error) {
	t.Helper()
	cfg, err := sdk.ParseConfig("test.yaml", []byte("driver: memory\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	var o testOptions
	return o, cfg.OptionsSection().Decode(&o)
}

func TestDecodeOptions(t *testing.T) {
	o, err := decode(t, "options:\n  wait: 5s\n  persistent: false\n  verbose: true\n  storage: memory\n  limit: 9000000000\n")
	if err != nil {
		t.Fatal(err)
	}
	want := testOptions{Batch: 100, Wait: 5 * time.Second, Transient: true, Verbose: true, Storage: "memory", Limit: 9000000000}
	if o != want {
		t.Fatalf("decoded %+v, want %+v", o, want)
	}
	if o, err = decode(t, "options:\n  persistent: true\n"); err != nil || o.Transient {
		t.Fatalf("persistent: true must leave Transient false, got %+v, %v", o, err)
	}
}

func TestDecodeOptionsRefusesClearly(t *testing.T) {
	for _, c := range []struct{ yaml, key, says string }{
		{"options:\n  batch: 1\n", "options.batch", "batch_size, limit, name, persistent, storage, verbose, wait"},
		{"options:\n  batch_size: ten\n", "options.batch_size", `want a whole number, got "ten"`},
		{"options:\n  batch_size: 0\n", "options.batch_size", "must be at least 1 (messages a read returns), got 0"},
		{"options:\n  batch_size: 1001\n", "options.batch_size", "must be at most 1000"},
		{"options:\n  wait: 1ms\n", "options.wait", "must be at least 10ms, got 1ms"},
		{"options:\n  wait: soon\n", "options.wait", "want a duration"},
		{"options:\n  persistent: maybe\n", "options.persistent", "want true or false"},
		{"options:\n  storage: disk\n", "options.storage", `want file or memory, got "disk"`},
	} {
		_, err := decode(t, c.yaml)
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != c.key || !strings.Contains(err.Error(), c.says) || !strings.Contains(ce.Source, "test.yaml:") {
			t.Errorf("%q: want a ConfigError for %s from test.yaml saying %q, got %v", c.yaml, c.key, c.says, err)
		}
	}
}

func TestFillOptions(t *testing.T) {
	o := testOptions{Wait: time.Second}
	if err := sdk.FillOptions("test", &o); err != nil {
		t.Fatal(err)
	}
	if o.Batch != 100 || o.Wait != time.Second || o.Storage != "file" {
		t.Fatalf("zero fields take their default and set ones stay, got %+v", o)
	}
	o = testOptions{Batch: -5}
	err := sdk.FillOptions("test", &o)
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "options.batch_size" || ce.Source != "test.testOptions.Batch" || !strings.Contains(err.Error(), "at least 1") {
		t.Fatalf("a field out of bounds must be a ConfigError naming key and field, got %v", err)
	}
	if err := sdk.FillOptions("test", o); err == nil {
		t.Fatal("options that are not a pointer to a struct must be refused")
	}
	var bad struct {
		On bool `option:"on" default:"true"`
	}
	if err := sdk.FillOptions("test", &bad); err == nil || !strings.Contains(err.Error(), "cannot be an option") {
		t.Fatalf("a bool that defaults to true cannot be a field (its zero value could not turn it off), got %v", err)
	}
}
