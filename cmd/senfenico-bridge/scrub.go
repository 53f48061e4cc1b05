package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
)

// scrubWriter replaces every secret in what is written through it with
// "[redacted]". The configuration's LogValue and the packages' own
// redaction keep secrets out of the lines the bridge writes; this is the
// guard for the lines it does not control, such as a library's error that
// quotes a broker address with its password. Log lines are written whole,
// one per Write, so a secret is never split across two calls.
type scrubWriter struct {
	out     io.Writer
	secrets [][]byte
}

// newScrubWriter returns out itself when there is nothing to hide.
func newScrubWriter(out io.Writer, secrets []string) io.Writer {
	w := &scrubWriter{out: out}
	for _, s := range secrets {
		w.secrets = append(w.secrets, []byte(s))
		// The JSON handler escapes quotes, backslashes and control
		// characters: hide the escaped form too.
		if quoted, err := json.Marshal(s); err == nil {
			if escaped := quoted[1 : len(quoted)-1]; string(escaped) != s {
				w.secrets = append(w.secrets, escaped)
			}
		}
	}
	if len(w.secrets) == 0 {
		return out
	}
	return w
}

func (w *scrubWriter) Write(p []byte) (int, error) {
	line := p
	for _, s := range w.secrets {
		if bytes.Contains(line, s) {
			line = bytes.ReplaceAll(line, s, []byte("[redacted]"))
		}
	}
	if _, err := w.out.Write(line); err != nil {
		return 0, err
	}
	return len(p), nil
}

// scrub replaces every secret in s, for lines written without the logger.
func scrub(s string, secrets []string) string {
	for _, secret := range secrets {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	return s
}
