package config

import (
	"fmt"
	"strconv"
	"strings"
)

// ByteSize is a size in bytes. In the configuration file and the environment
// it is a plain number of bytes ("26214400") or a number with a unit:
// B; the decimal kB, KB, MB, GB (powers of 1000); or the binary KiB, MiB,
// GiB (powers of 1024). Units are case-insensitive; a fraction ("1.5MiB")
// and whitespace before the unit ("25 MB") are allowed.
type ByteSize int64

// Binary and decimal size units.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	KB  ByteSize = 1000
	MB  ByteSize = 1000 * KB
	GB  ByteSize = 1000 * MB
)

var byteUnits = map[string]ByteSize{
	"":    1,
	"b":   1,
	"kb":  KB,
	"mb":  MB,
	"gb":  GB,
	"kib": KiB,
	"mib": MiB,
	"gib": GiB,
}

// ParseByteSize parses s as described at [ByteSize]. Negative sizes and
// sizes that overflow int64 are errors.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	end := 0
	for end < len(t) && (t[end] >= '0' && t[end] <= '9' || t[end] == '.') {
		end++
	}
	num, unit := t[:end], strings.ToLower(strings.TrimSpace(t[end:]))
	mult, ok := byteUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("parse size %q: want a number of bytes or a number with a unit B, KB, MB, GB, KiB, MiB, GiB", s)
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n > int64(^uint64(0)>>1)/int64(mult) {
			return 0, fmt.Errorf("parse size %q: too large", s)
		}
		return ByteSize(n) * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("parse size %q: %w", s, err)
	}
	v := f * float64(mult)
	if v >= 1<<63 {
		return 0, fmt.Errorf("parse size %q: too large", s)
	}
	return ByteSize(v), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with [ParseByteSize].
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String formats b with the largest binary unit that divides it exactly,
// so that String's output parses back to b: "25MiB", "1000B".
func (b ByteSize) String() string {
	for _, u := range []struct {
		size ByteSize
		name string
	}{{GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}} {
		if b != 0 && b%u.size == 0 {
			return strconv.FormatInt(int64(b/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}
