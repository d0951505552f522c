package mailin

import (
	"fmt"
	"math/rand/v2"
	"net/mail"
	"slices"
	"strings"
	"testing"

	"github.com/deskd/deskd/mailin/parse"
)

// TestPartitionKeepsComponentsWholeAndBalancesWork deals batches shaped like the bench's (a dozen
// busy senders among 200, replies within a sender's thread, one in eight copying a colleague, sizes
// from 1 KB to 200 KB) and checks what the ingest
// relies on: every thread and every address in exactly one bucket, each bucket in arrival order,
// and the buckets' work within one large component of each other.
func TestPartitionKeepsComponentsWholeAndBalancesWork(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	desk := func(a string) bool { return strings.HasSuffix(a, "@desk.example") }
	spreadLPT, spreadRR := 0, 0
	for round := range 50 {
		var preps []prepared
		bySender := map[string][]int{}
		for i := range 100 {
			sender := fmt.Sprintf("u%d@corp.example", rng.IntN(200))
			if rng.IntN(4) == 0 {
				sender = fmt.Sprintf("busy%d@corp.example", rng.IntN(12))
			}
			m := &parse.Message{MessageID: fmt.Sprintf("m%d.%d@corp.example", round, i),
				From: &mail.Address{Address: sender}, To: []*mail.Address{{Address: "support@desk.example"}}}
			if earlier := bySender[sender]; len(earlier) > 0 && rng.IntN(3) == 0 {
				m.InReplyTo = []string{fmt.Sprintf("m%d.%d@corp.example", round, earlier[rng.IntN(len(earlier))])}
			}
			bySender[sender] = append(bySender[sender], i)
			if rng.IntN(8) == 0 {
				m.Cc = []*mail.Address{{Address: fmt.Sprintf("u%d@corp.example", rng.IntN(200))}}
			}
			size := 1000 + rng.IntN(20000)
			if rng.IntN(7) == 0 {
				size = 200000
			}
			preps = append(preps, prepared{raw: &RawMail{ID: int64(i + 1), Raw: make([]byte, size)}, msg: m})
		}
		buckets := partition(preps, 4, desk)
		owner := map[string]int{} // key -> bucket
		biggest := 0
		loads := make([]int, len(buckets))
		seen := 0
		for b, bucket := range buckets {
			last := int64(0)
			for _, p := range bucket {
				seen++
				if p.raw.ID <= last {
					t.Fatalf("round %d bucket %d: raw %d after %d, want arrival order", round, b, p.raw.ID, last)
				}
				last = p.raw.ID
				keys := append([]string{"id:" + p.msg.MessageID, "addr:" + p.msg.From.Address}, p.msg.InReplyTo...)
				for _, a := range p.msg.Cc {
					keys = append(keys, "addr:"+a.Address)
				}
				for _, k := range keys {
					if !strings.Contains(k, ":") {
						k = "id:" + k
					}
					if o, ok := owner[k]; ok && o != b {
						t.Fatalf("round %d: %s in buckets %d and %d", round, k, o, b)
					}
					owner[k] = b
				}
				loads[b] += messageCost(p)
			}
		}
		if seen != len(preps) {
			t.Fatalf("round %d: %d messages dealt, want %d", round, seen, len(preps))
		}
		// The largest component bounds how even LPT can be.
		biggest = slices.Max(componentsInArrivalOrder(preps, desk))
		lo, hi := loads[0], loads[0]
		for _, l := range loads {
			lo, hi = min(lo, l), max(hi, l)
		}
		if hi-lo > biggest {
			t.Errorf("round %d: bucket work %v spread %d, more than the largest component (%d)", round, loads, hi-lo, biggest)
		}
		spreadLPT += hi - lo
		// The same components dealt round-robin in arrival order, as the ingest did before.
		rr := make([]int, 4)
		for i, c := range componentsInArrivalOrder(preps, desk) {
			rr[i%4] += c
		}
		spreadRR += slices.Max(rr) - slices.Min(rr)
	}
	if spreadLPT*2 > spreadRR {
		t.Errorf("bucket work spread %d in all, round-robin %d: want less than half", spreadLPT, spreadRR)
	}
}

// componentsInArrivalOrder is the work of each component of preps, ordered by its first message.
func componentsInArrivalOrder(preps []prepared, desk func(string) bool) []int {
	comps := partition(preps, len(preps), desk) // one bucket per component
	slices.SortFunc(comps, func(a, b []prepared) int { return int(a[0].raw.ID - b[0].raw.ID) })
	out := make([]int, len(comps))
	for i, b := range comps {
		for _, p := range b {
			out[i] += messageCost(p)
		}
	}
	return out
}
