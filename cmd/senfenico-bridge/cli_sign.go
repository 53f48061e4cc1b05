package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
)

func init() {
	subcommands["sign"] = subcommand{summary: "print the X-Webhook-Hash of the body on stdin", run: runSign}
}

func runSign(_ context.Context, args []string, env map[string]string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("sign", "[--key KEY] < body.json",
		`Sign reads a request body on standard input and prints the X-Webhook-Hash
header Senfenico would send with it: the hex SHA-256 of the body followed by
the key. The body is hashed byte for byte, so a trailing newline counts (use
printf or a file rather than echo). The key is the first of
SENFENICO_WEBHOOK_KEYS unless --key is given.

Example:
  hash=$(senfenico-bridge sign < body.json)
  curl -H "X-Webhook-Hash: $hash" --data-binary @body.json http://127.0.0.1:8080/webhooks/senfenico`)
	key := fs.String("key", "", keyFlagHelp)
	pos, code, ok := parseFlags(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(stderr, "sign", "takes no arguments, got %q (the body comes on stdin)", pos)
	}
	k, err := signingKey(*key, env)
	if err != nil {
		fmt.Fprintf(stderr, "senfenico-bridge sign: %v\n", err)
		return exitUsage
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	body, err := io.ReadAll(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "senfenico-bridge sign: read stdin: %v\n", err)
		return exitFailed
	}
	fmt.Fprintln(stdout, webhook.Sign(body, k))
	return exitOK
}
