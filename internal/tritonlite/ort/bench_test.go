package ort

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tritongate/tritongate/internal/onnxmodel"
	"github.com/tritongate/tritongate/internal/onnxmodel/onnxtest"
	"github.com/tritongate/tritongate/internal/pbtxt"
	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite"
	"github.com/tritongate/tritongate/internal/tritonlite/litetest"
	"github.com/tritongate/tritongate/proto/inference"
	"github.com/tritongate/tritongate/proto/onnx"
)

// denseModel writes a batch-friendly model: y = Relu(x · W) with x [N,1024]
// and a 1024x1024 weight matrix. One row at a time it is a matrix-vector
// product that streams the whole 4 MiB of weights per request; batched, the
// weights are read once per batch.
func denseModel(b *testing.B, path string) {
	const k = 1024
	rng := rand.New(rand.NewPCG(9, 9))
	w, _ := tensor.Random("W", tensor.FP32, []int64{k, k}, rng)
	wp, err := tensor.ToTensorProto(w)
	if err != nil {
		b.Fatal(err)
	}
	m := onnxtest.Model(
		[]*onnx.ValueInfoProto{onnxtest.Tensor("x", onnx.TensorProto_FLOAT, "N", k)},
		[]*onnx.ValueInfoProto{onnxtest.Tensor("y", onnx.TensorProto_FLOAT, "N", k)},
		&onnx.NodeProto{OpType: new("MatMul"), Input: []string{"x", "W"}, Output: []string{"h"}},
		&onnx.NodeProto{OpType: new("Relu"), Input: []string{"h"}, Output: []string{"y"}},
	)
	m.Graph.Initializer = []*onnx.TensorProto{wp}
	onnxtest.Write(b, path, m)
}

// BenchmarkDynamicBatching measures throughput on a dense model (see
// denseModel) with 32 concurrent clients over loopback gRPC and one model
// instance, with the dynamic batcher off and on. Compare req/s.
func BenchmarkDynamicBatching(b *testing.B) {
	initORT(b)
	file := filepath.Join(b.TempDir(), "dense.onnx")
	denseModel(b, file)
	mbs := int32(32)
	for _, batching := range []bool{false, true} {
		name := "off"
		if batching {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			repo := b.TempDir()
			on := batching
			addModel(b, repo, "m", file, pbtxt.GenerateOptions{MaxBatchSize: &mbs, DynamicBatching: &on,
				Pool: pbtxt.PoolOverride{Kind: inference.ModelInstanceGroup_KIND_CPU, Count: 1}})
			p := filepath.Join(repo, "m", pbtxt.ConfigFile)
			c, _ := os.ReadFile(p)
			c = append(c, litetest.Param("intra_op_thread_count", "1")...)
			if batching {
				c = []byte(strings.Replace(string(c), "dynamic_batching {", "dynamic_batching {\n  max_queue_delay_microseconds: 100", 1))
			}
			os.WriteFile(p, c, 0o644)
			s := litetest.Start(b, repo, litetest.Config{TCP: true, Options: tritonlite.Options{Backends: backends(), ExitOnError: true}})
			rng := rand.New(rand.NewPCG(1, 1))
			x, _ := tensor.Random("x", tensor.FP32, []int64{1, 1024}, rng)
			req := &inference.ModelInferRequest{ModelName: "m"}
			tensor.SetRequestInputs(req, []tensor.Tensor{x})
			b.SetParallelism(16) // 32 clients on 2 CPUs
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Client.ModelInfer(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
			st, _ := s.Client.ModelStatistics(context.Background(), &inference.ModelStatisticsRequest{Name: "m"})
			if ms := st.GetModelStats(); len(ms) > 0 && ms[0].ExecutionCount > 0 {
				b.ReportMetric(float64(ms[0].InferenceCount)/float64(ms[0].ExecutionCount), "rows/exec")
			}
		})
	}
}

// BenchmarkExecute measures one execution of a Relu on a [1,n] FP32 input
// straight through the executor, for a small and a large output: the cost
// of tritonlite's part (inputs and outputs in and out of ONNX Runtime, which
// allocates the outputs) next to ORT's own.
func BenchmarkExecute(b *testing.B) {
	initORT(b)
	for _, n := range []int{16, 1024, 65536} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "relu.onnx")
			onnxtest.Write(b, path, onnxtest.Model(
				[]*onnx.ValueInfoProto{onnxtest.Tensor("x", onnx.TensorProto_FLOAT, "N", n)},
				[]*onnx.ValueInfoProto{onnxtest.Tensor("y", onnx.TensorProto_FLOAT, "N", n)},
				&onnx.NodeProto{OpType: new("Relu"), Input: []string{"x"}, Output: []string{"y"}}))
			sig, err := onnxmodel.Inspect(path)
			if err != nil {
				b.Fatal(err)
			}
			ex, err := Backend{}.NewExecutor(context.Background(), tritonlite.Instance{Config: &inference.ModelConfig{}, ModelPath: path, Signature: sig})
			if err != nil {
				b.Fatal(err)
			}
			defer ex.Close()
			x, _ := tensor.Random("x", tensor.FP32, []int64{1, int64(n)}, rand.New(rand.NewPCG(1, 1)))
			for b.Loop() {
				if _, err := ex.Execute(context.Background(), []tensor.Tensor{x}, []string{"y"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
