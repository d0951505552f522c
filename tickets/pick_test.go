package tickets

import (
	"crypto/sha256"
	"testing"
)

// An attachment kept in its raw mail is read back at its position, or, when a parser counts the
// parts otherwise, wherever its content is; never a part with other content.
func TestPickAttachment(t *testing.T) {
	a, b, c := []byte("alpha"), []byte("beta"), []byte("gamma")
	sum := func(d []byte) []byte { s := sha256.Sum256(d); return s[:] }
	parts := [][]byte{a, b, c}
	for _, tc := range []struct {
		name string
		part int
		sha  []byte
		want []byte
	}{
		{"at its position", 2, sum(b), b},
		{"moved", 1, sum(c), c},
		{"position out of range", 7, sum(a), a},
		{"no position", 0, sum(b), b},
		{"not there", 2, sum([]byte("delta")), nil},
	} {
		if got := pickAttachment(parts, tc.part, tc.sha); string(got) != string(tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
