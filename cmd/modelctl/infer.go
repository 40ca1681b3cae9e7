package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
	"github.com/tritongate/tritongate/proto/onnx"
)

func newInferCmd() *cobra.Command {
	var (
		server, version string
		inputs, shapes  []string
		batch           int64
		seed            uint64
		timeout, wait   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "infer MODEL --server HOST:PORT",
		Short: "Send one inference to a Triton-protocol server and print the outputs",
		Long: `Send one ModelInfer request to a Triton-protocol server (Triton, tritonlite or
the tritongate gateway) and print what comes back: each output's datatype,
shape and first values, and the round-trip time.

Inputs come from ONNX TensorProto files (--input NAME=FILE.pb, as in the ONNX
node tests) or are generated from the model's metadata with random values.
Variable dimensions of generated inputs are --batch for the leading one of a
batching model and 1 elsewhere, unless --shape sets them.`,
		Example: `  modelctl infer mnist --server localhost:8001
  modelctl infer ranker --server gateway:8001 --batch 8 --shape ids=8,20
  modelctl infer test_add --server localhost:8001 --input x=input_0.pb --input y=input_1.pb`,
		Args: argsCheck(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if server == "" {
				return usageError{errors.New("--server is required")}
			}
			files, err := keyValues("--input", inputs)
			if err != nil {
				return err
			}
			shapeArgs, err := keyValues("--shape", shapes)
			if err != nil {
				return err
			}
			conn, err := grpc.NewClient(server, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return err
			}
			defer conn.Close()
			client := inference.NewGRPCInferenceServiceClient(conn)
			ctx := cmd.Context()
			if wait > 0 {
				if err := waitReady(ctx, client, args[0], version, wait); err != nil {
					return err
				}
			}
			return inferOnce(ctx, cmd.OutOrStdout(), client, args[0], version, files, shapeArgs, batch, seed, timeout)
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "gRPC address of the server (host:port)")
	cmd.Flags().StringVar(&version, "model-version", "", "model version (default: the server's latest)")
	cmd.Flags().StringArrayVar(&inputs, "input", nil, "NAME=FILE.pb: an input from an ONNX TensorProto file (repeatable)")
	cmd.Flags().StringArrayVar(&shapes, "shape", nil, "NAME=D1,D2,...: the full shape of a generated input (repeatable)")
	cmd.Flags().Int64Var(&batch, "batch", 1, "batch size for generated inputs of batching models")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "seed for generated values")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "deadline of the request")
	cmd.Flags().DurationVar(&wait, "wait", 0, "first wait up to this long for the server and model to be ready")
	return cmd
}

func keyValues(flag string, vals []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("%s %q: want NAME=VALUE", flag, v)}
		}
		out[k] = val
	}
	return out, nil
}

func waitReady(ctx context.Context, c inference.GRPCInferenceServiceClient, model, version string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		r, err := c.ModelReady(ctx, &inference.ModelReadyRequest{Name: model, Version: version}, grpc.WaitForReady(true))
		if err == nil && r.Ready {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("model %s not ready after %s: %v", model, wait, status.Convert(err).Message())
			}
			return fmt.Errorf("model %s not ready after %s", model, wait)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func inferOnce(ctx context.Context, w io.Writer, c inference.GRPCInferenceServiceClient, model, version string, files, shapes map[string]string, batch int64, seed uint64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	md, err := c.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: model, Version: version})
	if err != nil {
		return fmt.Errorf("metadata: %s", status.Convert(err).Message())
	}
	cfg, err := c.ModelConfig(ctx, &inference.ModelConfigRequest{Name: model, Version: version})
	if err != nil {
		return fmt.Errorf("config: %s", status.Convert(err).Message())
	}
	batching := cfg.GetConfig().GetMaxBatchSize() > 0
	rng := rand.New(rand.NewPCG(seed, seed))
	var ins []tensor.Tensor
	for _, in := range md.Inputs {
		if f, ok := files[in.Name]; ok {
			t, err := readTensorProto(f)
			if err != nil {
				return err
			}
			t.Name = in.Name
			ins = append(ins, t)
			continue
		}
		shape := slices.Clone(in.Shape)
		if s, ok := shapes[in.Name]; ok {
			if shape, err = parseDims(s); err != nil {
				return usageError{fmt.Errorf("--shape %s=%s: %w", in.Name, s, err)}
			}
		}
		for i, d := range shape {
			if d == -1 {
				shape[i] = 1
				if i == 0 && batching {
					shape[i] = batch
				}
			}
		}
		dt, ok := tensor.Parse(in.Datatype)
		if !ok {
			return fmt.Errorf("input %q has datatype %q", in.Name, in.Datatype)
		}
		t, err := tensor.Random(in.Name, dt, shape, rng)
		if err != nil {
			return fmt.Errorf("input %q: %w", in.Name, err)
		}
		ins = append(ins, t)
	}
	for name := range files {
		if !slices.ContainsFunc(md.Inputs, func(m *inference.ModelMetadataResponse_TensorMetadata) bool { return m.Name == name }) {
			return usageError{fmt.Errorf("--input %s: model %s has no such input", name, model)}
		}
	}
	req := &inference.ModelInferRequest{ModelName: model, ModelVersion: version}
	tensor.SetRequestInputs(req, ins)
	start := time.Now()
	resp, err := c.ModelInfer(ctx, req)
	rtt := time.Since(start)
	if err != nil {
		st := status.Convert(err)
		return fmt.Errorf("%s: %s", st.Code(), st.Message())
	}
	outs, err := tensor.ResponseOutputs(resp)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s version %s: %d outputs in %s\n", resp.ModelName, resp.ModelVersion, len(outs), rtt.Round(time.Microsecond))
	for _, in := range ins {
		fmt.Fprintf(w, "  in  %-20q %-5s %-14s %s\n", in.Name, in.DataType, tensor.FormatShape(in.Shape), preview(in))
	}
	for _, o := range outs {
		fmt.Fprintf(w, "  out %-20q %-5s %-14s %s\n", o.Name, o.DataType, tensor.FormatShape(o.Shape), preview(o))
	}
	return nil
}

func parseDims(s string) ([]int64, error) {
	var out []int64
	for _, p := range strings.Split(s, ",") {
		d, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("dimension %q is not a non-negative integer", p)
		}
		out = append(out, d)
	}
	return out, nil
}

func readTensorProto(path string) (tensor.Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return tensor.Tensor{}, err
	}
	var tp onnx.TensorProto
	if err := proto.Unmarshal(b, &tp); err != nil {
		return tensor.Tensor{}, fmt.Errorf("%s: not an ONNX TensorProto: %w", path, err)
	}
	t, err := tensor.FromTensorProto(&tp)
	if err != nil {
		return tensor.Tensor{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// preview renders the first values of a tensor.
func preview(t tensor.Tensor) string {
	const max = 6
	var parts []string
	if t.DataType == tensor.Bytes {
		elems, err := tensor.DecodeBytes(t.Data)
		if err != nil {
			return "<" + err.Error() + ">"
		}
		for i, e := range elems {
			if i == max {
				parts = append(parts, "...")
				break
			}
			parts = append(parts, strconv.Quote(string(e)))
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	v, err := tensor.Float64s(t)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	for i, x := range v {
		if i == max {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, strconv.FormatFloat(x, 'g', 5, 64))
	}
	return "[" + strings.Join(parts, " ") + "]"
}
