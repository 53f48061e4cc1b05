package natssink

import (
	"sync"
	"testing"
)

// Every item added is sent exactly once, and what is added while a round
// is being sent goes in a later round instead of being lost.
func TestRoundsSendEveryItemOnce(t *testing.T) {
	var (
		mu      sync.Mutex
		sent    = map[int]int{}
		nRounds int
		all     sync.WaitGroup
	)
	firstRound := make(chan struct{})
	release := make(chan struct{})
	var r rounds[int]
	r.send = func(round []int) {
		mu.Lock()
		nRounds++
		first := nRounds == 1
		for _, i := range round {
			sent[i]++
		}
		mu.Unlock()
		if first {
			close(firstRound)
			<-release // items added now must wait for the next round
		}
		for range round {
			all.Done()
		}
	}
	all.Add(1)
	r.add(-1)
	<-firstRound
	const n = 1000
	all.Add(n)
	var adders sync.WaitGroup
	for i := range n {
		adders.Go(func() { r.add(i) })
	}
	adders.Wait()
	close(release)
	all.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != n+1 {
		t.Fatalf("%d distinct items sent, want %d", len(sent), n+1)
	}
	for i, c := range sent {
		if c != 1 {
			t.Fatalf("item %d sent %d times", i, c)
		}
	}
	if nRounds < 2 {
		t.Fatalf("%d rounds: the items added during the first were not sent in a later one", nRounds)
	}
}
