package s3

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// BenchmarkFetch fetches a 256 MiB version (one 224 MiB model and 32 files
// of 1 MiB) from the in-process gofakes3 server over loopback: it measures
// the pipeline (ranged GETs, buffers, WriteAt, hashing), not a network.
func BenchmarkFetch(b *testing.B) {
	files := map[string][]byte{"model.onnx": randBytes(224<<20, 1)}
	for i := range 32 {
		files[fmt.Sprintf("shards/%02d.bin", i)] = randBytes(1<<20, uint64(i+2))
	}
	for _, bc := range []struct {
		name     string
		manifest bool
		conc     int
	}{
		{name: "sha256", manifest: true, conc: 16},
		{name: "md5", conc: 16},
		{name: "sha256-c4", manifest: true, conc: 4},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFake(b)
			f.putVersion(b, "m/1/", files, bc.manifest)
			st := f.store(b, Options{Concurrency: bc.conc})
			m, err := st.Model("s3://models/m/")
			if err != nil {
				b.Fatal(err)
			}
			v, err := m.Describe(context.Background(), 1)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(v.Size())
			b.ResetTimer()
			for b.Loop() {
				dir, err := os.MkdirTemp(b.TempDir(), "fetch")
				if err != nil {
					b.Fatal(err)
				}
				if err := m.Fetch(context.Background(), v, dir, nil); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.RemoveAll(dir)
				b.StartTimer()
			}
		})
	}
}
