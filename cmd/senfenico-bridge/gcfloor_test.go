package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const floor = 16 << 20
	tests := []struct {
		live, roots uint64
		want        int
	}{
		{live: 0, roots: 0, want: maxGCPercent},
		{live: 1 << 20, roots: 1 << 20, want: maxGCPercent}, // 750 %, capped
		{live: 4 << 20, roots: 0, want: 300},                // the next collection at 16 MiB
		{live: 4 << 20, roots: 1 << 20, want: 240},          // 4 + 5 × 2.4 = 16
		{live: 8 << 20, roots: 0, want: 100},                // twice the live heap reaches the floor anyway
		{live: 100 << 20, roots: 1 << 20, want: 100},
	}
	for _, tc := range tests {
		if got := gcPercentFor(tc.live, tc.roots, floor); got != tc.want {
			t.Errorf("gcPercentFor(%d MiB, %d MiB) = %d, want %d", tc.live>>20, tc.roots>>20, got, tc.want)
		}
	}
}

// The tuner keeps running: after collections, the percent follows the
// live heap instead of staying at the default.
func TestHeapFloorTunesAfterEachCollection(t *testing.T) {
	if _, set := os.LookupEnv("GOGC"); set {
		t.Skip("GOGC is set in the environment: the tuner leaves the GC alone, as it should")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	startHeapFloor()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		debug.SetGCPercent(100) // what the tuner must undo
		runtime.GC()
		runtime.GC() // the cleanup armed before the first one runs after it
		time.Sleep(10 * time.Millisecond)
		if got := debug.SetGCPercent(100); got != 100 {
			return // retuned: this small test heap is far below the floor
		}
	}
	t.Fatal("the GC percent stayed at 100 after collections: the tuner stopped")
}
