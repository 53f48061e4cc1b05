package bridge

import (
	"regexp"
	"strings"
	"testing"
)

func TestRoutable(t *testing.T) {
	tests := []struct {
		name  string
		event string
		want  bool
	}{
		{"family and status", "checkout.success", true},
		{"one token", "ping", true},
		{"underscore and dash", "charge.payment_failed-v2", true},
		{"upper case", "Charge.Success", true},
		{"empty", "", false},
		{"leading dot", ".checkout", false},
		{"trailing dot", "checkout.", false},
		{"double dot", "checkout..success", false},
		{"star", "checkout.*", false},
		{"gt", "checkout.>", false},
		{"dollar", "$JS.API.INFO", false},
		{"space", "checkout success", false},
		{"tab", "checkout\tsuccess", false},
		{"non-ASCII", "café.ok", false},
		{"slash", "a/b", false},
		{"NUL", "a\x00b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Routable(tt.event); got != tt.want {
				t.Fatalf("Routable(%q) = %v, want %v", tt.event, got, tt.want)
			}
		})
	}
}

func TestSubjectLength(t *testing.T) {
	r := router{prefix: "payments."}
	fits := strings.Repeat("a", MaxSubjectLen-len("payments."))
	if got, ok := r.subject(fits); !ok || got != "payments."+fits {
		t.Fatalf("a %d-character subject was refused", MaxSubjectLen)
	}
	if _, ok := r.subject(fits + "a"); ok {
		t.Fatalf("a %d-character subject was accepted", MaxSubjectLen+1)
	}
}

// routablePattern is the rule written as a regular expression, the oracle of
// FuzzRoutable.
var routablePattern = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

func FuzzRoutable(f *testing.F) {
	for _, s := range []string{"checkout.success", "a..b", "$x", "a.>", "", "é", "a b", strings.Repeat("x.", 130)} {
		f.Add(s)
	}
	r := router{prefix: "p.", deadLetterSubject: DefaultDeadLetterSubject}
	f.Fuzz(func(t *testing.T, event string) {
		if got, want := Routable(event), routablePattern.MatchString(event); got != want {
			t.Fatalf("Routable(%q) = %v, the pattern says %v", event, got, want)
		}
		subject, ok := r.subject(event)
		if ok != (routablePattern.MatchString(event) && len("p."+event) <= MaxSubjectLen) || (ok && subject != "p."+event) {
			t.Fatalf("subject(%q) = %q, %v", event, subject, ok)
		}
		if h := headerSafe(event, maxTypeHeader); len(h) > maxTypeHeader || strings.ContainsFunc(h, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			t.Fatalf("headerSafe(%q) = %q: too long or not printable ASCII", event, h)
		}
	})
}
