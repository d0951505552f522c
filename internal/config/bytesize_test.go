package config

import "testing"

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
	}{
		{"0", 0},
		{"26214400", 25 * MiB},
		{"512B", 512},
		{"25MB", 25_000_000},
		{"25 mb", 25_000_000},
		{"25MiB", 26_214_400},
		{"1.5KiB", 1536},
		{"2kB", 2000},
		{"1GiB", 1 << 30},
		{" 3GB ", 3_000_000_000},
	} {
		got, err := ParseByteSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "MB", "-1", "25 parsecs", "1.2.3MB", "9223372036854775807KiB", "1e30"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestByteSizeStringRoundTrips(t *testing.T) {
	for _, b := range []ByteSize{0, 1, 1000, 25 * MiB, 3 * GiB, 1536, 25 * MB} {
		s := b.String()
		var back ByteSize
		if err := back.UnmarshalText([]byte(s)); err != nil || back != b {
			t.Errorf("%d.String() = %q, parses back to %d, %v", int64(b), s, back, err)
		}
	}
	if s := (25 * MiB).String(); s != "25MiB" {
		t.Errorf("String() = %q, want 25MiB", s)
	}
}
