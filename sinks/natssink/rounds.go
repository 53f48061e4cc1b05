package natssink

import "sync"

// rounds hands what callers add to send, all that waited at once, round
// after round, on a goroutine that runs only while there is something to
// send: what is added while a round is being sent goes in the next one.
// Core flushes and JetStream batches both share their broker round trips
// this way.
type rounds[T any] struct {
	// send handles one round; it must answer every item in it.
	send func(round []T)

	mu      sync.Mutex
	waiting []T
	running bool
}

// add queues item for the next round, starting the sender if it is idle.
func (r *rounds[T]) add(item T) {
	r.mu.Lock()
	r.waiting = append(r.waiting, item)
	if !r.running {
		r.running = true
		go r.run()
	}
	r.mu.Unlock()
}

func (r *rounds[T]) run() {
	var round []T
	for {
		r.mu.Lock()
		// The two slices swap, so neither grows again once warm.
		round, r.waiting = r.waiting, round[:0]
		if len(round) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		r.send(round)
		clear(round) // the items are answered: keep none alive
	}
}
