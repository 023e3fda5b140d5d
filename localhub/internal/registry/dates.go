package registry

import (
	"maps"
	"slices"
	"time"
)

// Date strings in twins.
//
// IoT Hub stores a twin string that is a date-time with a numeric UTC
// offset as the same instant in UTC with a trailing Z: a reported
// "2024-05-06T11:58:00-08:00" reads back, compares in queries and appears
// in twin-change events as "2024-05-06T19:58:00Z". The fraction keeps the
// digits it was sent with. Every other string is kept as sent, in
// particular date-times that already end in Z and date-times with no zone:
// Microsoft's own end-to-end test sets a desired
// "2023-01-31T10:37:08.4599400" and reads back exactly that
// (azure-iot-sdk-csharp e2e/test/iothub/twin/TwinE2ETests.cs,
// DateTimeProperties). docs/architecture.md records the sources.

// Bounds of what counts as a date: .NET keeps seven fractional digits and
// offsets of at most 14 hours, and IoT Hub's dates are .NET's.
const (
	maxDateFraction  = 7
	maxOffsetMinutes = 14 * 60
)

// normalizeDate returns s in UTC with a Z, and true, when s is exactly
// YYYY-MM-DDThh:mm:ss[.f{1,7}]±hh:mm denoting a real instant in years 1 to
// 9999; otherwise it returns s and false.
func normalizeDate(s string) (string, bool) {
	// Cheap rejection first: this runs on every twin string.
	const minLen = len("2006-01-02T15:04:05+00:00")
	if len(s) < minLen || len(s) > minLen+1+maxDateFraction || s[10] != 'T' {
		return s, false
	}
	year, ok1 := digits(s, 0, 4)
	month, ok2 := digits(s, 5, 2)
	day, ok3 := digits(s, 8, 2)
	hour, ok4 := digits(s, 11, 2)
	minute, ok5 := digits(s, 14, 2)
	second, ok6 := digits(s, 17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' {
		return s, false
	}
	// The fraction, if any, runs from 19 to the sign of the offset.
	frac, rest := "", s[19:]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		if n == 1 || n-1 > maxDateFraction {
			return s, false
		}
		frac, rest = rest[:n], rest[n:]
	}
	if len(rest) != len("+00:00") || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':' {
		return s, false
	}
	oh, ok7 := digits(rest, 1, 2)
	om, ok8 := digits(rest, 4, 2)
	if !ok7 || !ok8 || om > 59 || oh*60+om > maxOffsetMinutes {
		return s, false
	}
	if year < 1 || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59 ||
		day < 1 || day > daysIn(year, month) {
		return s, false
	}
	offset := (oh*60 + om) * 60
	if rest[0] == '-' {
		offset = -offset
	}
	t := time.Date(year, time.Month(month), day, hour, minute, second, 0, time.FixedZone("", offset)).UTC()
	if t.Year() < 1 || t.Year() > 9999 {
		return s, false
	}
	return t.Format("2006-01-02T15:04:05") + frac + "Z", true
}

func digits(s string, at, n int) (int, bool) {
	v := 0
	for i := at; i < at+n; i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
	}
	return v, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// normalizeDates applies normalizeDate to a leaf value: a string, or the
// strings anywhere inside an array (objects in arrays included). It
// returns v itself, and false, when nothing changed, so that unchanged
// values are not copied.
func normalizeDates(v any) (any, bool) {
	switch tv := v.(type) {
	case string:
		// Return v itself when unchanged: boxing tv again would allocate
		// for every string leaf of every twin a query reads.
		if d, ok := normalizeDate(tv); ok {
			return d, true
		}
	case []any:
		var out []any
		for i, e := range tv {
			if n, changed := normalizeDates(e); changed {
				if out == nil {
					out = slices.Clone(tv)
				}
				out[i] = n
			}
		}
		if out != nil {
			return out, true
		}
	case map[string]any:
		var out map[string]any
		for k, e := range tv {
			if n, changed := normalizeDates(e); changed {
				if out == nil {
					out = maps.Clone(tv)
				}
				out[k] = n
			}
		}
		if out != nil {
			return out, true
		}
	}
	return v, false
}
