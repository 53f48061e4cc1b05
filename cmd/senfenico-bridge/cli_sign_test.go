package main

import (
	"strings"
	"testing"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
)

func TestSign(t *testing.T) {
	v := vectors.Load().Vectors[0]
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		stdin    string
		wantCode int
		want     string // stdout, or a word stderr must contain
	}{
		{"shared vector", map[string]string{"SENFENICO_WEBHOOK_KEYS": v.Key}, nil, v.Body, exitOK, *v.Header + "\n"},
		{"first key signs, trimmed", map[string]string{"SENFENICO_WEBHOOK_KEYS": " " + v.Key + " ,other"}, nil, v.Body, exitOK, *v.Header + "\n"},
		{"bytes as given, newline included", map[string]string{"SENFENICO_WEBHOOK_KEYS": "k"}, nil, "{}\n", exitOK, webhook.Sign([]byte("{}\n"), "k") + "\n"},
		{"empty body", map[string]string{"SENFENICO_WEBHOOK_KEYS": "k"}, nil, "", exitOK, webhook.Sign(nil, "k") + "\n"},
		{"--key overrides", map[string]string{"SENFENICO_WEBHOOK_KEYS": "other"}, []string{"--key", v.Key}, v.Body, exitOK, *v.Header + "\n"},
		{"--key without env", nil, []string{"--key=" + v.Key}, v.Body, exitOK, *v.Header + "\n"},
		{"no key", nil, nil, v.Body, exitUsage, "SENFENICO_WEBHOOK_KEYS"},
		{"blank first key", map[string]string{"SENFENICO_WEBHOOK_KEYS": " ,k"}, nil, v.Body, exitUsage, "SENFENICO_WEBHOOK_KEYS"},
		{"argument", map[string]string{"SENFENICO_WEBHOOK_KEYS": "k"}, []string{"body.json"}, "", exitUsage, "stdin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.env, tt.stdin, append([]string{"sign"}, tt.args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.wantCode, stderr)
			}
			if code == exitOK {
				if stdout != tt.want || stderr != "" {
					t.Fatalf("stdout %q, stderr %q; want stdout %q", stdout, stderr, tt.want)
				}
				return
			}
			if stdout != "" || !strings.Contains(strings.SplitN(stderr, "\n", 2)[0], tt.want) {
				t.Fatalf("stdout %q, stderr %q: want the first stderr line to name %s", stdout, stderr, tt.want)
			}
		})
	}
}
