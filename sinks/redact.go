package sinks

import "strings"

// RedactURLs hides the user information (user:password@, token@) of every
// address in a comma-separated list of broker URLs or host:port addresses,
// with or without a scheme, so that the list can go into a log line or an
// error. Every sink and the binary redact addresses with it.
func RedactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		prefix, rest := "", p
		if scheme, after, ok := strings.Cut(p, "://"); ok {
			prefix, rest = scheme+"://", after
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			parts[i] = prefix + "[redacted]@" + rest[at+1:]
		}
	}
	return strings.Join(parts, ",")
}
