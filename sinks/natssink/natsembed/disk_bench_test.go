package natsembed_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkDiskSync measures what SyncAlways costs on the disk under
// StoreDir (BENCHMARK_DISK_DIR, default a temporary directory): appends of
// one stored event's size, each followed by fsync, from 1, 4 and 16 files
// at once. The server stores a stream's messages one after another, so a
// stream is limited to the 1-file rate; the others show how far the disk
// itself would go with syncs in parallel (BENCHMARKS.md).
func BenchmarkDiskSync(b *testing.B) {
	dir := os.Getenv("BENCHMARK_DISK_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	record := make([]byte, 600) // a charge.success body with its headers
	for _, files := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("files=%d", files), func(b *testing.B) {
			fds := make([]*os.File, files)
			for i := range fds {
				f, err := os.Create(filepath.Join(dir, fmt.Sprintf("sync-bench-%d", i)))
				if err != nil {
					b.Fatal(err)
				}
				defer os.Remove(f.Name())
				defer f.Close()
				fds[i] = f
			}
			// Each file's writer claims syncs until b.N are done.
			var claimed atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, f := range fds {
				wg.Go(func() {
					for claimed.Add(1) <= int64(b.N) {
						if _, err := f.Write(record); err != nil {
							b.Error(err)
						}
						if err := f.Sync(); err != nil {
							b.Error(err)
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "syncs/s")
		})
	}
}
