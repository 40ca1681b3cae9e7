// Package ort is tritonlite's ONNX Runtime backend: it runs ONNX models on CPU
// through github.com/yalue/onnxruntime_go. It is the only cgo in tritongate;
// the runtime library is loaded at start-up from ONNXRUNTIME_LIB or the path
// given to Init.
package ort

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/tritongate/tritongate/internal/onnxmodel"
	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/internal/tritonlite"
)

// Version is the ONNX Runtime release the project pins (see
// scripts/fetch-onnxruntime.sh).
const Version = "1.24.3"

var (
	initOnce sync.Once
	initErr  error
)

// LibraryPath returns where the runtime library is looked for: $ONNXRUNTIME_LIB,
// else .cache/onnxruntime/<Version>/libonnxruntime.so.1 in dir or the closest
// parent of dir that has one (so tests in any package find the project's copy).
func LibraryPath(dir string) string {
	if p := os.Getenv("ONNXRUNTIME_LIB"); p != "" {
		return p
	}
	rel := filepath.Join(".cache", "onnxruntime", Version, "libonnxruntime.so.1")
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, rel)); err == nil {
			return filepath.Join(d, rel)
		}
		if filepath.Dir(d) == d {
			return filepath.Join(dir, rel)
		}
	}
}

// Init loads the ONNX Runtime library at libPath and creates its environment.
// Only the first call has an effect; later calls return its result.
func Init(libPath string) error {
	initOnce.Do(func() {
		if _, err := os.Stat(libPath); err != nil {
			initErr = fmt.Errorf("ONNX Runtime library: %w (run `make ort`, or set ONNXRUNTIME_LIB)", err)
			return
		}
		ortgo.SetSharedLibraryPath(libPath)
		if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelError()); err != nil {
			initErr = fmt.Errorf("initializing ONNX Runtime from %s: %w", libPath, err)
		}
	})
	return initErr
}

// Backend creates ONNX Runtime sessions, one per model instance.
type Backend struct{}

// NewExecutor opens a session on the instance's model file. Config parameters
// honoured, as in Triton's ONNX Runtime backend: intra_op_thread_count,
// inter_op_thread_count.
func (Backend) NewExecutor(_ context.Context, inst tritonlite.Instance) (tritonlite.Executor, error) {
	if inst.Signature == nil {
		return nil, fmt.Errorf("ort: no model signature for %s", inst.ModelPath)
	}
	opts, err := ortgo.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	// Idle worker threads sleep instead of spinning: a laptop or CI runner
	// holds many sessions on few cores. Parameters named "session.*" are
	// passed to ONNX Runtime as session config entries, and may turn it back.
	entries := map[string]string{"session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0"}
	for k, p := range inst.Config.GetParameters() {
		if strings.HasPrefix(k, "session.") {
			entries[k] = p.GetStringValue()
		}
	}
	for k, v := range entries {
		if err := opts.AddSessionConfigEntry(k, v); err != nil {
			return nil, fmt.Errorf("parameter %s: %w", k, err)
		}
	}
	for key, set := range map[string]func(int) error{
		"intra_op_thread_count": opts.SetIntraOpNumThreads,
		"inter_op_thread_count": opts.SetInterOpNumThreads,
	} {
		if p, ok := inst.Config.GetParameters()[key]; ok {
			n, err := strconv.Atoi(p.GetStringValue())
			if err != nil || n < 0 {
				return nil, fmt.Errorf("failed to convert '%s' to integral number", p.GetStringValue())
			}
			if err := set(n); err != nil {
				return nil, err
			}
		}
	}
	sig := inst.Signature
	if len(sig.Inputs) == 0 || len(sig.Outputs) == 0 {
		// onnxruntime_go cannot run a session without inputs or outputs.
		return nil, fmt.Errorf("unable to load model '%s': models without inputs or without outputs are not supported by tritonlite's ONNX Runtime backend", inst.Config.GetName())
	}
	inNames := make([]string, len(sig.Inputs))
	for i, v := range sig.Inputs {
		inNames[i] = v.Name
	}
	outNames := make([]string, len(sig.Outputs))
	for i, v := range sig.Outputs {
		outNames[i] = v.Name
	}
	s, err := ortgo.NewDynamicAdvancedSession(inst.ModelPath, inNames, outNames, opts)
	if err != nil {
		return nil, fmt.Errorf("onnx runtime error: %w", err)
	}
	return &executor{session: s, sig: sig, batching: inst.Config.GetMaxBatchSize() > 0}, nil
}

type executor struct {
	session  *ortgo.DynamicAdvancedSession
	sig      *onnxmodel.Model
	batching bool
}

func (e *executor) Close() error { return e.session.Destroy() }

func (e *executor) Execute(_ context.Context, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, error) {
	byName := make(map[string]tensor.Tensor, len(inputs))
	for _, t := range inputs {
		byName[t.Name] = t
	}
	ins := make([]ortgo.Value, len(e.sig.Inputs))
	defer destroyAll(ins)
	batch := int64(-1)
	symbols := map[string]int64{} // symbolic dim name → its size in this request
	for i, v := range e.sig.Inputs {
		t, ok := byName[v.Name]
		if !ok {
			return nil, fmt.Errorf("input '%s' missing", v.Name)
		}
		if len(v.Dims) == 0 && tensorElements(t) == 1 {
			t.Shape = nil // the model takes a scalar; Triton's config calls it [1]
		}
		if e.batching && len(t.Shape) > 0 && batch < 0 {
			batch = t.Shape[0]
		}
		for j, p := range v.DimParams {
			if p != "" && j < len(t.Shape) {
				symbols[p] = t.Shape[j]
			}
		}
		val, err := toORT(t)
		if err != nil {
			return nil, fmt.Errorf("input '%s': %w", v.Name, err)
		}
		ins[i] = val
	}
	// ONNX Runtime allocates the outputs, as in Triton's backend: a model's
	// declared output shape is not always the one ORT produces (onnxmltools'
	// LightGBM label output declares [1] for a batch of N), and ORT refuses a
	// pre-allocated output of another shape. Only the outputs onnxruntime_go
	// cannot take from ORT are pre-allocated from the declared shape: rank 0
	// (it wraps no scalar) and FP16/BF16 (it sizes them one byte per element).
	outs := make([]ortgo.Value, len(e.sig.Outputs))
	defer destroyAll(outs)
	var prealloc []string
	for i, v := range e.sig.Outputs {
		dt := tensor.FromONNX(v.ElemType)
		if !mustPreallocate(v, dt) {
			continue
		}
		shape, ok := knownShape(v, batch, symbols)
		if !ok {
			return nil, fmt.Errorf("output '%s': %s outputs whose shape depends on the data are not supported (onnxruntime_go cannot allocate them)", v.Name, dt)
		}
		val, err := newOutput(dt, shape)
		if err != nil {
			return nil, fmt.Errorf("output '%s': %w", v.Name, err)
		}
		outs[i] = val
		prealloc = append(prealloc, fmt.Sprintf("'%s' %v", v.Name, shape))
	}
	if err := e.session.Run(ins, outs); err != nil {
		if len(prealloc) > 0 {
			return nil, fmt.Errorf("onnx runtime error: %w (outputs allocated from the model's declared shapes, as onnxruntime_go cannot allocate rank-0 and FP16/BF16 outputs: %s)", err, strings.Join(prealloc, ", "))
		}
		return nil, fmt.Errorf("onnx runtime error: %w", err)
	}
	result := make([]tensor.Tensor, len(outputs))
	for j, name := range outputs {
		idx := -1
		for i, v := range e.sig.Outputs {
			if v.Name == name {
				idx = i
			}
		}
		if idx < 0 {
			return nil, fmt.Errorf("output '%s' is not produced by the model", name)
		}
		t, err := fromORT(name, outs[idx])
		if err != nil {
			return nil, fmt.Errorf("output '%s': %w", name, err)
		}
		result[j] = t
	}
	return result, nil
}

func tensorElements(t tensor.Tensor) int64 {
	n, err := tensor.ElementCount(t.Shape)
	if err != nil {
		return -1
	}
	return n
}

// mustPreallocate reports whether an output has to be allocated before
// running because onnxruntime_go cannot wrap what ORT allocates for it: a
// declared rank-0 output, and FP16/BF16 outputs.
func mustPreallocate(v onnxmodel.Value, dt tensor.DataType) bool {
	return (v.HasShape && len(v.Dims) == 0) || dt == tensor.FP16 || dt == tensor.BF16
}

// knownShape resolves a model output's shape before running: fixed dims as
// they are, a leading -1 as the batch size, and a symbolic dim as the size
// the same symbol has in this request's inputs.
func knownShape(v onnxmodel.Value, batch int64, symbols map[string]int64) ([]int64, bool) {
	if !v.HasShape {
		return nil, false // no declared shape: not even its rank is known
	}
	out := make([]int64, len(v.Dims))
	for i, d := range v.Dims {
		switch {
		case d >= 0:
			out[i] = d
		case i < len(v.DimParams) && v.DimParams[i] != "" && symbols[v.DimParams[i]] > 0:
			out[i] = symbols[v.DimParams[i]]
		case i == 0 && batch >= 0:
			out[i] = batch
		default:
			return nil, false
		}
	}
	return out, true
}

func destroyAll(vs []ortgo.Value) {
	for _, v := range vs {
		// onnxruntime_go may leave a typed nil behind after a failed run.
		if v != nil && !reflect.ValueOf(v).IsNil() {
			v.Destroy()
		}
	}
}

// typed copies raw little-endian data into a freshly allocated []T (aligned,
// so the race detector's pointer checks are satisfied).
func typed[T any](data []byte) []T {
	var z T
	size := int(unsafe.Sizeof(z))
	out := make([]T, len(data)/size)
	if len(out) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(out)*size), data)
	}
	return out
}

func bytesOf[T any](v []T) []byte {
	if len(v) == 0 {
		return []byte{}
	}
	var z T
	b := unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*int(unsafe.Sizeof(z)))
	return append([]byte(nil), b...)
}

func numeric[T ortgo.TensorData](shape []int64, data []byte) (ortgo.Value, error) {
	v := typed[T](data)
	if len(shape) == 0 {
		if len(v) != 1 {
			return nil, fmt.Errorf("scalar needs 1 element, got %d", len(v))
		}
		return ortgo.NewScalar(v[0])
	}
	return ortgo.NewTensor(ortgo.Shape(shape), v)
}

func toORT(t tensor.Tensor) (ortgo.Value, error) {
	switch t.DataType {
	case tensor.Bool:
		b := make([]bool, len(t.Data))
		for i, x := range t.Data {
			b[i] = x != 0
		}
		if len(t.Shape) == 0 {
			return ortgo.NewScalar(b[0])
		}
		return ortgo.NewTensor(ortgo.Shape(t.Shape), b)
	case tensor.Uint8:
		return numeric[uint8](t.Shape, t.Data)
	case tensor.Uint16:
		return numeric[uint16](t.Shape, t.Data)
	case tensor.Uint32:
		return numeric[uint32](t.Shape, t.Data)
	case tensor.Uint64:
		return numeric[uint64](t.Shape, t.Data)
	case tensor.Int8:
		return numeric[int8](t.Shape, t.Data)
	case tensor.Int16:
		return numeric[int16](t.Shape, t.Data)
	case tensor.Int32:
		return numeric[int32](t.Shape, t.Data)
	case tensor.Int64:
		return numeric[int64](t.Shape, t.Data)
	case tensor.FP32:
		return numeric[float32](t.Shape, t.Data)
	case tensor.FP64:
		return numeric[float64](t.Shape, t.Data)
	case tensor.FP16, tensor.BF16:
		if len(t.Shape) == 0 || len(t.Data) == 0 {
			return nil, fmt.Errorf("%s tensors must have rank >= 1 and at least one element here", t.DataType)
		}
		et := ortgo.TensorElementDataType(ortgo.TensorElementDataTypeFloat16)
		if t.DataType == tensor.BF16 {
			et = ortgo.TensorElementDataTypeBFloat16
		}
		return ortgo.NewCustomDataTensor(ortgo.Shape(t.Shape), append([]byte(nil), t.Data...), et)
	case tensor.Bytes:
		if len(t.Shape) == 0 {
			return nil, errors.New("scalar BYTES tensors are not supported here")
		}
		elems, err := tensor.DecodeBytes(t.Data)
		if err != nil {
			return nil, err
		}
		st, err := ortgo.NewStringTensor(ortgo.Shape(t.Shape))
		if err != nil {
			return nil, err
		}
		strs := make([]string, len(elems))
		for i, e := range elems {
			strs[i] = string(e)
		}
		if err := st.SetContents(strs); err != nil {
			st.Destroy()
			return nil, err
		}
		return st, nil
	}
	return nil, fmt.Errorf("datatype %s is not supported by ONNX Runtime", t.DataType)
}

// newOutput pre-allocates an output of a known shape: a scalar, or an
// FP16/BF16 tensor (the outputs mustPreallocate selects).
func newOutput(dt tensor.DataType, shape []int64) (ortgo.Value, error) {
	switch {
	case dt == tensor.FP16 || dt == tensor.BF16:
		n, err := tensor.ElementCount(shape)
		if len(shape) == 0 || err != nil || n == 0 {
			return nil, fmt.Errorf("cannot allocate %s output of shape %v", dt, shape)
		}
		et := ortgo.TensorElementDataType(ortgo.TensorElementDataTypeFloat16)
		if dt == tensor.BF16 {
			et = ortgo.TensorElementDataTypeBFloat16
		}
		return ortgo.NewCustomDataTensor(ortgo.Shape(shape), make([]byte, 2*n), et)
	case len(shape) != 0:
		return nil, fmt.Errorf("internal error: %s output of shape %v is left to ONNX Runtime to allocate", dt, shape)
	}
	switch dt {
	case tensor.Bool:
		return ortgo.NewEmptyScalar[bool]()
	case tensor.Uint8:
		return ortgo.NewEmptyScalar[uint8]()
	case tensor.Uint16:
		return ortgo.NewEmptyScalar[uint16]()
	case tensor.Uint32:
		return ortgo.NewEmptyScalar[uint32]()
	case tensor.Uint64:
		return ortgo.NewEmptyScalar[uint64]()
	case tensor.Int8:
		return ortgo.NewEmptyScalar[int8]()
	case tensor.Int16:
		return ortgo.NewEmptyScalar[int16]()
	case tensor.Int32:
		return ortgo.NewEmptyScalar[int32]()
	case tensor.Int64:
		return ortgo.NewEmptyScalar[int64]()
	case tensor.FP32:
		return ortgo.NewEmptyScalar[float32]()
	case tensor.FP64:
		return ortgo.NewEmptyScalar[float64]()
	}
	return nil, fmt.Errorf("scalar %s outputs are not supported here", dt)
}

// fromORT converts an ONNX Runtime value to a tensor (copying the data).
func fromORT(name string, v ortgo.Value) (tensor.Tensor, error) {
	t := tensor.Tensor{Name: name, Shape: []int64(v.GetShape())}
	switch x := v.(type) {
	case *ortgo.Tensor[bool]:
		t.DataType = tensor.Bool
		t.Data = bytesOf(x.GetData())
	case *ortgo.Tensor[uint8]:
		t.DataType, t.Data = tensor.Uint8, bytesOf(x.GetData())
	case *ortgo.Tensor[uint16]:
		t.DataType, t.Data = tensor.Uint16, bytesOf(x.GetData())
	case *ortgo.Tensor[uint32]:
		t.DataType, t.Data = tensor.Uint32, bytesOf(x.GetData())
	case *ortgo.Tensor[uint64]:
		t.DataType, t.Data = tensor.Uint64, bytesOf(x.GetData())
	case *ortgo.Tensor[int8]:
		t.DataType, t.Data = tensor.Int8, bytesOf(x.GetData())
	case *ortgo.Tensor[int16]:
		t.DataType, t.Data = tensor.Int16, bytesOf(x.GetData())
	case *ortgo.Tensor[int32]:
		t.DataType, t.Data = tensor.Int32, bytesOf(x.GetData())
	case *ortgo.Tensor[int64]:
		t.DataType, t.Data = tensor.Int64, bytesOf(x.GetData())
	case *ortgo.Tensor[float32]:
		t.DataType, t.Data = tensor.FP32, bytesOf(x.GetData())
	case *ortgo.Tensor[float64]:
		t.DataType, t.Data = tensor.FP64, bytesOf(x.GetData())
	case *ortgo.Scalar[bool]:
		t.DataType, t.Data = tensor.Bool, bytesOf([]bool{x.GetData()})
	case *ortgo.Scalar[uint8]:
		t.DataType, t.Data = tensor.Uint8, bytesOf([]uint8{x.GetData()})
	case *ortgo.Scalar[uint16]:
		t.DataType, t.Data = tensor.Uint16, bytesOf([]uint16{x.GetData()})
	case *ortgo.Scalar[uint32]:
		t.DataType, t.Data = tensor.Uint32, bytesOf([]uint32{x.GetData()})
	case *ortgo.Scalar[uint64]:
		t.DataType, t.Data = tensor.Uint64, bytesOf([]uint64{x.GetData()})
	case *ortgo.Scalar[int8]:
		t.DataType, t.Data = tensor.Int8, bytesOf([]int8{x.GetData()})
	case *ortgo.Scalar[int16]:
		t.DataType, t.Data = tensor.Int16, bytesOf([]int16{x.GetData()})
	case *ortgo.Scalar[int32]:
		t.DataType, t.Data = tensor.Int32, bytesOf([]int32{x.GetData()})
	case *ortgo.Scalar[int64]:
		t.DataType, t.Data = tensor.Int64, bytesOf([]int64{x.GetData()})
	case *ortgo.Scalar[float32]:
		t.DataType, t.Data = tensor.FP32, bytesOf([]float32{x.GetData()})
	case *ortgo.Scalar[float64]:
		t.DataType, t.Data = tensor.FP64, bytesOf([]float64{x.GetData()})
	case *ortgo.CustomDataTensor:
		switch ortgo.TensorElementDataType(x.DataType()) {
		case ortgo.TensorElementDataTypeFloat16:
			t.DataType = tensor.FP16
		case ortgo.TensorElementDataTypeBFloat16:
			t.DataType = tensor.BF16
		default:
			return t, fmt.Errorf("ONNX element type %d has no Triton datatype", x.DataType())
		}
		t.Data = append([]byte(nil), x.GetData()...)
	case *ortgo.StringTensor:
		strs, err := x.GetContents()
		if err != nil {
			return t, err
		}
		elems := make([][]byte, len(strs))
		for i, s := range strs {
			elems[i] = []byte(s)
		}
		t.DataType, t.Data = tensor.Bytes, tensor.EncodeBytes(elems)
	default:
		return t, fmt.Errorf("output of ONNX type %s is not a tensor", v.GetONNXType())
	}
	return t, t.Validate()
}
