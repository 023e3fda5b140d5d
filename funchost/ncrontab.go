package funchost

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// cronSchedule is a timer trigger's NCRONTAB expression, parsed as the
// Functions host parses it: the timers extension's CronSchedule hands the
// expression to the NCrontab library with seconds when it does not have
// exactly five space-separated fields (CronSchedule.HasSeconds), and
// NCrontab then wants exactly six: {second} {minute} {hour} {day} {month}
// {day-of-week}. A five-field expression is a classic crontab without
// seconds (second 0). The field rules are NCrontab's
// (CrontabFieldImpl.InternalParse, CrontabField.Accumulate):
//
//   - a field is a comma-separated list of elements; an element is "*",
//     a value, or a range "a-b", optionally followed by "/step";
//   - "a/step" runs from a to the field's maximum;
//   - a range written backwards ("5-2") is the same range forwards;
//   - a step below 1 ("*/0") means every value;
//   - months and days of the week may be names, matched as any
//     case-insensitive prefix of the English name, the first in calendar
//     order winning ("Ju" is June, "T" Tuesday); Sunday is 0 and 7 is not
//     a day;
//   - an occurrence needs its day of the month AND its day of the week to
//     match, unlike Vixie cron's OR (CrontabSchedule.TryGetNextOccurrence).
type cronSchedule struct {
	text string
	// fields[i] has bit v set when value v matches, for the fields in
	// cronFields order.
	fields     [6]uint64
	hasSeconds bool
}

// cronField is one NCRONTAB field's range and names.
type cronField struct {
	name     string
	min, max int
	names    []string
}

const (
	fieldSecond = iota
	fieldMinute
	fieldHour
	fieldDay
	fieldMonth
	fieldDayOfWeek
)

var cronFields = [6]cronField{
	{name: "second", min: 0, max: 59},
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"January", "February", "March", "April", "May", "June",
		"July", "August", "September", "October", "November", "December"}},
	{name: "day of week", min: 0, max: 6, names: []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}},
}

// maxCronExpression bounds what is parsed; real schedules are a few dozen
// characters.
const maxCronExpression = 1024

// parseNCrontab parses a schedule expression as CronSchedule.TryCreate
// does.
func parseNCrontab(expr string) (cronSchedule, error) {
	if len(expr) > maxCronExpression {
		return cronSchedule{}, fmt.Errorf("the expression is longer than %d characters", maxCronExpression)
	}
	tokens := strings.FieldsFunc(expr, func(r rune) bool { return r == ' ' })
	s := cronSchedule{text: expr, hasSeconds: len(tokens) != 5}
	if s.hasSeconds && len(tokens) != 6 {
		return cronSchedule{}, fmt.Errorf("%q has %d fields; an NCRONTAB expression has 6, {second} {minute} {hour} {day} {month} {day-of-week} (or 5, without seconds)", expr, len(tokens))
	}
	first := fieldSecond
	if !s.hasSeconds {
		first = fieldMinute
		s.fields[fieldSecond] = 1 // second 0
	}
	for i, tok := range tokens {
		f := first + i
		bits, err := cronFields[f].parse(tok)
		if err != nil {
			return cronSchedule{}, fmt.Errorf("%q is not a valid %s field: %w", tok, cronFields[f].name, err)
		}
		s.fields[f] = bits
	}
	return s, nil
}

// parse reads one field into a bit set.
func (f cronField) parse(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("a field value cannot be empty")
	}
	// NCrontab takes a list only when the first comma is not the first
	// character; ",5" is then read as one element and fails.
	if i := strings.IndexByte(s, ','); i > 0 {
		var bits uint64
		for elem := range strings.SplitSeq(s, ",") {
			b, err := f.parseElement(elem)
			if err != nil {
				return 0, err
			}
			bits |= b
		}
		return bits, nil
	}
	return f.parseElement(s)
}

func (f cronField) parseElement(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("a list element cannot be empty")
	}
	step, hasStep := 1, false
	if i := strings.IndexByte(s, '/'); i > 0 {
		n, err := parseCronInt(s[i+1:])
		if err != nil {
			return 0, fmt.Errorf("step %q: %w", s[i+1:], err)
		}
		step, hasStep = n, true
		s = s[:i]
	}
	if step < 1 {
		step = 1
	}
	var lo, hi int
	switch {
	case s == "*":
		lo, hi = f.min, f.max
	case strings.IndexByte(s, '-') > 0:
		i := strings.IndexByte(s, '-')
		a, err := f.value(s[:i])
		if err != nil {
			return 0, err
		}
		b, err := f.value(s[i+1:])
		if err != nil {
			return 0, err
		}
		lo, hi = min(a, b), max(a, b)
	default:
		v, err := f.value(s)
		if err != nil {
			return 0, err
		}
		lo, hi = v, v
		if hasStep {
			hi = f.max
		}
	}
	var bits uint64
	for v := lo; v <= hi; v += step {
		bits |= 1 << uint(v)
	}
	return bits, nil
}

// value reads a number within the field's range, or a name.
func (f cronField) value(s string) (int, error) {
	if s == "" {
		return 0, errors.New("a value cannot be empty")
	}
	if s[0] >= '0' && s[0] <= '9' {
		n, err := parseCronInt(s)
		if err != nil {
			return 0, err
		}
		if n < f.min || n > f.max {
			return 0, fmt.Errorf("%d is outside %d-%d", n, f.min, f.max)
		}
		return n, nil
	}
	if f.names == nil {
		return 0, fmt.Errorf("%q is not a number from %d to %d", s, f.min, f.max)
	}
	for i, name := range f.names {
		if len(s) <= len(name) && strings.EqualFold(name[:len(s)], s) {
			return f.min + i, nil
		}
	}
	return 0, fmt.Errorf("%q is not a number from %d to %d or a name such as %s", s, f.min, f.max, f.names[0][:3])
}

// parseCronInt reads a whole number as .NET's int.Parse does with the
// invariant culture: an optional sign, digits, no overflow.
func parseCronInt(s string) (int, error) {
	if s == "" {
		return 0, errors.New("a number cannot be empty")
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	return int(n), nil
}

func (s cronSchedule) has(field, v int) bool { return s.fields[field]&(1<<uint(v)) != 0 }

// maxCronSearchYears bounds the search for the next occurrence: a schedule
// that can match at all matches within 28 years (the calendar repeats; a
// February 29th on a given weekday recurs within 28 years), so a longer
// search means it never matches ("0 0 0 30 2 *").
const maxCronSearchYears = 30

// next returns the first occurrence strictly after t, at a whole second,
// in t's location (NCrontab's GetNextOccurrence: it starts from t's second
// plus one and ignores fractions). ok is false for a schedule that never
// matches; NCrontab then returns DateTime.MaxValue and the host never
// fires.
func (s cronSchedule) next(t time.Time) (time.Time, bool) {
	loc := t.Location()
	t = t.Truncate(time.Second).Add(time.Second)
	year, month, day := t.Date()
	hour, minute, second := t.Clock()
	limit := year + maxCronSearchYears
	for year <= limit {
		if !s.has(fieldMonth, int(month)) {
			year, month = nextMonth(year, month)
			day, hour, minute, second = 1, 0, 0, 0
			continue
		}
		if day > daysIn(year, month) {
			year, month = nextMonth(year, month)
			day, hour, minute, second = 1, 0, 0, 0
			continue
		}
		wd := int(time.Date(year, month, day, 0, 0, 0, 0, time.UTC).Weekday())
		if !s.has(fieldDay, day) || !s.has(fieldDayOfWeek, wd) {
			day, hour, minute, second = day+1, 0, 0, 0
			continue
		}
		h, ok := s.from(fieldHour, hour)
		if !ok {
			day, hour, minute, second = day+1, 0, 0, 0
			continue
		}
		if h != hour {
			hour, minute, second = h, 0, 0
		}
		m, ok := s.from(fieldMinute, minute)
		if !ok {
			hour, minute, second = hour+1, 0, 0
			if hour > 23 {
				day, hour = day+1, 0
			}
			continue
		}
		if m != minute {
			minute, second = m, 0
		}
		sec, ok := s.from(fieldSecond, second)
		if !ok {
			minute, second = minute+1, 0
			if minute > 59 {
				hour, minute = hour+1, 0
				if hour > 23 {
					day, hour = day+1, 0
				}
			}
			continue
		}
		return time.Date(year, month, day, hour, minute, sec, 0, loc), true
	}
	return time.Time{}, false
}

// from returns the first matching value of field at or after v.
func (s cronSchedule) from(field, v int) (int, bool) {
	for ; v <= cronFields[field].max; v++ {
		if s.has(field, v) {
			return v, true
		}
	}
	return 0, false
}

// subMinute reports whether the schedule fires more than once a minute, in
// which case the host turns schedule monitoring off
// (TimerSchedule.ShouldDisableScheduleMonitor: every field but the
// seconds is "*", and more than one occurrence falls within a minute).
func (s cronSchedule) subMinute() bool {
	for f := fieldMinute; f <= fieldDayOfWeek; f++ {
		all := uint64(0)
		for v := cronFields[f].min; v <= cronFields[f].max; v++ {
			all |= 1 << uint(v)
		}
		if s.fields[f] != all {
			return false
		}
	}
	n := 0
	for v := 0; v < 60; v++ {
		if s.has(fieldSecond, v) {
			n++
		}
	}
	return n > 1
}

func nextMonth(year int, month time.Month) (int, time.Month) {
	if month == time.December {
		return year + 1, time.January
	}
	return year, month + 1
}

func daysIn(year int, month time.Month) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func (s cronSchedule) String() string { return "Cron: '" + s.text + "'" }
