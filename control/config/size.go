package config

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Unlimited is the size that ParseSize returns for "inf", "infinite" and
// "infinity".
const Unlimited int64 = -1

// sizeUnitShifts maps a lower-case unit letter to its power of two. A space
// is the unit of one byte, as in "5 b".
var sizeUnitShifts = map[byte]uint{
	' ': 0,
	'k': 10,
	'm': 20,
	'g': 30,
	't': 40,
	'p': 50,
	'e': 60,
	'z': 70,
	'y': 80,
}

// sizeEndings are the optional words after the unit letter, longest first so
// that "ibytes" is not taken for "s" after "ibyte".
var sizeEndings = []string{"ibytes", "ibyte", "ib", "bytes", "byte", "b"}

// ParseSize parses the binary size grammar of the upstream storage proxy.
//
// A digit string means bytes ("1048576", "1_048_576"). Otherwise the value
// is a decimal number, a unit letter k, m, g, t, p, e, z or y (powers of 1024,
// case-insensitive) and an optional "b", "ib", "byte", "bytes", "ibyte" or
// "ibytes": "100g" is 107374182400 and "1.5m" is 1572864. Spaces may separate
// the number from the unit ("10 GiB"), and a space in place of the unit
// letter means bytes ("5 b"). Fractions are truncated to whole bytes.
// "inf", "infinite" and "infinity" return Unlimited.
//
// Rejected like upstream: a fraction without a unit ("1.5") and digits
// followed directly by "b" ("100b"). Rejected unlike upstream: negative sizes
// and sizes above math.MaxInt64 bytes.
func ParseSize(s string) (int64, error) {
	expr := strings.ToLower(strings.TrimSpace(s))
	switch expr {
	case "inf", "infinite", "infinity":
		return Unlimited, nil
	case "":
		return 0, fmt.Errorf("invalid size %q (use e.g. \"100g\")", s)
	}
	expr = strings.ReplaceAll(expr, "_", "")
	if strings.HasPrefix(expr, "-") {
		return 0, fmt.Errorf("invalid size %q (sizes cannot be negative, use \"inf\" for no limit)", s)
	}

	if isDigits(expr) {
		n, err := strconv.ParseInt(expr, 10, 64)
		if err != nil {
			return 0, errSizeTooLarge(s)
		}
		return n, nil
	}

	number, shift, err := splitSizeUnit(s, expr)
	if err != nil {
		return 0, err
	}
	return scaleDecimal(s, number, shift)
}

// splitSizeUnit splits a lower-case size expression into its decimal number
// and the power of two of its unit.
func splitSizeUnit(orig, expr string) (string, uint, error) {
	stem, hasEnding := expr, false
	for _, ending := range sizeEndings {
		if trimmed, ok := strings.CutSuffix(expr, ending); ok {
			stem, hasEnding = trimmed, true
			break
		}
	}
	if stem == "" {
		return "", 0, fmt.Errorf("invalid size %q (use e.g. \"100g\")", orig)
	}

	unit := stem[len(stem)-1]
	if !hasEnding && isDecimal(expr) {
		return "", 0, fmt.Errorf("invalid size %q (a fraction needs a unit, use e.g. \"1.5m\")", orig)
	}
	shift, ok := sizeUnitShifts[unit]
	if !ok {
		if hasEnding && isDecimal(stem) {
			// Upstream reads the last digit of "100b" as the unit letter.
			return "", 0, fmt.Errorf("invalid size %q (write bytes as digits only, e.g. %q, or add a unit, e.g. \"100k\")", orig, stem)
		}
		return "", 0, fmt.Errorf("invalid size %q (use e.g. \"100g\")", orig)
	}

	number := strings.TrimSpace(stem[:len(stem)-1])
	if !isDecimal(number) {
		return "", 0, fmt.Errorf("invalid size %q (use e.g. \"100g\")", orig)
	}
	return number, shift, nil
}

// scaleDecimal returns number * 2^shift truncated to an integer, computed
// exactly so that "1.1t" does not pick up float rounding.
func scaleDecimal(orig, number string, shift uint) (int64, error) {
	intPart, fracPart, _ := strings.Cut(number, ".")
	mantissa, ok := new(big.Int).SetString(intPart+fracPart, 10)
	if !ok {
		return 0, fmt.Errorf("invalid size %q (use e.g. \"100g\")", orig)
	}
	mantissa.Lsh(mantissa, shift)
	divisor := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(fracPart))), nil)
	mantissa.Quo(mantissa, divisor)
	if !mantissa.IsInt64() {
		return 0, errSizeTooLarge(orig)
	}
	return mantissa.Int64(), nil
}

func errSizeTooLarge(orig string) error {
	return fmt.Errorf("invalid size %q (too large, the maximum is %d bytes)", orig, int64(math.MaxInt64))
}

// FormatSize returns the shortest exact form of n in the ParseSize grammar:
// "inf" for Unlimited, a whole number of the largest unit that divides n
// ("100g", "1536k"), or plain bytes. ParseSize(FormatSize(n)) == n for every
// n >= Unlimited.
func FormatSize(n int64) string {
	if n == Unlimited {
		return "inf"
	}
	if n <= 0 {
		return strconv.FormatInt(n, 10)
	}
	for _, unit := range []struct {
		letter string
		shift  uint
	}{{"e", 60}, {"p", 50}, {"t", 40}, {"g", 30}, {"m", 20}, {"k", 10}} {
		if n%(int64(1)<<unit.shift) == 0 {
			return strconv.FormatInt(n>>unit.shift, 10) + unit.letter
		}
	}
	return strconv.FormatInt(n, 10)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isDecimal reports whether s is digits with at most one decimal point and at
// least one digit: "1", "1.5", "1." and ".5".
func isDecimal(s string) bool {
	intPart, fracPart, _ := strings.Cut(s, ".")
	if intPart == "" && fracPart == "" {
		return false
	}
	return (intPart == "" || isDigits(intPart)) && (fracPart == "" || isDigits(fracPart))
}
