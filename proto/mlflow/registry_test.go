package mlflow_test

import (
	"testing"

	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	_ "github.com/tritongate/tritongate/proto/inference"
	mlflowpb "github.com/tritongate/tritongate/proto/mlflow"
	"github.com/tritongate/tritongate/proto/mlflow/artifacts"
	"github.com/tritongate/tritongate/proto/mlflow/databricks"
	"github.com/tritongate/tritongate/proto/mlflow/scalapb"
	_ "github.com/tritongate/tritongate/proto/onnx"
)

// Linking this test binary already proves that the MLflow files register
// without conflict next to the other generated packages (protobuf-go panics
// at init on a duplicate name). The test checks the layout the Makefile
// relies on: each real file registered once under the name its importers
// use, and the two forwarding files defining nothing of their own.
func TestRegistryLayout(t *testing.T) {
	_ = grpc_health_v1.HealthCheckResponse_SERVING // linked with the rest

	real := map[string]string{ // file path -> proto package
		"model_registry.proto":   "mlflow",
		"databricks.proto":       "mlflow",
		"scalapb/scalapb.proto":  "scalapb",
		"mlflow_artifacts.proto": "mlflow.artifacts",
	}
	for path, pkg := range real {
		fd, err := protoregistry.GlobalFiles.FindFileByPath(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if got := string(fd.Package()); got != pkg {
			t.Errorf("%s: package %q, want %q", path, got, pkg)
		}
	}
	forward := map[string]string{
		"mlflow/protos/databricks.proto":      "databricks.proto",
		"mlflow/protos/scalapb/scalapb.proto": "scalapb/scalapb.proto",
	}
	for path, target := range forward {
		fd, err := protoregistry.GlobalFiles.FindFileByPath(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if n := fd.Messages().Len() + fd.Enums().Len() + fd.Extensions().Len() + fd.Services().Len(); n != 0 {
			t.Errorf("%s declares %d symbols, want none (forwarding file)", path, n)
		}
		if fd.Imports().Len() != 1 || !fd.Imports().Get(0).IsPublic || fd.Imports().Get(0).Path() != target {
			t.Errorf("%s: want exactly one public import of %s", path, target)
		}
	}

	// Every symbol of the MLflow packages lives in one of the real files.
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		switch fd.Package() {
		case "mlflow", "mlflow.artifacts", "scalapb":
			if _, ok := real[fd.Path()]; !ok {
				if _, ok := forward[fd.Path()]; !ok {
					t.Errorf("unexpected file %s in package %s", fd.Path(), fd.Package())
				}
			}
		}
		return true
	})
	for name, file := range map[protoreflect.FullName]string{
		"mlflow.ModelVersion":            "model_registry.proto",
		"mlflow.ErrorCode":               "databricks.proto",
		"mlflow.rpc":                     "databricks.proto",
		"scalapb.options":                "scalapb/scalapb.proto",
		"mlflow.artifacts.FileInfo":      "mlflow_artifacts.proto",
		"mlflow.GetModelVersionByAlias":  "model_registry.proto",
		"mlflow.artifacts.ListArtifacts": "mlflow_artifacts.proto",
	} {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := d.ParentFile().Path(); got != file {
			t.Errorf("%s defined in %s, want %s", name, got, file)
		}
	}
}

// TestRPCOptions reads MLflow's (rpc) method options through the forwarding
// files: the REST method and path of each RPC the client uses.
func TestRPCOptions(t *testing.T) {
	for _, tc := range []struct {
		file    protoreflect.FileDescriptor
		service protoreflect.Name
		method  protoreflect.Name
		verb    string
		path    string
	}{
		{mlflowpb.File_model_registry_proto, "ModelRegistryService", "getModelVersionByAlias", "GET", "/mlflow/registered-models/alias"},
		{mlflowpb.File_model_registry_proto, "ModelRegistryService", "searchModelVersions", "GET", "/mlflow/model-versions/search"},
		{mlflowpb.File_model_registry_proto, "ModelRegistryService", "getModelVersion", "GET", "/mlflow/model-versions/get"},
		{mlflowpb.File_model_registry_proto, "ModelRegistryService", "getModelVersionDownloadUri", "GET", "/mlflow/model-versions/get-download-uri"},
		{artifacts.File_mlflow_artifacts_proto, "MlflowArtifactsService", "listArtifacts", "GET", "/mlflow-artifacts/artifacts"},
		{artifacts.File_mlflow_artifacts_proto, "MlflowArtifactsService", "downloadArtifact", "GET", "/mlflow-artifacts/artifacts/<path:artifact_path>"},
	} {
		sd := tc.file.Services().ByName(tc.service)
		if sd == nil {
			t.Fatalf("no service %s", tc.service)
		}
		md := sd.Methods().ByName(tc.method)
		if md == nil {
			t.Fatalf("no method %s.%s", tc.service, tc.method)
		}
		opts := md.Options().(*descriptorpb.MethodOptions)
		rpc, ok := proto.GetExtension(opts, databricks.E_Rpc).(*databricks.DatabricksRpcOptions)
		if !ok || len(rpc.GetEndpoints()) == 0 {
			t.Fatalf("%s: no (rpc) endpoints", tc.method)
		}
		ep := rpc.GetEndpoints()[0]
		if ep.GetMethod() != tc.verb || ep.GetPath() != tc.path {
			t.Errorf("%s: %s %s, want %s %s", tc.method, ep.GetMethod(), ep.GetPath(), tc.verb, tc.path)
		}
	}
	// File options from scalapb resolve too.
	fo := mlflowpb.File_model_registry_proto.Options().(*descriptorpb.FileOptions)
	if sp, ok := proto.GetExtension(fo, scalapb.E_Options).(*scalapb.ScalaPbOptions); !ok || !sp.GetFlatPackage() {
		t.Errorf("model_registry.proto: (scalapb.options).flat_package not set")
	}
}
