package bridge

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// MaxSubjectLen is the longest subject the bridge publishes to: Kafka's
// topic-name limit, the stricter of the two brokers.
const MaxSubjectLen = 249

// ErrBadSubject is returned by Config.Validate for a TOPIC_PREFIX or
// dead-letter subject that is not usable on both brokers.
var ErrBadSubject = errors.New("bridge: not a valid subject")

// Routable reports whether name is tokens of [A-Za-z0-9_-] joined by single
// dots: a name that is a literal NATS subject (no wildcard, no '$', no white
// space, no empty token) and a legal Kafka topic at once.
func Routable(name string) bool {
	if name == "" {
		return false
	}
	tokenLen := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if tokenLen == 0 {
				return false
			}
			tokenLen = 0
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
			tokenLen++
		default:
			return false
		}
	}
	return tokenLen > 0
}

// ReasonFamilyNotListed is the dead-letter reason of an event whose family
// (first token) is not in Config.Families.
const ReasonFamilyNotListed = "family-not-listed"

// router decides where each verified notification goes. It is immutable
// after New, so safe for concurrent use.
type router struct {
	prefix            string
	deadLetterSubject string
	// families holds Config.Families; nil routes every family.
	families map[string]bool
	// enforce checks routed events in SchemaEnforce mode; nil otherwise.
	enforce Validator
}

// subject returns the subject for event, or ok=false when the event must go
// to the dead-letter subject.
func (r router) subject(event string) (string, bool) {
	if len(r.prefix)+len(event) > MaxSubjectLen || !Routable(event) {
		return "", false
	}
	if r.prefix == "" {
		return event, true
	}
	return r.prefix + event, true
}

// reserved explains why a routable event may not have its subject, or
// returns "": the brokers keep names starting with "_" for themselves (NATS
// _INBOX and _R_ carry request replies, which a stream capturing them would
// store; Kafka's __consumer_offsets, __transaction_state, _schemas are
// internal topics), and the dead-letter subject's tree belongs to dead
// letters. Names with "$" (NATS system and JetStream API subjects) are not
// routable at all.
func (r router) reserved(event, subject string) string {
	if hasReservedToken(event) {
		return "a token of the event name starts with _, which the brokers reserve (NATS _INBOX, Kafka __consumer_offsets)"
	}
	if subject == r.deadLetterSubject || strings.HasPrefix(subject, r.deadLetterSubject+".") {
		return "the event's subject is the dead-letter subject or under it"
	}
	return ""
}

// hasReservedToken reports whether a token of a routable name starts with
// "_".
func hasReservedToken(name string) bool {
	for token := range strings.SplitSeq(name, ".") {
		if strings.HasPrefix(token, "_") {
			return true
		}
	}
	return false
}

// family returns an event name's first token.
func family(event string) string {
	first, _, _ := strings.Cut(event, ".")
	return first
}

// validatePrefix accepts "" or routable tokens followed by a dot
// ("payments."), none of them reserved.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if !strings.HasSuffix(prefix, ".") || !Routable(strings.TrimSuffix(prefix, ".")) {
		return fmt.Errorf("%w: prefix %q must be empty or end with a dot after tokens of [A-Za-z0-9_-]", ErrBadSubject, prefix)
	}
	if hasReservedToken(prefix) {
		return fmt.Errorf("%w: prefix %q has a token starting with _, which the brokers reserve", ErrBadSubject, prefix)
	}
	if len(prefix) >= MaxSubjectLen {
		return fmt.Errorf("%w: prefix is %d characters, leaving no room for the event", ErrBadSubject, len(prefix))
	}
	return nil
}

// validateSubject accepts a routable subject of at most MaxSubjectLen with
// no reserved token.
func validateSubject(subject string) error {
	if !Routable(subject) || len(subject) > MaxSubjectLen {
		return fmt.Errorf("%w: %q must be tokens of [A-Za-z0-9_-] joined by dots, at most %d characters", ErrBadSubject, subject, MaxSubjectLen)
	}
	if hasReservedToken(subject) {
		return fmt.Errorf("%w: %q has a token starting with _, which the brokers reserve", ErrBadSubject, subject)
	}
	return nil
}

// validateFamily accepts one routable token that does not start with "_".
func validateFamily(f string) error {
	if !Routable(f) || strings.Contains(f, ".") || strings.HasPrefix(f, "_") {
		return fmt.Errorf("%q is not a family: one token of [A-Za-z0-9_-], not starting with _", f)
	}
	return nil
}

// eventFamilyOf returns the family whose events would be routed onto
// subject (given the topic prefix): a documented family, or one of
// families. ok is false when no routed event can land on subject.
func eventFamilyOf(subject, prefix string, families []string) (string, bool) {
	rest, found := strings.CutPrefix(subject, prefix)
	if !found {
		return "", false
	}
	first := family(rest)
	if slices.Contains(DocumentedFamilies, first) || slices.Contains(families, first) {
		return first, true
	}
	return "", false
}
