package dedup

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestLandingsMatchAModel drives the ring and its index with random pushes
// and evictions, under a tiny index where probe sequences collide and wrap,
// and checks every lookup against a plain map of the same landings.
func TestLandingsMatchAModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		var l landings
		limit := 1 + rng.IntN(40)
		model := map[key]int{} // key -> how many of its landings are in the ring
		var order []slot       // the ring's contents, oldest first
		keys := make([]key, 1+rng.IntN(60))
		for i := range keys {
			// Few distinct home cells, so that probing and backward shifts
			// are exercised; the rest of the key tells them apart.
			keys[i][0] = byte(rng.IntN(4))
			keys[i][15] = byte(i)
		}
		for step := range 2000 {
			k := keys[rng.IntN(len(keys))]
			if l.n < limit && rng.IntN(3) > 0 {
				sl := slot{k: k, at: time.Duration(step)}
				l.push(sl, limit)
				order = append(order, sl)
				model[k]++
			} else if l.n > 0 {
				got := l.popOldest()
				if got != order[0] {
					t.Fatalf("round %d step %d: popped %v, want %v", round, step, got, order[0])
				}
				order = order[1:]
				if model[got.k]--; model[got.k] == 0 {
					delete(model, got.k)
				}
			}
			for _, k := range keys {
				found, ok := l.find(k)
				if ok != (model[k] > 0) {
					t.Fatalf("round %d step %d: find(%x) = %v, model has %d landings", round, step, k, ok, model[k])
				}
				if !ok {
					continue
				}
				// The latest landing of k is the one found.
				var latest slot
				for _, sl := range order {
					if sl.k == k {
						latest = sl
					}
				}
				if found != latest {
					t.Fatalf("round %d step %d: find(%x) gave %v, want the latest %v", round, step, k, found, latest)
				}
			}
		}
	}
}
