package testenv

import (
	"bytes"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

// SecretSeeds are passwords that broke URL parsers before: a '/', an '@',
// a ':', a '%' not followed by hex digits, spaces and non-ASCII bytes.
var SecretSeeds = []string{"Pa55/word", "p@ss:w0rd", "s3cr%zzet", "with space", "ünïcødé-pw", "a%2Fb%40c", "]]]]", "\x00\x01\x02\x03"}

// KeepsSecret fails t when parse, given password, returns an error or logs
// a line that holds any four bytes of it in a row, raw or percent-decoded:
// a part of a password is a leak too ("lookup tcp/Pa55" for "Pa55/word").
// Text that also appears when the password is another of the same shape
// (its letters and digits shifted, its punctuation kept, so that it
// parses the same way) is the parser's own words, not a leak.
//
// others are the other inputs the URL was made of: a part of the password
// that is also in one of them, as written or escaped, may be that input
// showing, so it does not count. Nor does the redaction mark "xxxxx" that
// stands where a password was.
func KeepsSecret(t *testing.T, password string, parse func(password string) error, others ...string) {
	t.Helper()
	var seen strings.Builder
	seen.WriteString(redactionMark + "\x00")
	for _, o := range others {
		seen.WriteString(o + "\x00" + url.QueryEscape(o) + "\x00" + url.PathEscape(o) + "\x00")
		if u, err := url.PathUnescape(o); err == nil {
			seen.WriteString(u + "\x00")
		}
	}
	forms := []string{password}
	if dec, err := url.PathUnescape(password); err == nil && dec != password {
		forms = append(forms, dec)
	}
	said := func(pw string) string {
		var logged bytes.Buffer
		prev := slog.Default()
		slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
		err := parse(pw)
		slog.SetDefault(prev)
		if err != nil {
			logged.WriteString(err.Error())
		}
		return logged.String()
	}
	out := said(password)
	control := said(shifted(password))
	for _, f := range forms {
		for i := 0; i+4 <= len(f); i++ {
			part := f[i : i+4]
			if strings.Contains(out, part) && !strings.Contains(control, part) && !strings.Contains(seen.String(), part) {
				t.Fatalf("part %q of the password %q reached an error or a log line:\n%s", part, f, out)
			}
		}
	}
}

// redactionMark is what sdk.RedactURL and url.URL.Redacted write in place
// of a password.
const redactionMark = "xxxxx"

// shifted replaces each letter and digit of s with the next one (z with a,
// 9 with 0) and keeps every other byte.
func shifted(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = 'a' + (c-'a'+1)%26
		case c >= 'A' && c <= 'Z':
			b[i] = 'A' + (c-'A'+1)%26
		case c >= '0' && c <= '9':
			b[i] = '0' + (c-'0'+1)%10
		}
	}
	return string(b)
}

// FuzzURLPassword fuzzes a driver's URL parser with URLs
// scheme://user:password@host path: the password must not reach the
// parser's error or log lines, nor where, the name the driver gives the
// broker in connection errors and logs.
func FuzzURLPassword(f *testing.F, scheme string, parse func(url string) (where string, err error)) {
	for _, pw := range SecretSeeds {
		f.Add("app", pw, "127.0.0.1:1234", "/x")
		f.Add("", pw, "[::1", "")
		f.Add("app", pw, "host:port", "/a/b?c=d")
	}
	f.Fuzz(func(t *testing.T, user, password, host, path string) {
		KeepsSecret(t, password, func(pw string) error {
			where, err := parse(scheme + "://" + user + ":" + pw + "@" + host + path)
			if err != nil {
				return err
			}
			return errors.New(where)
		}, user, host, path)
	})
}

// RefusedForPermission fails the test unless err says the broker refused
// what was asked for lack of permission (not that it is down: notDown is
// the phrase a "broker unreachable" error holds), and holds none of
// secrets.
func RefusedForPermission(t testing.TB, what string, err error, notDown string, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: want a refusal, it succeeded", what)
	}
	msg := err.Error()
	t.Logf("%s: %v", what, err)
	if !strings.Contains(msg, "refused") || !strings.Contains(msg, "permission") || strings.Contains(msg, notDown) {
		t.Fatalf("%s: want an error saying the broker refused it for lack of permission, got %v", what, err)
	}
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			t.Fatalf("%s: the error holds a password: %v", what, err)
		}
	}
}
