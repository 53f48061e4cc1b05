package replay

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/senfenico-bridge/senfenico-bridge/bridge"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
)

// Reasons are the dead-letter reasons the bridge writes (header
// ce-deadletterreason), the values Selection.Reasons takes.
var Reasons = []string{
	sinks.ReasonUnroutable,
	sinks.ReasonReserved,
	bridge.ReasonFamilyNotListed,
	sinks.ReasonSubjectRefused,
	sinks.ReasonMalformedData,
	sinks.ReasonSchema,
}

// Selection says which stored messages a run publishes again. A message is
// selected when it matches every field that is set, and a field matches
// when any of its values does; an empty field matches everything.
type Selection struct {
	// IDs are ce-ids.
	IDs []string
	// References are data.reference values (the checkout, charge,
	// settlement or transfer).
	References []string
	// Events are event names or patterns on them, with the NATS wildcards:
	// "charge" (one token: the family, charge and every charge.… event),
	// "charge.success", "charge.*", "*.failed", "charge.>". A dead letter
	// matches by the event name in its body.
	Events []string
	// Reasons are dead-letter reasons (see Reasons); they select dead
	// letters only.
	Reasons []string
	// Since and Until bound ce-time, the bridge's receive time: selected
	// when at or after Since and before Until. Zero: unbounded.
	Since, Until time.Time
}

// Validate reports the first value that can match nothing: a pattern that
// is not tokens of [A-Za-z0-9_-] or wildcards, an unknown reason, an empty
// value, or Until not after Since. The error wraps ErrConfig.
func (s Selection) Validate() error {
	for _, kind := range []struct {
		name   string
		values []string
	}{{"IDs", s.IDs}, {"References", s.References}, {"Events", s.Events}, {"Reasons", s.Reasons}} {
		for _, v := range kind.values {
			if v == "" {
				return fmt.Errorf("%w: %s: an empty value", ErrConfig, kind.name)
			}
		}
	}
	for _, p := range s.Events {
		if !validPattern(p) {
			return fmt.Errorf("%w: Events: %q is not an event name or pattern (tokens of [A-Za-z0-9_-] joined by dots, * for one token, > at the end for the rest)", ErrConfig, p)
		}
	}
	for _, r := range s.Reasons {
		if !slices.Contains(Reasons, r) {
			return fmt.Errorf("%w: Reasons: %q is not a dead-letter reason (%s)", ErrConfig, r, strings.Join(Reasons, ", "))
		}
	}
	if !s.Since.IsZero() && !s.Until.IsZero() && !s.Until.After(s.Since) {
		return fmt.Errorf("%w: Until %s is not after Since %s", ErrConfig, s.Until.Format(time.RFC3339), s.Since.Format(time.RFC3339))
	}
	return nil
}

func (s *Selection) matchTime(t time.Time) bool {
	return (s.Since.IsZero() || !t.Before(s.Since)) && (s.Until.IsZero() || t.Before(s.Until))
}

func (s *Selection) matchID(id string) bool {
	return len(s.IDs) == 0 || slices.Contains(s.IDs, id)
}

func (s *Selection) matchReason(reason string) bool {
	return len(s.Reasons) == 0 || slices.Contains(s.Reasons, reason)
}

func (s *Selection) matchReference(ref string) bool {
	return len(s.References) == 0 || (ref != "" && slices.Contains(s.References, ref))
}

func (s *Selection) matchEvent(event string) bool {
	if len(s.Events) == 0 {
		return true
	}
	for _, p := range s.Events {
		if matchPattern(p, event) {
			return true
		}
	}
	return false
}

// validPattern accepts tokens of [A-Za-z0-9_-] joined by dots, where a
// token may be "*" and the last one ">".
func validPattern(p string) bool {
	tokens := strings.Split(p, ".")
	for i, tok := range tokens {
		switch {
		case tok == "*":
		case tok == ">":
			if i != len(tokens)-1 {
				return false
			}
		case !bridge.Routable(tok):
			return false
		}
	}
	return true
}

// isFamily reports whether p is one literal token: a family.
func isFamily(p string) bool {
	return !strings.ContainsAny(p, ".*>")
}

// matchPattern reports whether event matches p: a family matches its
// events and an event named like it, a pattern matches as a NATS filter
// matches a subject.
func matchPattern(p, event string) bool {
	if isFamily(p) {
		return event == p || strings.HasPrefix(event, p+".")
	}
	return natssink.FilterSubsumes(p, event)
}

// subjectFilters are the subject filters (with TopicPrefix) on which the
// events that patterns match are published.
func subjectFilters(prefix string, patterns []string) []string {
	var out []string
	for _, p := range patterns {
		if isFamily(p) {
			out = append(out, prefix+p, prefix+p+".>")
			continue
		}
		out = append(out, prefix+p)
	}
	return out
}

// consumerFilters are filters a JetStream consumer takes: duplicates and
// filters another one covers dropped. A consumer refuses filters that
// overlap, so when two still do, it returns nil: the whole stream is read
// and the run selects.
func consumerFilters(filters []string) []string {
	var out []string
	for i, f := range filters {
		covered := false
		for j, g := range filters {
			if i != j && natssink.FilterSubsumes(g, f) && (f != g || j < i) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, f)
		}
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if server.SubjectsCollide(out[i], out[j]) {
				return nil
			}
		}
	}
	return out
}

// referenceOf returns data.reference of a routed event's body, "" when it
// has none.
func referenceOf(body []byte) string {
	var envelope struct {
		Data struct {
			Reference any `json:"reference"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &envelope) != nil {
		return ""
	}
	ref, _ := envelope.Data.Reference.(string)
	return ref
}
