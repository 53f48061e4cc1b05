package natssink

import (
	"testing"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// encode's allocations are what each publish pays now that nothing is
// pooled (BENCHMARKS.md, issue 14's fifth look): the value array, the
// header map (its header and, up to eight entries, one group of slots), the
// message and the ce-time string. A dead letter's ninth header makes the
// map a table (two more). A header added later as its own slice, or a map
// hint that no longer fits, shows here first.
func TestEncodeAllocations(t *testing.T) {
	routed := sinktest.NewMessage("charge.success")
	deadLetter := sinktest.NewMessage("senfenico.deadletter")
	deadLetter.DeadLetterReason = sinks.ReasonUnroutable
	deadLetter.DeadLetterDetail = "no event name"
	for _, tc := range []struct {
		name string
		msg  *sinks.Message
		want float64
	}{
		{"routed event, seven headers", routed, 5},
		{"dead letter, nine headers", deadLetter, 7},
	} {
		got := testing.AllocsPerRun(200, func() { _ = encode(tc.msg) })
		if got != tc.want {
			t.Errorf("%s: encode makes %.0f allocations, want %.0f", tc.name, got, tc.want)
		}
	}
}
