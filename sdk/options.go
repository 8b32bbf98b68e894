package sdk

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// A driver's typed options are a struct whose fields carry tags that tie
// each one to a key of the config file's options section:
//
//	type Options struct {
//		// Prefetch is how many messages the broker sends ahead of acks.
//		Prefetch int `option:"prefetch" default:"100" min:"1" help:"messages sent ahead of acks"`
//		// Transient publishes messages that a broker restart loses.
//		Transient bool `option:"!persistent"`
//	}
//
// option names the key; a leading "!" means the bool field holds the
// opposite of the key's value, so that a key that defaults to true is a
// field whose zero value keeps that default. default is the value a field
// takes when it is zero (in code) or its key is not set (in a file); min and
// max bound numbers and durations; oneof lists the values a string may
// take, separated by "|"; help explains the number or the choices, in
// errors.
// Supported field types: string, bool, the signed integers and
// time.Duration.
//
// The same struct serves a driver's Open, which fills it from the config
// with Section.Decode, and its typed constructor, which takes it from the
// caller and completes it with FillOptions: both apply the same defaults
// and bounds and fail with a *ConfigError naming the key.

// Decode fills the option-tagged fields of the structs that dsts point to
// from the section. A key no field names is refused (the error lists the
// known keys); a value that does not parse or is out of bounds is a
// *ConfigError naming the key and where it was set. Fields whose key is not
// set keep their value, or take their default when they are zero.
func (s Section) Decode(dsts ...any) error {
	fields, err := optionFields(dsts)
	if err != nil {
		return err
	}
	known := make([]string, len(fields))
	for i, f := range fields {
		known[i] = f.key
	}
	if err := s.Check(known...); err != nil {
		return err
	}
	for _, f := range fields {
		key := s.name + "." + f.key
		raw, set := s.values[f.key]
		if !set {
			if err := f.fill(); err != nil {
				return s.cfg.Invalid(key, nil, "%v", err)
			}
			continue
		}
		if err := f.parse(strings.TrimSpace(raw)); err != nil {
			return s.cfg.Invalid(key, nil, "%s, got %q", f.want(), raw)
		}
		if err := f.check(); err != nil {
			return s.cfg.Invalid(key, nil, "%v", err)
		}
	}
	return nil
}

// FillOptions completes the option-tagged struct that dst points to, as a
// typed constructor receives it: each zero field takes its default, and
// every field is checked against its bounds. An error is a *ConfigError
// naming the key and the field, such as "options.prefetch" from
// rabbitmq.Options.Prefetch.
func FillOptions(driverName string, dst any) error {
	fields, err := optionFields([]any{dst})
	if err != nil {
		return err
	}
	for _, f := range fields {
		if err := f.fill(); err != nil {
			return &ConfigError{Key: "options." + f.key, Source: fmt.Sprintf("%s.%s.%s", driverName, f.owner, f.name), Reason: err.Error()}
		}
	}
	return nil
}

// optionField is one tagged field of an options struct.
type optionField struct {
	owner, name string // struct type and field, for errors about values set in code
	key         string
	negate      bool
	def         string
	min, max    string
	oneof       []string
	help        string
	v           reflect.Value
}

var durationType = reflect.TypeOf(time.Duration(0))

func optionFields(dsts []any) ([]*optionField, error) {
	var fields []*optionField
	for _, dst := range dsts {
		rv := reflect.ValueOf(dst)
		if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
			return nil, fmt.Errorf("messaging: options must be a pointer to a struct, got %T", dst)
		}
		fs, err := structFields(rv.Elem(), rv.Elem().Type().Name())
		if err != nil {
			return nil, err
		}
		fields = append(fields, fs...)
	}
	return fields, nil
}

// structFields lists the option-tagged fields of the struct v, and those of
// the exported untagged struct fields within it (such as Options.TLS, a
// TLSOptions), which share the section's keys.
func structFields(v reflect.Value, owner string) ([]*optionField, error) {
	var fields []*optionField
	st := v.Type()
	for i := 0; i < st.NumField(); i++ {
		sf := st.Field(i)
		tag, ok := sf.Tag.Lookup("option")
		if !ok {
			if sf.IsExported() && sf.Type.Kind() == reflect.Struct {
				inner, err := structFields(v.Field(i), owner+"."+sf.Name)
				if err != nil {
					return nil, err
				}
				fields = append(fields, inner...)
			}
			continue
		}
		f := &optionField{owner: owner, name: sf.Name, key: strings.TrimPrefix(tag, "!"), negate: strings.HasPrefix(tag, "!"),
			def: sf.Tag.Get("default"), min: sf.Tag.Get("min"), max: sf.Tag.Get("max"), help: sf.Tag.Get("help"), v: v.Field(i)}
		if o := sf.Tag.Get("oneof"); o != "" {
			f.oneof = strings.Split(o, "|")
		}
		switch k := sf.Type.Kind(); {
		case k == reflect.String, k == reflect.Bool && (f.def == "" || f.negate), sf.Type == durationType,
			k >= reflect.Int && k <= reflect.Int64:
		default:
			return nil, fmt.Errorf("messaging: option %q: field %s.%s of type %s cannot be an option", f.key, owner, sf.Name, sf.Type)
		}
		fields = append(fields, f)
	}
	return fields, nil
}

// parse sets the field from a config value.
func (f *optionField) parse(raw string) error {
	switch {
	case f.v.Kind() == reflect.String:
		f.v.SetString(raw)
	case f.v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return err
		}
		f.v.SetBool(b != f.negate)
	case f.v.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return err
		}
		f.v.SetInt(int64(d))
	default:
		n, err := strconv.ParseInt(raw, 10, f.v.Type().Bits())
		if err != nil {
			return err
		}
		f.v.SetInt(n)
	}
	return nil
}

func (f *optionField) want() string {
	switch {
	case f.v.Kind() == reflect.Bool:
		return "want true or false"
	case f.v.Type() == durationType:
		return "want a duration such as 500ms or 2s"
	case f.v.Kind() == reflect.String:
		return "want a string"
	}
	return "want a whole number"
}

// fill gives a zero field its default, then checks it.
func (f *optionField) fill() error {
	if f.def != "" && f.v.IsZero() {
		if err := f.parse(f.def); err != nil {
			return fmt.Errorf("default %q of %s.%s does not parse: %w", f.def, f.owner, f.name, err)
		}
	}
	return f.check()
}

// check holds the field to its bounds.
func (f *optionField) check() error {
	help := ""
	if f.help != "" {
		help = " (" + f.help + ")"
	}
	if f.oneof != nil {
		s := f.v.String()
		if s == "" && f.def == "" { // not set, and the driver decides
			return nil
		}
		for _, o := range f.oneof {
			if s == o {
				return nil
			}
		}
		return fmt.Errorf("want %s%s, got %q", strings.Join(f.oneof, " or "), help, s)
	}
	if f.v.Kind() == reflect.String || f.v.Kind() == reflect.Bool {
		return nil
	}
	show := func(n int64) string {
		if f.v.Type() == durationType {
			return time.Duration(n).String()
		}
		return strconv.FormatInt(n, 10)
	}
	n := f.v.Int()
	for _, b := range []struct {
		raw, word string
		out       func(bound int64) bool
	}{
		{f.min, "at least", func(bound int64) bool { return n < bound }},
		{f.max, "at most", func(bound int64) bool { return n > bound }},
	} {
		if b.raw == "" {
			continue
		}
		bound, err := f.bound(b.raw)
		if err != nil {
			return err
		}
		if b.out(bound) {
			return fmt.Errorf("must be %s %s%s, got %s", b.word, show(bound), help, show(n))
		}
	}
	return nil
}

func (f *optionField) bound(raw string) (int64, error) {
	if f.v.Type() == durationType {
		d, err := time.ParseDuration(raw)
		return int64(d), err
	}
	return strconv.ParseInt(raw, 10, 64)
}
