package config

import (
	"math"
	"testing"
)

func FuzzParseSize(f *testing.F) {
	for _, seed := range []string{
		"100g", "1.5m", "1.5", "100b", "inf", "1_000", "10 GiB", "5 b", ".5k", "-1", "8e", "7e",
		"9223372036854775807", "9223372036854775808", "1.0000000000000000000000001y", "ib", "", " ",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < Unlimited {
			t.Fatalf("ParseSize(%q) = %d, below Unlimited", s, n)
		}
		formatted := FormatSize(n)
		back, err := ParseSize(formatted)
		if err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d, but ParseSize(FormatSize(%d) = %q) = %d, %v", s, n, n, formatted, back, err)
		}
	})
}

func FuzzParseDuration(f *testing.F) {
	for _, seed := range []string{
		"1d", "1.5h", "3600", "2mo", "1yr", "10ms", "-1d", "", "1.", ".5m", "292yr", "293yr", "0.1m",
		"9208512000", "9208512001", "1e3", "1.5mo",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d.Seconds < 0 || math.IsNaN(d.Seconds) || math.IsInf(d.Seconds, 0) || d.Months < 0 || d.Years < 0 {
			t.Fatalf("ParseDuration(%q) = %+v, expected a finite, non-negative duration", s, d)
		}
		set := 0
		for _, isSet := range []bool{d.Seconds != 0, d.Months != 0, d.Years != 0} {
			if isSet {
				set++
			}
		}
		if set > 1 {
			t.Fatalf("ParseDuration(%q) = %+v, expected at most one field set", s, d)
		}
		if _, fixed := d.TimeDuration(); fixed != (d.Months == 0 && d.Years == 0) {
			t.Fatalf("TimeDuration of %+v reported fixed = %v", d, fixed)
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %+v, but ParseDuration(%q) = %+v, %v", s, d, d.String(), back, err)
		}
	})
}
