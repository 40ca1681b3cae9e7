package s3

import (
	"testing"
)

func FuzzJournal(f *testing.F) {
	f.Add([]byte(`{"op":"file","path":"m","file":{"size":10,"loc":"s3://b/k","part_size":4}}` + "\n" + `{"op":"part","path":"m","part":1}` + "\n" + `{"op":"done","path":"m"}` + "\n"))
	f.Add([]byte(`{"op":"part","path":"m","part":1}` + "\n"))
	f.Add([]byte(`{"op":"file","path":"m","size":10` + "\n" + `{"op":"par`))
	f.Fuzz(func(t *testing.T, data []byte) {
		prior, keep, err := parseJournal(data)
		if err != nil {
			return
		}
		if keep < 0 || keep > len(data) || keep > 0 && data[keep-1] != '\n' {
			t.Fatalf("keep = %d for %q", keep, data)
		}
		for _, info := range prior {
			for i := range info.parts {
				if i < 0 {
					t.Fatalf("negative part %d", i)
				}
			}
		}
	})
}
