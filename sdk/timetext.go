package sdk

import "time"

// parseTime reads a ce-time attribute. The SDK writes keyTimeLayout
// (time.RFC3339Nano) in UTC, which it reads digit by digit: time.Parse costs about ten times as much, on
// every message received. Anything else (an offset, another producer's
// form) goes to time.Parse.
func parseTime(s string) (time.Time, error) {
	if t, ok := parseUTC(s); ok {
		return t, nil
	}
	return time.Parse(keyTimeLayout, s)
}

// parseUTC parses YYYY-MM-DDTHH:MM:SS[.fraction]Z; ok is false for
// anything else, including an out-of-range field.
func parseUTC(s string) (t time.Time, ok bool) {
	if len(s) < 20 || s[len(s)-1] != 'Z' || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 7)
	day, ok3 := num(8, 10)
	hour, ok4 := num(11, 13)
	minute, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, false
	}
	nsec := 0
	switch rest := s[19 : len(s)-1]; {
	case rest == "":
	case rest[0] != '.' || len(rest) < 2 || len(rest) > 10:
		return time.Time{}, false
	default:
		frac, ok := num(20, len(s)-1)
		if !ok {
			return time.Time{}, false
		}
		for i := len(rest) - 1; i < 9; i++ {
			frac *= 10
		}
		nsec = frac
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// formatTime writes a ce-time attribute: t in UTC as time.RFC3339Nano
// gives it, written digit by digit (time.Format costs several times as
// much, on every publish). A year outside 0–9999 goes to time.Format.
func formatTime(t time.Time) string {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.Format(keyTimeLayout)
	}
	hour, minute, sec := t.Clock()
	var b [30]byte // 2006-01-02T15:04:05.999999999Z
	two := func(at, n int) {
		b[at], b[at+1] = byte('0'+n/10), byte('0'+n%10)
	}
	two(0, year/100)
	two(2, year%100)
	b[4] = '-'
	two(5, int(month))
	b[7] = '-'
	two(8, day)
	b[10] = 'T'
	two(11, hour)
	b[13] = ':'
	two(14, minute)
	b[16] = ':'
	two(17, sec)
	n := 19
	if ns := t.Nanosecond(); ns != 0 {
		b[19] = '.'
		for i := 28; i >= 20; i-- {
			b[i] = byte('0' + ns%10)
			ns /= 10
		}
		n = 29
		for b[n-1] == '0' { // RFC3339Nano drops trailing zeros
			n--
		}
	}
	b[n] = 'Z'
	return string(b[:n+1])
}
