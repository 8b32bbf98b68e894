package sdk

import (
	"testing"
	"time"
)

// parseTime reads what the SDK writes exactly as time.Parse does, and
// anything else as time.Parse does too.
func TestParseTimeAgreesWithTimeParse(t *testing.T) {
	for _, s := range []string{
		"2026-12-05T13:04:05Z", "2026-12-05T13:04:05.1Z", "2026-12-05T13:04:05.123456789Z",
		"2024-02-29T23:59:59.5Z", "2023-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-12-05T24:00:00Z",
		"2026-12-05T13:04:05.Z", "2026-12-05T13:04:05.1234567890Z", "2026-12-05T13:04:05+01:00",
		"2026-12-05T13:04:05.25-07:30", "2026-12-05 13:04:05Z", "x026-12-05T13:04:05Z", "", "Z",
		time.Now().UTC().Format(keyTimeLayout),
	} {
		want, wantErr := time.Parse(keyTimeLayout, s)
		got, err := parseTime(s)
		if (err != nil) != (wantErr != nil) || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; time.Parse gives %v, %v", s, got, err, want, wantErr)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	f.Add("2026-12-05T13:04:05.123456789Z")
	f.Add("2026-12-05T13:04:05+01:00")
	f.Fuzz(func(t *testing.T, s string) {
		want, wantErr := time.Parse(keyTimeLayout, s)
		got, err := parseTime(s)
		if (err != nil) != (wantErr != nil) || !got.Equal(want) {
			t.Fatalf("parseTime(%q) = %v, %v; time.Parse gives %v, %v", s, got, err, want, wantErr)
		}
	})
}

func BenchmarkParseTime(b *testing.B) {
	s := time.Now().UTC().Format(keyTimeLayout)
	for b.Loop() {
		if _, err := parseTime(s); err != nil {
			b.Fatal(err)
		}
	}
}

// formatTime writes what time.Format writes, for any instant.
func FuzzFormatTime(f *testing.F) {
	f.Add(time.Now().UnixNano(), int64(0))
	f.Add(int64(0), int64(0))
	f.Add(int64(1e9), int64(-62135596800)) // year 1
	f.Add(int64(120), int64(253402300799)) // the last second of 9999
	f.Fuzz(func(t *testing.T, nsec, sec int64) {
		at := time.Unix(sec, nsec)
		if want, got := at.UTC().Format(keyTimeLayout), formatTime(at); got != want {
			t.Fatalf("formatTime(%v) = %q; time.Format gives %q", at, got, want)
		}
	})
}

func BenchmarkFormatTime(b *testing.B) {
	now := time.Now()
	for b.Loop() {
		_ = formatTime(now)
	}
}
