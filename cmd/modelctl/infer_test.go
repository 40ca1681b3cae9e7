package main

import (
	"strings"
	"testing"

	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
)

func TestInferCommand(t *testing.T) {
	repo := t.TempDir()
	litetest.WriteModel(t, repo, "ident", litetest.Identity("ident"))
	litetest.WriteModel(t, repo, "words", `name: "words" backend: "identity" max_batch_size: 0
input [ { name: "IN" data_type: TYPE_STRING dims: [ -1 ] } ] output [ { name: "OUT" data_type: TYPE_STRING dims: [ -1 ] } ]`)
	s := litetest.Start(t, repo, litetest.Config{TCP: true})
	code, out, errOut := modelctl(t, "infer", "ident", "--server", s.Addr, "--batch", "3", "--wait", "5s")
	if code != 0 || !strings.Contains(out, `out "OUTPUT0"`) || !strings.Contains(out, "[3,4]") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = modelctl(t, "infer", "words", "--server", s.Addr, "--shape", "IN=3")
	if code != 0 || !strings.Contains(out, `BYTES [3]`) {
		t.Fatalf("exit %d\n%s", code, out)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"infer", "ident"}, 2, "--server is required"},
		{[]string{"infer", "nope", "--server", s.Addr}, 1, "metadata: Request for unknown model: 'nope' is not found"},
		{[]string{"infer", "ident", "--server", s.Addr, "--shape", "INPUT0=2,x"}, 2, `dimension "x" is not a non-negative integer`},
		{[]string{"infer", "ident", "--server", s.Addr, "--shape", "INPUT0=2,5"}, 1, "InvalidArgument: [request id: <id_unknown>] unexpected shape for input 'INPUT0'"},
		{[]string{"infer", "ident", "--server", s.Addr, "--input", "INPUT0=x.pb"}, 1, "no such file"},
		{[]string{"infer", "ident", "--server", s.Addr, "--input", "OTHER=x.pb"}, 2, "--input OTHER: model ident has no such input"},
		{[]string{"infer", "ident", "--server", s.Addr, "--input", "novalue"}, 2, "want NAME=VALUE"},
	}
	for _, tc := range tests {
		code, _, errOut := modelctl(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}
