package sinks

import "fmt"

// FieldError is the one error type every package's Config.Validate returns
// for a field it refuses (wrapped with the package's own ErrConfig
// sentinel), so that cmd/ can name the environment variable behind Field
// with one table.
type FieldError struct {
	// Field is the Config field's name, as written in Go ("MaxBodyBytes").
	Field string
	// Reason says what is wrong, without the field's name.
	Reason string
}

// Error returns "Field: Reason".
func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %s", e.Field, e.Reason)
}
