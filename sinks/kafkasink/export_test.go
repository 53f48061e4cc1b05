package kafkasink

import "time"

// SetLimitRereadAfter shortens how old a topic's max.message.bytes may be
// before a refusal reads it again, for tests; it returns the undo.
func SetLimitRereadAfter(d time.Duration) (restore func()) {
	saved := limitRereadAfter
	limitRereadAfter = d
	return func() { limitRereadAfter = saved }
}
