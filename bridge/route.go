package bridge

import (
	"errors"
	"fmt"
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

// router turns event names into subjects.
type router struct {
	prefix            string
	deadLetterSubject string
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

// validatePrefix accepts "" or routable tokens followed by a dot ("payments.").
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if !strings.HasSuffix(prefix, ".") || !Routable(strings.TrimSuffix(prefix, ".")) {
		return fmt.Errorf("%w: prefix %q must be empty or end with a dot after tokens of [A-Za-z0-9_-]", ErrBadSubject, prefix)
	}
	if len(prefix) >= MaxSubjectLen {
		return fmt.Errorf("%w: prefix is %d characters, leaving no room for the event", ErrBadSubject, len(prefix))
	}
	return nil
}

// validateSubject accepts a routable subject of at most MaxSubjectLen.
func validateSubject(subject string) error {
	if !Routable(subject) || len(subject) > MaxSubjectLen {
		return fmt.Errorf("%w: %q must be tokens of [A-Za-z0-9_-] joined by dots, at most %d characters", ErrBadSubject, subject, MaxSubjectLen)
	}
	return nil
}
