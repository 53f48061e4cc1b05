package sinks

import "testing"

func TestRedactURLs(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "empty", in: "", want: ""},
		{name: "no user information", in: "nats://h:4222,nats://g:4222", want: "nats://h:4222,nats://g:4222"},
		{name: "password", in: "nats://u:s3cret@h:4222", want: "nats://[redacted]@h:4222"},
		{name: "token", in: "nats://t0ken@h:4222", want: "nats://[redacted]@h:4222"},
		{name: "no scheme", in: "u:s3cret@h:4222", want: "[redacted]@h:4222"},
		{name: "an @ in the password", in: "nats://u:p@ss@h:4222", want: "nats://[redacted]@h:4222"},
		{name: "one of a list", in: "nats://h:1,nats://u:s3cret@g:2", want: "nats://h:1,nats://[redacted]@g:2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := RedactURLs(tc.in); got != tc.want {
				t.Fatalf("RedactURLs(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
