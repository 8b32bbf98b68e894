package sdk

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/msgkit/msgkit/sdk/driver"
)

// ErrClosed is returned by operations on a Client, publisher or subscriber
// that has been closed. It is driver.ErrClosed, which drivers return.
var ErrClosed = driver.ErrClosed

// ErrPayloadTooLarge is returned, before any network call, when a payload is
// larger than the transport's declared MaxPayloadBytes.
var ErrPayloadTooLarge = errors.New("messaging: payload too large")

// ErrTooManyMetadataEntries is returned, before any network call, when a
// message carries more metadata entries than the transport's declared
// MaxMetadataEntries.
var ErrTooManyMetadataEntries = errors.New("messaging: too many metadata entries")

// ErrInvalidMetadata is returned, before any network call, when a metadata
// key or value is not valid UTF-8. Several brokers (SQS, SNS, JSON columns)
// would replace the bad bytes, changing the value silently; every driver
// refuses it, so that switching brokers never changes what arrives. Encode
// binary values, as base64 for instance.
var ErrInvalidMetadata = errors.New("messaging: metadata is not valid UTF-8")

// ErrInvalidTime is returned, before any network call, for a message
// whose Time RFC 3339 text cannot carry: a year before 0000 or after 9999.
// Sent as it is, it would arrive as no time at all.
var ErrInvalidTime = errors.New("messaging: time cannot be carried")

// ErrInvalidName is what the error of a call given a topic or group name
// the driver cannot use matches (errors.Is): too long, bytes the broker
// refuses or would change, a name that maps to another topic's queue. No
// retry changes it. Drivers mark such errors with InvalidName.
var ErrInvalidName = errors.New("messaging: name cannot be used")

// invalidName is an error refusing a name, with its own text.
type invalidName struct{ err error }

func (e invalidName) Error() string        { return e.err.Error() }
func (e invalidName) Unwrap() error        { return e.err }
func (e invalidName) Is(target error) bool { return target == ErrInvalidName }

// InvalidName marks err, a driver's refusal of a topic or group name, so
// that errors.Is(err, ErrInvalidName) holds; its text stays err's.
func InvalidName(err error) error {
	if err == nil {
		return nil
	}
	return invalidName{err}
}

// IsRefused reports whether err is Publish refusing a message for what it
// is, or for the name of its topic, before any network call: a payload
// larger than the driver carries, metadata or a time it cannot carry, a
// topic name it cannot use. Publishing it again fails the same way;
// something must change the message, or set it aside.
func IsRefused(err error) bool {
	for _, e := range []error{ErrPayloadTooLarge, ErrInvalidMetadata, ErrMetadataTooLarge, ErrTooManyMetadataEntries, ErrInvalidTime, ErrInvalidName} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// CheckTime returns ErrInvalidTime when t (a Message's Time) is outside the
// years 0000 to 9999, which the ce-time attribute's RFC 3339 text carries.
// Publish calls it; so does anything that stores messages to be published
// later (the outbox).
func CheckTime(t time.Time) error {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Errorf("%w: %s is outside the years 0000 to 9999 that the %s attribute (RFC 3339) carries", ErrInvalidTime, t.UTC().Format(time.RFC3339Nano), KeyTime)
	}
	return nil
}

// CheckMetadata returns ErrInvalidMetadata, naming the entry, when a key or
// value is not valid UTF-8. Publish calls it; so does anything that stores
// messages to be published later (the outbox).
func CheckMetadata(k, v string) error {
	if !utf8.ValidString(k) {
		return fmt.Errorf("%w: key %q; encode binary keys (base64, for instance)", ErrInvalidMetadata, k)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: the value of %q; encode binary values (base64, for instance)", ErrInvalidMetadata, k)
	}
	return nil
}

// ConfigError reports a configuration value that cannot be used: which key,
// where it came from, and what to do about it.
type ConfigError struct {
	// Key is the configuration key, as written in the YAML file
	// (for example "options.prefetch").
	Key string
	// Source says where the value came from: a file path and line, an
	// environment variable, or empty for a value set in code.
	Source string
	// Reason explains what is wrong and how to fix it. It never contains a
	// secret.
	Reason string
	// Err is the underlying error, if any.
	Err error
}

func (e *ConfigError) Error() string {
	msg := "messaging config"
	if e.Key != "" {
		msg += fmt.Sprintf(": key %q", e.Key)
	}
	if e.Source != "" {
		msg += " (from " + e.Source + ")"
	}
	msg += ": " + e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *ConfigError) Unwrap() error { return e.Err }

// ErrMetadataTooLarge is returned, before any network call, when a
// message's metadata keys and values add up to more bytes than the
// transport's declared MaxMetadataBytes.
var ErrMetadataTooLarge = errors.New("messaging: metadata too large")

// quotedNameMax is the longest name QuoteName quotes whole.
const quotedNameMax = 128

// QuoteName quotes a topic, group or other name for an error or a log
// line, as %q does; a name longer than 128 bytes is cut to its first 64
// and its length added ("orders-..."... (70000 bytes)), so that an error
// about a very long name names it readably instead of repeating it whole.
// Drivers use it for the names they put in errors.
func QuoteName(name string) string {
	if len(name) <= quotedNameMax {
		return strconv.Quote(name)
	}
	cut := quotedNameMax / 2
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return strconv.Quote(name[:cut]) + "... (" + strconv.Itoa(len(name)) + " bytes)"
}
