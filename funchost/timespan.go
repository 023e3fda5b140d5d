package funchost

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseTimeSpan reads a .NET TimeSpan in the invariant "c" forms that
// host.json and function.json use: "hh:mm", "hh:mm:ss", "hh:mm:ss.fffffff",
// each optionally prefixed by "d.", or a bare number of days ("5" is five
// days, as TimeSpan.Parse has it). Negative spans are rejected: every
// setting read with it is a delay or a timeout.
func parseTimeSpan(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf("%q is not a TimeSpan such as 00:00:05 or 1.00:00:00", s)
	}
	if s == "" || strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		return bad()
	}
	if !strings.Contains(s, ":") {
		days, ok := digits(s, 8)
		if !ok || days > maxDays {
			return bad()
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	var days int64
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return bad()
	}
	if d, h, ok := strings.Cut(parts[0], "."); ok {
		var okDays bool
		if days, okDays = digits(d, 8); !okDays || days > maxDays {
			return bad()
		}
		parts[0] = h
	}
	hours, okH := digits(parts[0], 2)
	minutes, okM := digits(parts[1], 2)
	if !okH || !okM || hours > 23 || minutes > 59 {
		return bad()
	}
	var seconds, nanos int64
	if len(parts) == 3 {
		sec, frac, hasFrac := strings.Cut(parts[2], ".")
		var okS bool
		if seconds, okS = digits(sec, 2); !okS || seconds > 59 {
			return bad()
		}
		if hasFrac {
			f, okF := digits(frac, 7)
			if !okF {
				return bad()
			}
			for range 9 - len(frac) {
				f *= 10
			}
			nanos = f
		}
	}
	d := time.Duration(days)*24*time.Hour + time.Duration(hours)*time.Hour +
		time.Duration(minutes)*time.Minute + time.Duration(seconds)*time.Second + time.Duration(nanos)
	return d, nil
}

// maxDays keeps a TimeSpan within time.Duration (about 292 years).
const maxDays = 106750

// digits parses 1..max ASCII digits.
func digits(s string, max int) (int64, bool) {
	if len(s) == 0 || len(s) > max {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
