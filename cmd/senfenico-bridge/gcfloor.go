package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// heapFloor is the heap size below which the bridge does not collect.
//
// The bridge's live heap is small (about 5 MiB with the default dedup
// window), so with Go's default GOGC=100 it collects every 5 MiB allocated:
// dozens of times a second under load. Measured on the core NATS path at 64
// connections (BENCHMARKS.md, "Heap floor"): 82 µs of CPU per request with
// GOGC=100, 47 with the collector held back (GOGC=400, one run), since the publish path no
// longer pools its messages and contexts; the floor was first measured at a
// tenth of the CPU when it did. Letting the heap reach 16 MiB first costs about
// 6 MiB of memory and leaves a large heap (a big DEDUP_MAX_ENTRIES) with
// GOGC=100. The runtime has GOMEMLIMIT for a ceiling but no setting for a
// floor, so heapFloorTuner sets the GC percent after each collection from
// the live heap, the way GOGC would with the right value.
const heapFloor = 16 << 20

// maxGCPercent bounds the percent the tuner sets, for a live heap close to
// nothing (at start).
const maxGCPercent = 400

var startHeapFloorOnce sync.Once

// startHeapFloor keeps collections from starting before the heap reaches
// heapFloor, unless the operator set GOGC (then the runtime does what they
// asked). It runs for the life of the process.
func startHeapFloor() {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	startHeapFloorOnce.Do(func() {
		samples := []metrics.Sample{
			{Name: "/gc/heap/live:bytes"},
			{Name: "/gc/scan/stack:bytes"},
			{Name: "/gc/scan/globals:bytes"},
		}
		var tune func()
		tune = func() {
			metrics.Read(samples)
			live := samples[0].Value.Uint64()
			roots := samples[1].Value.Uint64() + samples[2].Value.Uint64()
			debug.SetGCPercent(gcPercentFor(live, roots, heapFloor))
			// An object nothing refers to: its cleanup runs after the next
			// collection, which tunes again.
			runtime.AddCleanup(new([64]byte), func(struct{}) { tune() }, struct{}{})
		}
		tune()
	})
}

// gcPercentFor is the GC percent that makes the next collection start when
// the heap reaches floor, given the live heap after the last one and the
// GC roots (stacks and globals): the runtime's goal is live + (live +
// roots) * percent / 100. It is never less than Go's default of 100.
func gcPercentFor(live, roots, floor uint64) int {
	base := live + roots
	if base == 0 {
		return maxGCPercent
	}
	if live >= floor || (floor-live)*100/base <= 100 {
		return 100
	}
	return int(min((floor-live)*100/base, maxGCPercent))
}
