package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
)

// A full DATA_DIR under the embedded server: requests get 503 and /readyz
// fails within seconds; once space is back both recover without a restart,
// and every event answered 200 is in the stream.
func TestDiskFullRecoversWithoutRestart(t *testing.T) {
	dataDir := testkit.MountTmpfs(t, "24m")
	natsAddr := "127.0.0.1:" + testkit.FreePortString(t)
	p := startBridge(t, map[string]string{
		"DATA_DIR":             dataDir,
		"NATS_EMBEDDED_LISTEN": natsAddr,
		"PUBLISH_TIMEOUT":      "1s",
	})
	var accepted []string
	post := func() answer {
		body := notification("charge.success", randomReference(), 1000)
		a := p.post(body, sign(body))
		if a.Status == http.StatusOK {
			accepted = append(accepted, a.ID)
		}
		return a
	}
	for range 5 {
		if a := post(); a.Status != http.StatusOK {
			t.Fatalf("before the disk filled: %d %v", a.Status, a.Err)
		}
	}

	filler := filepath.Join(dataDir, "filler")
	testkit.FillDisk(t, filler)
	// Some writes may still fit in a block the store already holds; the
	// store fails at the first one that does not.
	deadline := time.Now().Add(30 * time.Second)
	for {
		a := post()
		if a.Status == http.StatusServiceUnavailable {
			break
		}
		if a.Status != http.StatusOK {
			t.Fatalf("with a full disk: %d %v, want 200 or 503", a.Status, a.Err)
		}
		if time.Now().After(deadline) {
			t.Fatal("requests still answered 200 30s after the disk filled")
		}
	}
	waitStatus(t, p, "/readyz", http.StatusServiceUnavailable, 10*time.Second)
	if a := post(); a.Status != http.StatusServiceUnavailable {
		t.Fatalf("while full: %d, want 503", a.Status)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, p, "/readyz", http.StatusOK, 20*time.Second)
	for range 5 {
		if a := post(); a.Status != http.StatusOK {
			t.Fatalf("after space came back: %d %v", a.Status, a.Err)
		}
	}
	if p.cmd.ProcessState != nil {
		t.Fatal("the bridge restarted or exited")
	}

	stored := map[string]bool{}
	readerURL, _, _, err := natsembed.ReadReaderFile(dataDir, natsembed.DefaultReader)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range storedMessages(t, readerURL, natssink.DefaultStream) {
		stored[m.Header.Get("ce-id")] = true
	}
	for _, id := range accepted {
		if !stored[id] {
			t.Errorf("event %s was answered 200 but is not in the stream", id)
		}
	}
	if code := p.terminate(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// waitStatus polls path until it answers want.
func waitStatus(t *testing.T, p *bridgeProc, path string, want int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := p.get(path)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s = %d for %v, want %d", path, got, limit, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
