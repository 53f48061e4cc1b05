package replay

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestMatchPattern(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		event   string
		want    bool
	}{
		{name: "family matches its events", pattern: "charge", event: "charge.success", want: true},
		{name: "family matches deeper names", pattern: "charge", event: "charge.refund.created", want: true},
		{name: "family matches its own name", pattern: "charge", event: "charge", want: true},
		{name: "family is a whole token", pattern: "charge", event: "charges.success", want: false},
		{name: "name", pattern: "charge.success", event: "charge.success", want: true},
		{name: "other name", pattern: "charge.success", event: "charge.failed", want: false},
		{name: "star", pattern: "charge.*", event: "charge.failed", want: true},
		{name: "star is one token", pattern: "charge.*", event: "charge.a.b", want: false},
		{name: "leading star", pattern: "*.failed", event: "transfer.failed", want: true},
		{name: "tail", pattern: "charge.>", event: "charge.a.b", want: true},
		{name: "tail needs a token", pattern: "charge.>", event: "charge", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchPattern(tt.pattern, tt.event); got != tt.want {
				t.Fatalf("matchPattern(%q, %q) = %v, want %v", tt.pattern, tt.event, got, tt.want)
			}
		})
	}
}

// TestConsumerFilters: a JetStream consumer refuses overlapping filters,
// so filters that overlap read the whole stream (nil) and the run selects.
func TestConsumerFilters(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{name: "none", in: nil, want: nil},
		{name: "family", in: subjectFilters("p.", []string{"charge"}), want: []string{"p.charge", "p.charge.>"}},
		{name: "covered dropped", in: []string{"p.charge.>", "p.charge.success", "p.charge.>"}, want: []string{"p.charge.>"}},
		{name: "disjoint kept", in: []string{"p.charge.*", "p.checkout.*"}, want: []string{"p.charge.*", "p.checkout.*"}},
		{name: "overlapping: everything", in: []string{"p.charge.*", "p.*.failed"}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := consumerFilters(tt.in); !slices.Equal(got, tt.want) {
				t.Fatalf("consumerFilters(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSelectionValidate(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		sel  Selection
		ok   bool
	}{
		{name: "empty", sel: Selection{}, ok: true},
		{name: "patterns", sel: Selection{Events: []string{"charge", "*.failed", "charge.>", "a-b_c.d"}}, ok: true},
		{name: "tail not last", sel: Selection{Events: []string{"charge.>.x"}}},
		{name: "empty token", sel: Selection{Events: []string{"charge..x"}}},
		{name: "space", sel: Selection{Events: []string{"charge success"}}},
		{name: "known reason", sel: Selection{Reasons: []string{"family-not-listed"}}, ok: true},
		{name: "unknown reason", sel: Selection{Reasons: []string{"unroutable"}}},
		{name: "empty id", sel: Selection{IDs: []string{""}}},
		{name: "range", sel: Selection{Since: t0, Until: t0.Add(time.Hour)}, ok: true},
		{name: "empty range", sel: Selection{Since: t0, Until: t0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.sel.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("Validate() = %v, want ok=%v (errors wrap ErrConfig)", err, tt.ok)
			}
		})
	}
}

func TestReferenceOf(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{name: "routed", body: `{"event": "charge.success", "data": {"reference": "r-1", "amount": 1}}`, want: "r-1"},
		{name: "none", body: `{"event": "charge.success", "data": {"amount": 1}}`},
		{name: "not a string", body: `{"event": "charge.success", "data": {"reference": 5}}`},
		{name: "not JSON", body: `{"event": `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := referenceOf([]byte(tt.body)); got != tt.want {
				t.Fatalf("referenceOf = %q, want %q", got, tt.want)
			}
		})
	}
}
