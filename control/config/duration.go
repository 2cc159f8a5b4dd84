package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Duration is a length of time that may count calendar months and years,
// whose length depends on the date they are added to. ParseDuration fills at
// most one field, and the zero value is zero seconds.
type Duration struct {
	// Seconds is the fixed part, in seconds. It is never negative.
	Seconds float64

	// Months and Years are calendar units added with time.Time.AddDate.
	Months, Years int
}

// maxDurationYears bounds every duration so that the fixed part fits in a
// time.Duration, whose range ends after about 292 years.
const (
	maxDurationYears   = 292
	maxDurationSeconds = maxDurationYears * 365 * 24 * 3600
)

var (
	secondsPattern  = regexp.MustCompile(`^([0-9]+\.?[0-9]*|\.[0-9]+)([wdhms]?)$`)
	calendarPattern = regexp.MustCompile(`^([0-9]+)(yr|mo)$`)
	unitPattern     = regexp.MustCompile(`^[0-9.]+[a-zA-Z]+$`)
)

// secondsPerUnit gives the length of the fixed units of the duration grammar.
var secondsPerUnit = map[string]float64{
	"":  1,
	"s": 1,
	"m": 60,
	"h": 3600,
	"d": 24 * 3600,
	"w": 7 * 24 * 3600,
}

// ParseDuration parses the duration grammar of the upstream storage proxy:
//
//   - digits with an optional decimal point are seconds ("3600", "1.5"),
//   - a decimal number followed by w, d, h, m or s is weeks, days, hours,
//     minutes or seconds ("1.5h"),
//   - an integer followed by "mo" or "yr" is calendar months or years ("2mo").
//
// Units are case-sensitive like upstream. Empty strings, negative values,
// unknown units such as "ms" and durations above 292 years are rejected.
func ParseDuration(s string) (Duration, error) {
	expr := strings.TrimSpace(s)
	switch {
	case expr == "":
		return Duration{}, fmt.Errorf("invalid duration %q (use e.g. \"1d\", \"1.5h\" or \"3600\")", s)
	case strings.HasPrefix(expr, "-"):
		return Duration{}, fmt.Errorf("invalid duration %q (durations cannot be negative)", s)
	}

	if m := calendarPattern.FindStringSubmatch(expr); m != nil {
		return parseCalendarDuration(strconv.Quote(s), m[1], m[2])
	}
	if m := secondsPattern.FindStringSubmatch(expr); m != nil {
		value, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return Duration{}, fmt.Errorf("invalid duration %q (use e.g. \"1d\", \"1.5h\" or \"3600\")", s)
		}
		return durationFromSeconds(strconv.Quote(s), value*secondsPerUnit[m[2]])
	}
	if strings.HasSuffix(expr, "mo") || strings.HasSuffix(expr, "yr") {
		return Duration{}, fmt.Errorf("invalid duration %q (months and years must be whole numbers, e.g. \"2mo\")", s)
	}
	if unitPattern.MatchString(expr) {
		return Duration{}, fmt.Errorf("invalid duration %q (unknown unit, use w, d, h, m, s, mo or yr)", s)
	}
	return Duration{}, fmt.Errorf("invalid duration %q (use e.g. \"1d\", \"1.5h\" or \"3600\")", s)
}

// parseCalendarDuration checks the range of a "mo" or "yr" duration. orig is
// the quoted value as the error shows it.
func parseCalendarDuration(orig, digits, unit string) (Duration, error) {
	n, err := strconv.Atoi(digits)
	limit := maxDurationYears
	if unit == "mo" {
		limit *= 12
	}
	if err != nil || n > limit {
		return Duration{}, errDurationTooLong(orig)
	}
	if unit == "mo" {
		return Duration{Months: n}, nil
	}
	return Duration{Years: n}, nil
}

// durationFromSeconds checks the range of a fixed duration. orig is the value
// as the error shows it: quoted for a string, plain for a TOML number.
func durationFromSeconds(orig string, seconds float64) (Duration, error) {
	switch {
	case math.IsNaN(seconds) || math.IsInf(seconds, 0):
		return Duration{}, fmt.Errorf("invalid duration %s (use a finite number of seconds)", orig)
	case seconds < 0:
		return Duration{}, fmt.Errorf("invalid duration %s (durations cannot be negative)", orig)
	case seconds > maxDurationSeconds:
		return Duration{}, errDurationTooLong(orig)
	}
	return Duration{Seconds: seconds}, nil
}

func errDurationTooLong(orig string) error {
	return fmt.Errorf("invalid duration %s (too long, the maximum is %d years)", orig, maxDurationYears)
}

// AddTo returns t plus d. The calendar part is added first with
// time.Time.AddDate, which normalises 31 January + 1 month to 3 March like Go
// does. NOTE: upstream uses dateutil's relativedelta, which clamps that case
// to 28 or 29 February instead.
func (d Duration) AddTo(t time.Time) time.Time {
	if d.Years != 0 || d.Months != 0 {
		t = t.AddDate(d.Years, d.Months, 0)
	}
	return t.Add(time.Duration(math.Round(d.Seconds * float64(time.Second))))
}

// TimeDuration returns d as a time.Duration, and false when d has a calendar
// part whose length depends on the date it is added to.
func (d Duration) TimeDuration() (time.Duration, bool) {
	if d.Years != 0 || d.Months != 0 {
		return 0, false
	}
	return time.Duration(math.Round(d.Seconds * float64(time.Second))), true
}

// String formats d in the ParseDuration grammar with the largest unit that
// represents it exactly ("1d", "90m", "1.5s", "2mo"). A Duration with more
// than one field set, which ParseDuration never returns, prints as the
// concatenation of its parts ("1yr2mo") and does not parse back.
func (d Duration) String() string {
	var parts []string
	if d.Years != 0 {
		parts = append(parts, strconv.Itoa(d.Years)+"yr")
	}
	if d.Months != 0 {
		parts = append(parts, strconv.Itoa(d.Months)+"mo")
	}
	if d.Seconds != 0 || len(parts) == 0 {
		parts = append(parts, formatSeconds(d.Seconds))
	}
	return strings.Join(parts, "")
}

func formatSeconds(seconds float64) string {
	for _, unit := range []string{"w", "d", "h", "m"} {
		count := seconds / secondsPerUnit[unit]
		if count >= 1 && count == math.Trunc(count) && count*secondsPerUnit[unit] == seconds {
			return strconv.FormatFloat(count, 'f', -1, 64) + unit
		}
	}
	return strconv.FormatFloat(seconds, 'f', -1, 64) + "s"
}
