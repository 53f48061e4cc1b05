package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestHelpCommand(t *testing.T) {
	var general bytes.Buffer
	usage(&general)
	var serveHelp bytes.Buffer
	serveUsage(&serveHelp)
	tests := []struct {
		name     string
		args     []string
		want     string // stdout, exactly
		wantCode int
	}{
		{"help", []string{"help"}, general.String(), exitOK},
		{"--help", []string{"--help"}, general.String(), exitOK},
		{"-h", []string{"-h"}, general.String(), exitOK},
		{"help help", []string{"help", "help"}, general.String(), exitOK},
		{"help serve", []string{"help", "serve"}, serveHelp.String(), exitOK},
		{"serve --help", []string{"serve", "--help"}, serveHelp.String(), exitOK},
		{"serve -h", []string{"serve", "-h"}, serveHelp.String(), exitOK},
		{"help of an unknown command", []string{"help", "frobnicate"}, "", exitUsage},
		{"help of two commands", []string{"help", "send", "tail"}, "", exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, nil, "", tt.args...)
			if code != tt.wantCode || stdout != tt.want {
				t.Fatalf("exit %d, stdout:\n%s\nstderr: %q; want exit %d and stdout:\n%s", code, stdout, stderr, tt.wantCode, tt.want)
			}
			if code == exitOK && stderr != "" {
				t.Fatalf("help wrote to stderr: %q", stderr)
			}
			if code != exitOK && !strings.Contains(stderr, "senfenico-bridge help") {
				t.Fatalf("stderr %q does not point to help", stderr)
			}
		})
	}
}

// TestHelpOfEachCommand: "help <command>" and "<command> --help" print the
// same text, which names the exit statuses.
func TestHelpOfEachCommand(t *testing.T) {
	for _, name := range append(sortedSubcommands(), "serve") {
		t.Run(name, func(t *testing.T) {
			code, viaHelp, stderr := runCLI(t, nil, "", "help", name)
			if code != exitOK || stderr != "" {
				t.Fatalf("help %s: exit %d, stderr %q", name, code, stderr)
			}
			for _, flag := range []string{"-h", "--help", "-help"} {
				code, viaFlag, _ := runCLI(t, nil, "", name, flag)
				if code != exitOK || viaFlag != viaHelp {
					t.Fatalf("%s %s: exit %d, and its text differs from help %s:\n%s\n---\n%s", name, flag, code, name, viaFlag, viaHelp)
				}
			}
			if !strings.HasPrefix(viaHelp, "Usage: senfenico-bridge ") || !strings.Contains(viaHelp, "Exit status:\n  0  ") {
				t.Fatalf("help %s lacks the usage line or the exit statuses:\n%s", name, viaHelp)
			}
		})
	}
}

// TestServeHelp: the server's help says that configuration is by
// environment, with the defaults the binary really uses.
func TestServeHelp(t *testing.T) {
	var buf bytes.Buffer
	serveUsage(&buf)
	help := buf.String()
	for _, want := range []string{
		"environment variables", "SENFENICO_WEBHOOK_KEYS", "LISTEN_ADDR", "(default :8080)",
		"SINKS", "NATS_URL", "(default 127.0.0.1:4222)", "(default ./data)", "KAFKA_BROKERS",
		"SIGINT or SIGTERM", "within SHUTDOWN_TIMEOUT (default 20s)",
		"  2  usage or configuration error",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("serve help lacks %q:\n%s", want, help)
		}
	}
}

func TestServeRefusesArguments(t *testing.T) {
	code, stdout, stderr := runCLI(t, map[string]string{"SENFENICO_WEBHOOK_KEYS": "k"}, "", "serve", "--port", "8080")
	if code != exitUsage || stdout != "" || !strings.Contains(stderr, "configuration is by environment") || !strings.Contains(stderr, "serve --help") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
