package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/caarlos0/env/v11"
)

// The configuration table (docs/configuration.md) lists every variable,
// and each default it states is the one the binary pre-fills: parsing its default
// as the variable's value gives the pre-filled value back.
func TestDocumentedDefaults(t *testing.T) {
	// The spool's variables are in the spool's own page.
	var readme []byte
	for _, page := range []string{"../../docs/configuration.md", "../../docs/spool.md"} {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		readme = append(readme, text...)
	}
	row := regexp.MustCompile("(?m)^\\| ((?:`[A-Z0-9_]+`(?:, )?)+) \\| ([^|]*) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		def := strings.TrimSpace(m[2])
		for _, v := range strings.Split(m[1], ", ") {
			documented[strings.Trim(v, "`")] = def
		}
	}
	defaults := reflect.ValueOf(defaultConfig())
	typ := defaults.Type()
	for i := range typ.NumField() {
		variable, _, _ := strings.Cut(typ.Field(i).Tag.Get("env"), ",")
		def, ok := documented[variable]
		if !ok {
			t.Errorf("%s is not in docs/configuration.md (nor docs/spool.md)", variable)
			continue
		}
		var fromDocs config
		// The one required variable has no default to compare.
		environ := map[string]string{"SENFENICO_WEBHOOK_KEYS": "k"}
		switch {
		case def == "required":
			continue
		case def == "empty":
		case strings.HasPrefix(def, "`") && strings.HasSuffix(def, "`"):
			environ[variable] = strings.Trim(def, "`")
		default:
			t.Errorf("%s: documented default %q is neither `value`, empty nor required", variable, def)
			continue
		}
		if err := env.ParseWithOptions(&fromDocs, env.Options{Environment: environ}); err != nil {
			t.Errorf("%s: documented default %q does not parse: %v", variable, def, err)
			continue
		}
		if got, want := reflect.ValueOf(fromDocs).Field(i).Interface(), defaults.Field(i).Interface(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: docs/configuration.md says %s (%v), the binary defaults to %v", variable, def, got, want)
		}
	}
}

// Every relative link of the README and docs/ names a file that exists, and
// the README stays the short front door the issue asked for.
func TestDocumentationLinks(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md", "../../BENCHMARKS.md")
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(text), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
				t.Errorf("%s links to %s, which does not exist", f, target)
			}
		}
	}
	readme, _ := os.ReadFile("../../README.md")
	if n := strings.Count(string(readme), "\n"); n > 300 {
		t.Errorf("README.md has %d lines, more than 300: move a topic to docs/", n)
	}
}
