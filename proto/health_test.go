package proto_test

import (
	"os"
	"testing"

	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// TestTritonHealthMatchesGRPC checks that grpc-go's grpc.health.v1 package is
// wire-compatible with the health.proto vendored from Triton: every message,
// field (number, kind, cardinality), enum value and rpc of Triton's file exists
// identically in grpc-go's.
func TestTritonHealthMatchesGRPC(t *testing.T) {
	b, err := os.ReadFile("inference/health.binpb")
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		t.Fatal(err)
	}
	triton, err := files.FindFileByPath("health.proto")
	if err != nil {
		t.Fatal(err)
	}
	grpcFile := grpc_health_v1.File_grpc_health_v1_health_proto
	if triton.Package() != grpcFile.Package() {
		t.Fatalf("package %s vs %s", triton.Package(), grpcFile.Package())
	}
	msgs := triton.Messages()
	if msgs.Len() == 0 {
		t.Fatal("no messages in Triton's health.proto")
	}
	for i := range msgs.Len() {
		compareMessage(t, msgs.Get(i), grpcFile.Messages().ByName(msgs.Get(i).Name()))
	}
	svcs := triton.Services()
	for i := range svcs.Len() {
		ts := svcs.Get(i)
		gs := grpcFile.Services().ByName(ts.Name())
		if gs == nil {
			t.Fatalf("service %s missing in grpc-go", ts.Name())
		}
		for j := range ts.Methods().Len() {
			tm := ts.Methods().Get(j)
			gm := gs.Methods().ByName(tm.Name())
			if gm == nil || gm.Input().FullName() != tm.Input().FullName() || gm.Output().FullName() != tm.Output().FullName() ||
				gm.IsStreamingClient() != tm.IsStreamingClient() || gm.IsStreamingServer() != tm.IsStreamingServer() {
				t.Errorf("rpc %s differs", tm.FullName())
			}
		}
	}
}

func compareMessage(t *testing.T, tm, gm protoreflect.MessageDescriptor) {
	t.Helper()
	if gm == nil {
		t.Fatalf("message %s missing in grpc-go", tm.FullName())
	}
	for i := range tm.Fields().Len() {
		tf := tm.Fields().Get(i)
		gf := gm.Fields().ByNumber(tf.Number())
		if gf == nil || gf.Name() != tf.Name() || gf.Kind() != tf.Kind() || gf.Cardinality() != tf.Cardinality() {
			t.Errorf("field %s differs", tf.FullName())
			continue
		}
		if tf.Kind() == protoreflect.EnumKind {
			te, ge := tf.Enum(), gf.Enum()
			for j := range te.Values().Len() {
				tv := te.Values().Get(j)
				if gv := ge.Values().ByNumber(tv.Number()); gv == nil || gv.Name() != tv.Name() {
					t.Errorf("enum value %s differs", tv.FullName())
				}
			}
		}
	}
	for i := range tm.Messages().Len() {
		compareMessage(t, tm.Messages().Get(i), gm.Messages().ByName(tm.Messages().Get(i).Name()))
	}
}
