package natssink

import "strings"

// validSubject reports whether s is a NATS subject (dot-separated non-empty
// tokens without whitespace); with wildcards, "*" tokens and a final ">" are
// allowed too.
func validSubject(s string, wildcards bool) bool {
	if s == "" {
		return false
	}
	for rest := s; ; {
		tok, tail, more := strings.Cut(rest, ".")
		if tok == "" || strings.ContainsAny(tok, " \t\r\n\f\v") {
			return false
		}
		if tok == "*" || tok == ">" {
			if !wildcards || (tok == ">" && more) {
				return false
			}
		} else if strings.ContainsAny(tok, "*>") {
			return false
		}
		if !more {
			return true
		}
		rest = tail
	}
}

// subsumes reports whether every subject that filter b matches is matched by
// filter a. With a literal b, that is "a matches the subject b". It walks
// both strings token by token without allocating, since Publish calls it.
func subsumes(a, b string) bool {
	for {
		at, arest, amore := strings.Cut(a, ".")
		bt, brest, bmore := strings.Cut(b, ".")
		switch {
		case at == ">":
			return true // b has at least this one token left
		case bt == ">":
			return false
		case at == "*" || at == bt:
		default:
			return false
		}
		if amore != bmore {
			return false
		}
		if !amore {
			return true
		}
		a, b = arest, brest
	}
}

// FilterSubsumes reports whether subject filter a matches every subject
// filter b matches (for a literal b: whether a matches the subject b), by
// NATS's wildcard rules. It does not allocate; safe for concurrent use.
func FilterSubsumes(a, b string) bool { return subsumes(a, b) }

// pruneFilters drops duplicate filters and those another filter subsumes:
// nats-server refuses a stream whose subjects overlap.
func pruneFilters(filters []string) []string {
	out := make([]string, 0, len(filters))
	for i, f := range filters {
		covered := false
		for j, g := range filters {
			if i == j {
				continue
			}
			// Of two equal filters keep the first.
			if subsumes(g, f) && (f != g || j < i) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, f)
		}
	}
	return out
}

// familyFilter is the filter the sink adds to the stream for a subject that
// no filter covers: the whole family of its first token.
func familyFilter(subject string) string {
	first, _, more := strings.Cut(subject, ".")
	if !more {
		return subject
	}
	return first + ".>"
}

// anyCovers reports whether one of filters matches subject.
func anyCovers(filters []string, subject string) bool {
	for _, f := range filters {
		if subsumes(f, subject) {
			return true
		}
	}
	return false
}

// reservedSubject reports whether s belongs to the server or its clients'
// plumbing ("_INBOX.…" replies, "$JS.API.…", "$SYS.…"): a stream that
// captured such subjects would store every PubAck and API reply.
func reservedSubject(s string) bool {
	return strings.HasPrefix(s, "_") || strings.HasPrefix(s, "$")
}
