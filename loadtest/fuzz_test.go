package loadtest

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzParsers: the flag and SLO parsers never panic and, when they accept,
// produce something valid.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{"p99<=20ms,errors<=0.1%", "100:10s,2k:1s", "1:64", "1,2,4", "rps>=1k", "500/s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if slos, err := ParseSLOs(s); err == nil {
			for _, slo := range slos {
				if slo.Op == "" || slo.Metric == "" {
					t.Fatalf("accepted %q as %+v", s, slo)
				}
			}
		}
		if p, err := ParseSteps(s); err == nil {
			if err := p.Validate(); err != nil {
				t.Fatalf("ParseSteps(%q) accepted an invalid profile: %v", s, err)
			}
		}
		if l, err := ParseLevels(s); err == nil && (len(l) == 0 || l[0] < 1) {
			t.Fatalf("ParseLevels(%q) = %v", s, l)
		}
		if r, err := ParseRate(s); err == nil && r < 0 {
			t.Fatalf("ParseRate(%q) = %v", s, r)
		}
	})
}

// FuzzJSONTensor: KServe v2 JSON tensors decode to valid tensors or errors.
func FuzzJSONTensor(f *testing.F) {
	f.Add([]byte(`{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}`))
	f.Add([]byte(`{"name":"s","shape":[2],"datatype":"BYTES","data":["a","b"]}`))
	f.Add([]byte(`{"name":"i","shape":[3],"datatype":"INT8","data":[1,-128,127]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var jt jsonTensor
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if dec.Decode(&jt) != nil {
			return
		}
		if len(jt.Shape) > 8 {
			return
		}
		for _, d := range jt.Shape {
			if d > 1<<16 {
				return
			}
		}
		ten, err := jt.tensor()
		if err != nil {
			return
		}
		if err := ten.Validate(); err != nil {
			t.Fatalf("accepted tensor is invalid: %v", err)
		}
	})
}
