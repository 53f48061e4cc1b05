package main

import (
	"encoding/json"
	"strings"
)

// seen remembers the last max ce-ids, so memory stays bounded however long
// the subscriber runs; Senfenico resends for an hour, far fewer events than
// that for any realistic merchant.
type seen struct {
	max   int
	ids   map[string]struct{}
	order []string
}

func newSeen(max int) *seen {
	return &seen{max: max, ids: make(map[string]struct{}, max)}
}

// add records id and reports whether it was new.
func (s *seen) add(id string) bool {
	if _, ok := s.ids[id]; ok {
		return false
	}
	if len(s.order) == s.max {
		delete(s.ids, s.order[0])
		s.order = s.order[1:]
	}
	s.ids[id] = struct{}{}
	s.order = append(s.order, id)
	return true
}

// reference returns data.reference of a body, or "" when there is none.
func reference(body []byte) string {
	var env struct {
		Data struct {
			Reference any `json:"reference"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &env) != nil {
		return ""
	}
	ref, _ := env.Data.Reference.(string)
	return ref
}

// token makes a header or body value safe as one field of the output line:
// printable ASCII without spaces, at most 200 characters, "-" otherwise.
func token(s string) string {
	if s == "" || len(s) > 200 || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return "-"
	}
	return s
}

// traceID returns the trace id of a W3C traceparent
// ("<version>-<trace id>-<span id>-<flags>", lower-case hex, ids not all
// zeros, version not ff), or "" when tp is not one.
func traceID(tp string) string {
	if len(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' || tp[:2] == "ff" {
		return ""
	}
	for _, part := range [...]string{tp[0:2], tp[3:35], tp[36:52], tp[53:55]} {
		if strings.ContainsFunc(part, func(r rune) bool { return (r < '0' || r > '9') && (r < 'a' || r > 'f') }) {
			return ""
		}
	}
	if strings.Trim(tp[3:35], "0") == "" || strings.Trim(tp[36:52], "0") == "" {
		return ""
	}
	return tp[3:35]
}

// traceSuffix is what ends a line: " trace=<trace id>" for a message with a
// valid traceparent, nothing otherwise.
func traceSuffix(tp string) string {
	if id := traceID(tp); id != "" {
		return " trace=" + id
	}
	return ""
}
