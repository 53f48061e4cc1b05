package main

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/caarlos0/env/v11"
)

// The README's configuration table lists every variable, and each default
// it states is the one the binary pre-fills: parsing the README's default
// as the variable's value gives the pre-filled value back.
func TestREADMEDefaults(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
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
			t.Errorf("%s is not in the README's configuration table", variable)
			continue
		}
		var fromREADME config
		// The one required variable has no default to compare.
		environ := map[string]string{"SENFENICO_WEBHOOK_KEYS": "k"}
		switch {
		case def == "required":
			continue
		case def == "empty":
		case strings.HasPrefix(def, "`") && strings.HasSuffix(def, "`"):
			environ[variable] = strings.Trim(def, "`")
		default:
			t.Errorf("%s: README default %q is neither `value`, empty nor required", variable, def)
			continue
		}
		if err := env.ParseWithOptions(&fromREADME, env.Options{Environment: environ}); err != nil {
			t.Errorf("%s: README default %q does not parse: %v", variable, def, err)
			continue
		}
		if got, want := reflect.ValueOf(fromREADME).Field(i).Interface(), defaults.Field(i).Interface(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: README says %s (%v), the binary defaults to %v", variable, def, got, want)
		}
	}
}
