package spool_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/spool"
)

// A disk that fills under SPOOL_DIR (before SPOOL_MAX_BYTES is reached):
// storing fails with ErrUnavailable (a 503, never a 200) and Ready says so
// within seconds; once space is back both recover without a restart, and
// every event stored before and after is forwarded.
func TestFullDiskUnderTheSpoolRecovers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small filesystem needs root (CI runs as root)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })

	next := newFlaky("nats")
	next.setDown(true, false)
	s := wrap(t, open(t, filepath.Join(dir, "spool"), func(c *spool.Config) { c.MaxBytes = 1 << 30 }), next)
	var accepted []string
	for i := range 5 {
		publish(t, s, message(i))
		accepted = append(accepted, message(i).ID)
	}

	filler := filepath.Join(dir, "filler")
	testkit.FillDisk(t, filler)
	var err error
	for i := 5; i < 200 && err == nil; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = s.Publish(ctx, message(i))
		cancel()
		if err == nil {
			accepted = append(accepted, message(i).ID)
		}
	}
	if !errors.Is(err, sinks.ErrUnavailable) {
		t.Fatalf("storing on a full disk: %v, want sinks.ErrUnavailable", err)
	}
	waitFor(t, "Ready to fail on a full disk", func() bool {
		return errors.Is(s.Ready(context.Background()), sinks.ErrUnavailable)
	})

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Ready once the disk has room again", func() bool { return s.Ready(context.Background()) == nil })
	after := message(500)
	if r := publish(t, s, after); !r.Spooled {
		t.Fatalf("after recovery: %+v, want spooled", r)
	}
	accepted = append(accepted, after.ID)

	next.setDown(false, false)
	next.waitIDs(t, accepted)
}
