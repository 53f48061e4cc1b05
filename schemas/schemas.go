// Package schemas holds the JSON Schemas (draft 2020-12) of the messages the
// bridge publishes: envelope.json for the body {"event": ..., "data": {...}}
// and one schema per event family (checkout, charge, settlement, transfer)
// for data. The files are embedded, served over HTTP by Handler, and compiled
// by New into a Validator that the bridge and the Go subscriber share.
package schemas

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// Files holds the schema files, named <name>.json at the root.
//
//go:embed *.json
var Files embed.FS

// BaseURL is the prefix of every schema's $id; a schema's $id is BaseURL +
// <name>.json.
const BaseURL = "https://senfenico-bridge.dev/schemas/"

// EnvelopeName is the name of the schema every published body must match.
const EnvelopeName = "envelope"

// ErrInvalid is wrapped by every *ValidationError, so callers can test a
// failed validation with errors.Is(err, ErrInvalid).
var ErrInvalid = errors.New("schemas: invalid body")

// maxReasons bounds a ValidationError, so that a hostile body with thousands
// of bad array items cannot produce a log line of unbounded size.
const maxReasons = 10

// ValidationError describes why a body failed validation. Its text never
// contains a value from the body (values may be personal data), only field
// paths and what is wrong with them.
type ValidationError struct {
	// Family is the family whose data schema was applied, or empty when only
	// the envelope was checked.
	Family  string
	reasons []string
}

// Error returns the reasons on one line.
func (e *ValidationError) Error() string {
	return ErrInvalid.Error() + ": " + strings.Join(e.reasons, "; ")
}

// Unwrap returns ErrInvalid.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// Reasons returns one short line per problem, printable ASCII only, each a
// field path and what is wrong with it ("data.amount: want integer, got
// string"). The slice is a copy; at most a handful are kept.
func (e *ValidationError) Reasons() []string {
	return append([]string(nil), e.reasons...)
}

// Validator checks published bodies against the embedded schemas. It is safe
// for concurrent use; build one with New and share it.
type Validator struct {
	envelope *jsonschema.Schema
	families map[string]*jsonschema.Schema
}

// Names lists the schema names (the file names without .json), sorted.
func Names() []string {
	entries, err := fs.ReadDir(Files, ".")
	if err != nil {
		// The embedded FS is fixed at build time; failing to list it is a
		// broken binary, not a runtime condition.
		panic(fmt.Sprintf("schemas: list embedded files: %v", err))
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok && !e.IsDir() {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// New compiles the embedded schemas once. It fails only if an embedded file
// is not a valid schema, which the package's tests rule out.
func New() (*Validator, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	names := Names()
	for _, name := range names {
		raw, err := Files.ReadFile(name + ".json")
		if err != nil {
			return nil, fmt.Errorf("schemas: read %s: %w", name, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("schemas: parse %s: %w", name, err)
		}
		if err := c.AddResource(BaseURL+name+".json", doc); err != nil {
			return nil, fmt.Errorf("schemas: add %s: %w", name, err)
		}
	}
	v := &Validator{families: make(map[string]*jsonschema.Schema, len(names))}
	for _, name := range names {
		sch, err := c.Compile(BaseURL + name + ".json")
		if err != nil {
			return nil, fmt.Errorf("schemas: compile %s: %w", name, err)
		}
		if name == EnvelopeName {
			v.envelope = sch
			continue
		}
		v.families[name] = sch
	}
	if v.envelope == nil {
		return nil, fmt.Errorf("schemas: %s.json is missing", EnvelopeName)
	}
	return v, nil
}

// Family returns the family of an event name: its first dot-separated token
// ("charge" for "charge.success").
func Family(event string) string {
	family, _, _ := strings.Cut(event, ".")
	return family
}

// Validate checks a published body: the envelope first, then data against
// the schema of the event's family. The family comes from event (the
// CloudEvents type; when empty, the body's own event field); an unknown
// family is checked against the envelope only, because Senfenico may add
// families at any time. When event is not empty and the body names another
// event, the body is invalid too: a consumer would route it wrongly.
//
// It returns nil or a *ValidationError (which wraps ErrInvalid). It does not
// block and is safe for concurrent use.
func (v *Validator) Validate(event string, body []byte) error {
	doc, err := decode(body)
	if err != nil {
		// The decoder's message may quote a byte of the body, so it is not
		// passed on.
		return &ValidationError{reasons: []string{"body: not a single JSON value"}}
	}
	var c collector
	if err := v.envelope.Validate(doc); err != nil {
		c.add(err, "")
	}
	obj, _ := doc.(map[string]any)
	bodyEvent, _ := obj["event"].(string)
	if event == "" {
		event = bodyEvent
	} else if bodyEvent != "" && bodyEvent != event {
		c.push("event: differs from the message's event type")
	}
	verr := &ValidationError{}
	if sch, ok := v.families[Family(event)]; ok {
		verr.Family = Family(event)
		// A data that is missing or not an object was reported by the
		// envelope already; checking it again would only repeat that.
		if data, ok := obj["data"].(map[string]any); ok {
			if err := sch.Validate(data); err != nil {
				c.add(err, "data")
			}
		}
	}
	if len(c.reasons) == 0 {
		return nil
	}
	verr.reasons = c.finish()
	return verr
}

// collector turns the library's error tree into bounded, value-free lines.
type collector struct {
	reasons []string
	dropped int
}

func (c *collector) push(reason string) {
	if len(c.reasons) >= maxReasons {
		c.dropped++
		return
	}
	c.reasons = append(c.reasons, reason)
}

func (c *collector) finish() []string {
	if c.dropped > 0 {
		c.reasons = append(c.reasons, fmt.Sprintf("and %d more", c.dropped))
	}
	return c.reasons
}

func (c *collector) add(err error, prefix string) {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		c.push(pathString(prefix, nil) + ": cannot be validated")
		return
	}
	c.walk(ve, prefix)
}

func (c *collector) walk(ve *jsonschema.ValidationError, prefix string) {
	if len(ve.Causes) > 0 {
		for _, cause := range ve.Causes {
			c.walk(cause, prefix)
		}
		return
	}
	path := pathString(prefix, ve.InstanceLocation)
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		for _, m := range k.Missing {
			c.push(joinPath(path, m) + ": missing")
		}
	case *kind.Type:
		c.push(path + ": want " + strings.Join(k.Want, " or ") + ", got " + k.Got)
	case *kind.Pattern:
		c.push(path + ": does not match the expected pattern")
	case *kind.MinLength:
		c.push(fmt.Sprintf("%s: shorter than %d characters", path, k.Want))
	case *kind.MaxLength:
		c.push(fmt.Sprintf("%s: longer than %d characters", path, k.Want))
	case *kind.FalseSchema:
		c.push(path + ": not allowed")
	default:
		// Other kinds' texts may quote the value (enum, const, format), so
		// only the keyword is named.
		c.push(path + ": fails " + sanitize(strings.Join(ve.ErrorKind.KeywordPath(), "/")))
	}
}

// pathString renders an instance location as data.confirmation_attempts[0].ip_address.
func pathString(prefix string, loc []string) string {
	path := prefix
	for _, tok := range loc {
		path = joinPath(path, tok)
	}
	if path == "" {
		return "body"
	}
	return path
}

func joinPath(path, tok string) string {
	if tok != "" && strings.Trim(tok, "0123456789") == "" {
		return path + "[" + tok + "]"
	}
	if path == "" || path == "body" {
		return sanitize(tok)
	}
	return path + "." + sanitize(tok)
}

// sanitize keeps reasons on one printable ASCII line whatever the field
// names in the body hold.
func sanitize(s string) string {
	const maxLen = 64
	var b strings.Builder
	for i, r := range s {
		if i >= maxLen {
			b.WriteString("...")
			break
		}
		if r < 0x20 || r > 0x7e {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}
