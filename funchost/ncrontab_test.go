package funchost

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestNCrontabNext checks occurrences against NCrontab's documented
// behaviour: seconds first when there are six fields, none with five,
// ranges, steps, lists, names, month lengths, leap days, and day of the
// month AND day of the week.
func TestNCrontabNext(t *testing.T) {
	tests := []struct {
		expr, from, want string
	}{
		// Six fields: seconds.
		{"*/10 * * * * *", "2025-03-01 10:00:00", "2025-03-01 10:00:10"},
		{"*/10 * * * * *", "2025-03-01 10:00:55", "2025-03-01 10:01:00"},
		{"* * * * * *", "2025-03-01 10:00:00", "2025-03-01 10:00:01"},
		{"0 */5 * * * *", "2025-03-01 10:03:17", "2025-03-01 10:05:00"},
		{"15 30 9 * * *", "2025-03-01 09:30:15", "2025-03-02 09:30:15"},
		{"7-9,30 * * * * *", "2025-03-01 10:00:08", "2025-03-01 10:00:09"},
		{"7-9,30 * * * * *", "2025-03-01 10:00:09", "2025-03-01 10:00:30"},
		{"7-9,30 * * * * *", "2025-03-01 10:00:30", "2025-03-01 10:01:07"},
		{"50/4 * * * * *", "2025-03-01 10:00:55", "2025-03-01 10:00:58"},
		{"50/4 * * * * *", "2025-03-01 10:00:58", "2025-03-01 10:01:50"},
		{"9-3 * * * * *", "2025-03-01 10:00:04", "2025-03-01 10:00:05"}, // backwards range is forwards
		{"*/0 * * * * *", "2025-03-01 10:00:00", "2025-03-01 10:00:01"}, // step below 1 is every value
		{"0 0 0 * * *", "2025-12-31 23:59:59", "2026-01-01 00:00:00"},
		// Five fields: a classic crontab, second 0.
		{"*/15 * * * *", "2025-03-01 10:07:30", "2025-03-01 10:15:00"},
		{"30 23 * * *", "2025-03-01 23:30:00", "2025-03-02 23:30:00"},
		// Fractions are ignored; the next is strictly after the second.
		{"* * * * * *", "2025-03-01 10:00:00", "2025-03-01 10:00:01"},
		// Month lengths and leap days.
		{"0 0 0 31 * *", "2025-04-01 00:00:00", "2025-05-31 00:00:00"},
		{"0 0 12 29 2 *", "2025-01-01 00:00:00", "2028-02-29 12:00:00"},
		{"0 0 0 30,31 * *", "2025-02-01 00:00:00", "2025-03-30 00:00:00"},
		// Names: any prefix, any case, first in calendar order.
		{"0 0 0 1 Jun *", "2025-01-01 00:00:00", "2025-06-01 00:00:00"},
		{"0 0 0 1 ju *", "2025-01-01 00:00:00", "2025-06-01 00:00:00"},
		{"0 0 0 1 JULY *", "2025-01-01 00:00:00", "2025-07-01 00:00:00"},
		{"0 0 0 1 sep-nov *", "2025-01-01 00:00:00", "2025-09-01 00:00:00"},
		{"0 0 9 * * mon-fri", "2025-03-01 10:00:00", "2025-03-03 09:00:00"}, // Saturday to Monday
		{"0 0 9 * * t", "2025-03-01 10:00:00", "2025-03-04 09:00:00"},       // T is Tuesday
		{"0 30 6 * * 0", "2025-03-03 00:00:00", "2025-03-09 06:30:00"},      // 0 is Sunday
		// Day of the month AND day of the week: the 1st that is a Monday.
		{"0 45 16 1 * Mon", "2025-01-01 00:00:00", "2025-09-01 16:45:00"},
		// A restricted hour from inside another hour resets minutes and seconds.
		{"* 0-1 10 * * *", "2025-03-01 09:50:35", "2025-03-01 10:00:00"},
	}
	for _, tt := range tests {
		t.Run(tt.expr+" after "+tt.from, func(t *testing.T) {
			s, err := parseNCrontab(tt.expr)
			require.NoError(t, err)
			got, ok := s.next(at(tt.from))
			require.True(t, ok)
			require.Equal(t, at(tt.want), got)
		})
	}
}

func TestNCrontabNextIgnoresFractionsAndKeepsLocation(t *testing.T) {
	s, err := parseNCrontab("*/5 * * * * *")
	require.NoError(t, err)
	loc := time.FixedZone("X", 3600)
	got, ok := s.next(time.Date(2025, 3, 1, 10, 0, 4, 999_000_000, loc))
	require.True(t, ok)
	require.Equal(t, time.Date(2025, 3, 1, 10, 0, 5, 0, loc), got)
	require.Equal(t, loc, got.Location())
}

func TestNCrontabNeverMatches(t *testing.T) {
	for _, expr := range []string{"0 0 0 30 2 *", "0 0 0 31 4,6,9,11 *"} {
		s, err := parseNCrontab(expr)
		require.NoError(t, err, expr)
		_, ok := s.next(at("2025-01-01 00:00:00"))
		require.False(t, ok, "%s never occurs", expr)
	}
}

func TestNCrontabParseErrors(t *testing.T) {
	for _, expr := range []string{
		"",
		"* * * *",        // four fields
		"* * * * * * *",  // seven
		"60 * * * * *",   // second out of range
		"* 60 * * * *",   // minute
		"* * 24 * * *",   // hour
		"* * * 0 * *",    // day 0
		"* * * 32 * *",   // day 32
		"* * * * 13 *",   // month 13
		"* * * * * 7",    // 7 is not a day of the week for NCrontab
		"* * * * Foo *",  // unknown name
		"a * * * * *",    // names only where the field has them
		"-5 * * * * *",   // negative
		"*/x * * * * *",  // bad step
		"1,,2 * * * * *", // empty list element
		",1 * * * * *",   // leading comma: one element ",1"
		"1- * * * * *",   // open range
		"*/99999999999 * * * * *",
		"? * * * * *", // Quartz's ?, not NCrontab
		"L * * * * *",
		"0 0 0 ? * MON#2", // Quartz
	} {
		_, err := parseNCrontab(expr)
		require.Error(t, err, "%q", expr)
	}
}

func TestNCrontabSubMinute(t *testing.T) {
	for expr, want := range map[string]bool{
		"*/10 * * * * *":   true,
		"0,30 * * * * *":   true,
		"0 * * * * *":      false, // once a minute
		"*/10 0 * * * *":   false, // a restricted minute
		"* * * * *":        false, // five fields: second 0
		"*/1 0-59 * * * *": true,  // a full range is "*"
	} {
		s, err := parseNCrontab(expr)
		require.NoError(t, err, expr)
		require.Equal(t, want, s.subMinute(), expr)
	}
}

// FuzzParseNCrontab: the parser never panics, and every schedule it
// accepts yields occurrences that are strictly increasing, whole seconds,
// and match every field.
// The seed corpus is testdata/fuzz/FuzzParseNCrontab.
func FuzzParseNCrontab(f *testing.F) {
	from := at("2025-03-01 10:00:00")
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := parseNCrontab(expr)
		if err != nil {
			return
		}
		prev := from
		for range 3 {
			next, ok := s.next(prev)
			if !ok {
				return
			}
			if !next.After(prev) || next.Nanosecond() != 0 {
				t.Fatalf("%q: next after %s is %s", expr, prev, next)
			}
			wd := int(next.Weekday())
			if !s.has(fieldSecond, next.Second()) || !s.has(fieldMinute, next.Minute()) || !s.has(fieldHour, next.Hour()) ||
				!s.has(fieldDay, next.Day()) || !s.has(fieldMonth, int(next.Month())) || !s.has(fieldDayOfWeek, wd) {
				t.Fatalf("%q: %s does not match the schedule", expr, next)
			}
			prev = next
		}
	})
}
