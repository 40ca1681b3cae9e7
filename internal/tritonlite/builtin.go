package tritonlite

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
)

// Builtins returns the pure-Go backends: "identity" (output i is input i, as
// Triton's identity test backend), "add_sub" (OUTPUT0 = INPUT0 + INPUT1,
// OUTPUT1 = INPUT0 - INPUT1, like Triton's "simple" example model) and
// "sequence" (NVIDIA's simple_sequence example model, for the sequence
// batcher).
func Builtins() map[string]Backend {
	return map[string]Backend{
		"identity": BackendFunc(newIdentity),
		"add_sub":  addSubBackend{},
		"sequence": BackendFunc(newSequenceModel),
	}
}

type identity struct {
	source map[string]string // output name → input name
}

func newIdentity(_ context.Context, inst Instance) (Executor, error) {
	cfg := inst.Config
	if len(cfg.GetOutput()) > len(cfg.GetInput()) {
		return nil, status.Errorf(codes.InvalidArgument, "identity model '%s' has %d outputs but only %d inputs", cfg.GetName(), len(cfg.GetOutput()), len(cfg.GetInput()))
	}
	e := &identity{source: map[string]string{}}
	for i, out := range cfg.GetOutput() {
		in := cfg.GetInput()[i]
		if in.GetDataType() != out.GetDataType() {
			return nil, status.Errorf(codes.InvalidArgument, "identity model '%s': output '%s' is %s but input '%s' is %s", cfg.GetName(), out.GetName(), out.GetDataType(), in.GetName(), in.GetDataType())
		}
		e.source[out.GetName()] = in.GetName()
	}
	return e, nil
}

func (e *identity) Execute(_ context.Context, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, error) {
	out := make([]tensor.Tensor, len(outputs))
	for i, name := range outputs {
		src := e.source[name]
		for _, t := range inputs {
			if t.Name == src {
				out[i] = tensor.Tensor{Name: name, DataType: t.DataType, Shape: t.Shape, Data: t.Data}
			}
		}
		if out[i].Name == "" {
			return nil, fmt.Errorf("identity: no input for output '%s'", name)
		}
	}
	return out, nil
}

func (e *identity) Close() error { return nil }

// addSubBackend is the add_sub backend; like the Python models of NVIDIA's
// add_sub examples, it auto-completes a config that lists no tensors.
type addSubBackend struct{}

func (addSubBackend) NewExecutor(ctx context.Context, inst Instance) (Executor, error) {
	return newAddSub(ctx, inst)
}

// CompleteConfig adds INPUT0 and INPUT1 to a config without inputs, and
// OUTPUT0 and OUTPUT1 to one without outputs, as NVIDIA's add_sub example
// models (interop/triton/simple/1/model.py) do: TYPE_INT32 with dims [16],
// or the datatype and dims of the first tensor on the other side when the
// config has one (so that a TYPE_STRING model gets TYPE_STRING outputs).
func (addSubBackend) CompleteConfig(cfg *inference.ModelConfig) {
	dt, dims := inference.DataType_TYPE_INT32, []int64{16}
	switch {
	case len(cfg.Input) > 0:
		dt, dims = cfg.Input[0].GetDataType(), cfg.Input[0].GetDims()
	case len(cfg.Output) > 0:
		dt, dims = cfg.Output[0].GetDataType(), cfg.Output[0].GetDims()
	}
	if len(cfg.Input) == 0 {
		for _, n := range []string{"INPUT0", "INPUT1"} {
			cfg.Input = append(cfg.Input, &inference.ModelInput{Name: n, DataType: dt, Dims: slices.Clone(dims)})
		}
	}
	if len(cfg.Output) == 0 {
		for _, n := range []string{"OUTPUT0", "OUTPUT1"} {
			cfg.Output = append(cfg.Output, &inference.ModelOutput{Name: n, DataType: dt, Dims: slices.Clone(dims)})
		}
	}
}

type addSub struct {
	model string
	in    [2]string
	out   [2]string // "" where the config has no such output
}

func newAddSub(_ context.Context, inst Instance) (Executor, error) {
	cfg := inst.Config
	ins, outs := cfg.GetInput(), cfg.GetOutput()
	if len(ins) != 2 || len(outs) == 0 || len(outs) > 2 {
		return nil, status.Errorf(codes.InvalidArgument, "add_sub model '%s' needs 2 inputs and 1 or 2 outputs, has %d and %d", cfg.GetName(), len(ins), len(outs))
	}
	dt := ins[0].GetDataType()
	if d := tensor.FromConfig(dt); d != tensor.Bytes && (!d.Fixed() || d == tensor.FP16 || d == tensor.BF16 || d == tensor.Bool) {
		return nil, status.Errorf(codes.InvalidArgument, "add_sub model '%s': datatype %s is not supported", cfg.GetName(), dt)
	}
	for _, io := range append([]*inference.ModelOutput{}, outs...) {
		if io.GetDataType() != dt {
			return nil, status.Errorf(codes.InvalidArgument, "add_sub model '%s': every tensor must be %s, output '%s' is %s", cfg.GetName(), dt, io.GetName(), io.GetDataType())
		}
	}
	if ins[1].GetDataType() != dt {
		return nil, status.Errorf(codes.InvalidArgument, "add_sub model '%s': every tensor must be %s, input '%s' is %s", cfg.GetName(), dt, ins[1].GetName(), ins[1].GetDataType())
	}
	e := &addSub{model: cfg.GetName(), in: [2]string{ins[0].GetName(), ins[1].GetName()}}
	for i, o := range outs {
		e.out[i] = o.GetName()
	}
	return e, nil
}

func (e *addSub) Close() error { return nil }

func (e *addSub) Execute(_ context.Context, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, error) {
	var a, b tensor.Tensor
	for _, t := range inputs {
		switch t.Name {
		case e.in[0]:
			a = t
		case e.in[1]:
			b = t
		}
	}
	na, errA := tensor.ElementCount(a.Shape)
	nb, errB := tensor.ElementCount(b.Shape)
	if a.Name == "" || b.Name == "" || errA != nil || errB != nil || na != nb {
		return nil, status.Errorf(codes.InvalidArgument, "add_sub: inputs '%s' and '%s' must have the same shape", e.in[0], e.in[1])
	}
	var sum, diff tensor.Tensor
	var err error
	switch a.DataType {
	case tensor.Int8:
		sum, diff, err = addSubOf[int8](a, b)
	case tensor.Int16:
		sum, diff, err = addSubOf[int16](a, b)
	case tensor.Int32:
		sum, diff, err = addSubOf[int32](a, b)
	case tensor.Int64:
		sum, diff, err = addSubOf[int64](a, b)
	case tensor.Uint8:
		sum, diff, err = addSubOf[uint8](a, b)
	case tensor.Uint16:
		sum, diff, err = addSubOf[uint16](a, b)
	case tensor.Uint32:
		sum, diff, err = addSubOf[uint32](a, b)
	case tensor.Uint64:
		sum, diff, err = addSubOf[uint64](a, b)
	case tensor.FP32:
		sum, diff, err = addSubOf[float32](a, b)
	case tensor.FP64:
		sum, diff, err = addSubOf[float64](a, b)
	case tensor.Bytes:
		sum, diff, err = e.addSubStrings(a, b)
	default:
		err = fmt.Errorf("add_sub: datatype %s is not supported", a.DataType)
	}
	if err != nil {
		return nil, err
	}
	out := make([]tensor.Tensor, len(outputs))
	for i, name := range outputs {
		switch name {
		case e.out[0]:
			out[i] = sum
		case e.out[1]:
			out[i] = diff
		default:
			return nil, fmt.Errorf("add_sub: unknown output '%s'", name)
		}
		out[i].Name = name
	}
	return out, nil
}

// sequenceModel is the simple_sequence model of NVIDIA's sequence examples
// (interop/triton/simple_sequence/1/model.py): one INT32 input; the first
// output is INPUT + 1 on the request that starts a sequence and INPUT
// otherwise; the second (optional) is the running sum of the sequence's
// inputs since its START. State is kept per sequence slot (SequenceSlot):
// START resets it, END drops it.
type sequenceModel struct {
	input       string
	out, acc    string // acc: "" without a second output
	start, end  *seqControl
	ready, corr *seqControl
	slots       map[int]*int32 // running sums of the started sequences
}

func newSequenceModel(_ context.Context, inst Instance) (Executor, error) {
	cfg := inst.Config
	name := cfg.GetName()
	bad := func(format string, args ...any) (Executor, error) {
		return nil, status.Errorf(codes.InvalidArgument, "sequence model '%s': "+format, append([]any{name}, args...)...)
	}
	sb := cfg.GetSequenceBatching()
	if sb == nil {
		return bad("needs sequence_batching")
	}
	ins, outs := cfg.GetInput(), cfg.GetOutput()
	if len(ins) != 1 || len(outs) == 0 || len(outs) > 2 {
		return bad("needs 1 input and 1 or 2 outputs, has %d and %d", len(ins), len(outs))
	}
	for _, io := range []struct {
		name string
		dt   inference.DataType
	}{{ins[0].GetName(), ins[0].GetDataType()}, {outs[0].GetName(), outs[0].GetDataType()}} {
		if io.dt != inference.DataType_TYPE_INT32 {
			return bad("'%s' must be TYPE_INT32, is %s", io.name, io.dt)
		}
	}
	e := &sequenceModel{input: ins[0].GetName(), out: outs[0].GetName(), slots: map[int]*int32{}}
	if len(outs) == 2 {
		if outs[1].GetDataType() != inference.DataType_TYPE_INT32 {
			return bad("'%s' must be TYPE_INT32, is %s", outs[1].GetName(), outs[1].GetDataType())
		}
		e.acc = outs[1].GetName()
	}
	controls, err := parseControls(sb)
	if err != nil {
		return bad("%v", err)
	}
	for i := range controls {
		c := &controls[i]
		switch c.kind {
		case inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_START:
			e.start = c
		case inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_END:
			e.end = c
		case inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_READY:
			e.ready = c
		case inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_CORRID:
			e.corr = c
		}
	}
	if e.start == nil {
		return bad("needs a CONTROL_SEQUENCE_START control input")
	}
	return e, nil
}

func (e *sequenceModel) Close() error { return nil }

// flag reads a boolean control: absent is false (READY: true).
func flag(inputs []tensor.Tensor, c *seqControl, absent bool) bool {
	if c == nil {
		return absent
	}
	for _, t := range inputs {
		if t.Name == c.name {
			return len(t.Data) >= len(c.on) && string(t.Data[:len(c.on)]) == string(c.on)
		}
	}
	return absent
}

func (e *sequenceModel) Execute(ctx context.Context, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, error) {
	slot, ok := SequenceSlot(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "sequence model executed outside a sequence")
	}
	var in tensor.Tensor
	for _, t := range inputs {
		if t.Name == e.input {
			in = t
		}
	}
	values, err := tensor.Values[int32](in)
	if err != nil {
		return nil, fmt.Errorf("sequence: input '%s': %w", e.input, err)
	}
	if !flag(inputs, e.ready, true) {
		return nil, status.Error(codes.Internal, "READY is false")
	}
	start := flag(inputs, e.start, false)
	if start {
		e.slots[slot] = new(int32)
	}
	acc := e.slots[slot]
	if acc == nil {
		return nil, status.Errorf(codes.Internal, "sequence %s was not started", e.corrid(inputs, slot))
	}
	out := make([]int32, len(values))
	for i, x := range values {
		*acc += x
		out[i] = x
		if start {
			out[i] = x + 1
		}
	}
	sums := make([]int32, len(values))
	for i := range sums {
		sums[i] = *acc
	}
	if flag(inputs, e.end, false) {
		delete(e.slots, slot)
	}
	res := make([]tensor.Tensor, len(outputs))
	for i, name := range outputs {
		switch name {
		case e.out:
			res[i] = tensor.Of(name, in.Shape, out)
		case e.acc:
			res[i] = tensor.Of(name, in.Shape, sums)
		default:
			return nil, fmt.Errorf("sequence: unknown output '%s'", name)
		}
	}
	return res, nil
}

// corrid names a sequence in messages: its CORRID control, else its slot.
func (e *sequenceModel) corrid(inputs []tensor.Tensor, slot int) string {
	if e.corr != nil {
		for _, t := range inputs {
			if t.Name != e.corr.name {
				continue
			}
			if t.DataType == tensor.Bytes {
				if elems, err := tensor.DecodeBytes(t.Data); err == nil && len(elems) == 1 {
					return string(elems[0])
				}
			} else if v, err := tensor.Float64s(t); err == nil && len(v) == 1 {
				return strconv.FormatFloat(v[0], 'f', -1, 64)
			}
		}
	}
	return "in slot " + strconv.Itoa(slot)
}

type number interface {
	int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64 | float32 | float64
}

func addSubOf[T number](a, b tensor.Tensor) (tensor.Tensor, tensor.Tensor, error) {
	x, err := tensor.Values[T](a)
	if err != nil {
		return tensor.Tensor{}, tensor.Tensor{}, err
	}
	y, err := tensor.Values[T](b)
	if err != nil {
		return tensor.Tensor{}, tensor.Tensor{}, err
	}
	s := make([]T, len(x))
	d := make([]T, len(x))
	for i := range x {
		s[i] = x[i] + y[i]
		d[i] = x[i] - y[i]
	}
	return tensor.Of("", a.Shape, s), tensor.Of("", a.Shape, d), nil
}

// addSubStrings is add_sub on BYTES, as Triton's simple_string example model
// (interop/triton/simple/1/model.py): each element is a decimal number, read
// as an int32; the sums and differences, computed in int32 (wrapping, as
// numpy does), are written back as decimal strings.
func (e *addSub) addSubStrings(a, b tensor.Tensor) (tensor.Tensor, tensor.Tensor, error) {
	x, err := e.decimals(a)
	if err != nil {
		return tensor.Tensor{}, tensor.Tensor{}, err
	}
	y, err := e.decimals(b)
	if err != nil {
		return tensor.Tensor{}, tensor.Tensor{}, err
	}
	s := make([]string, len(x))
	d := make([]string, len(x))
	for i := range x {
		s[i] = strconv.FormatInt(int64(x[i]+y[i]), 10)
		d[i] = strconv.FormatInt(int64(x[i]-y[i]), 10)
	}
	return tensor.OfStrings("", a.Shape, s), tensor.OfStrings("", a.Shape, d), nil
}

// decimals reads a BYTES tensor's elements as base-10 int32 numbers (an
// optional sign, digits; surrounding white space is ignored, as Python's
// int() ignores it).
func (e *addSub) decimals(t tensor.Tensor) ([]int32, error) {
	elems, err := tensor.DecodeBytes(t.Data)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "add_sub model '%s': input '%s': %v", e.model, t.Name, err)
	}
	out := make([]int32, len(elems))
	for i, el := range elems {
		v, err := strconv.ParseInt(strings.TrimSpace(string(el)), 10, 32)
		if err != nil {
			why := "is not a base-10 number"
			if errors.Is(err, strconv.ErrRange) {
				why = "is out of the range of an int32"
			}
			return nil, status.Errorf(codes.InvalidArgument, "add_sub model '%s': element %d of input '%s' (%q) %s", e.model, i, t.Name, el, why)
		}
		out[i] = int32(v)
	}
	return out, nil
}

// Fault injection, set through a model's config parameters (for any backend):
//
//	fault_latency               extra time per execution (Go duration, "5ms")
//	fault_latency_jitter        spread of the extra time (duration)
//	fault_latency_distribution  constant (default), uniform, exponential or normal:
//	                            latency + jitter drawn as U[0,j), Exp(mean j) or |N(0,j)|
//	execute_delay_ms            Triton's example parameter: extra milliseconds
//	fault_error_rate            fraction of executions that fail (0..1)
//	fault_error_code            their gRPC code (default UNAVAILABLE)
//	fault_hang_rate             fraction of executions that never finish
//	                            (until the request is cancelled or the model unloaded)
//	fault_crash_after           the Nth execution of the version crashes the server
//	fault_seed                  seed for the random draws (default: random)
type faults struct {
	latency    time.Duration
	jitter     time.Duration
	dist       string
	errorRate  float64
	errorCode  codes.Code
	hangRate   float64
	crashAfter int64
	seed       uint64
}

func parseFaults(cfg *inference.ModelConfig) (*faults, error) {
	f := &faults{dist: "constant", errorCode: codes.Unavailable, seed: rand.Uint64()}
	any := false
	for key, p := range cfg.GetParameters() {
		v := p.GetStringValue()
		var err error
		switch key {
		case "fault_latency":
			f.latency, err = time.ParseDuration(v)
		case "fault_latency_jitter":
			f.jitter, err = time.ParseDuration(v)
		case "fault_latency_distribution":
			f.dist = v
			if v != "constant" && v != "uniform" && v != "exponential" && v != "normal" {
				err = fmt.Errorf("want constant, uniform, exponential or normal")
			}
		case "execute_delay_ms":
			var ms float64
			ms, err = strconv.ParseFloat(v, 64)
			f.latency = time.Duration(ms * float64(time.Millisecond))
		case "fault_error_rate":
			f.errorRate, err = parseRate(v)
		case "fault_error_code":
			code, ok := codeByName(v)
			switch {
			case !ok:
				err = fmt.Errorf("unknown gRPC code")
			case code == codes.OK:
				err = fmt.Errorf("an injected error cannot be OK")
			}
			f.errorCode = code
		case "fault_hang_rate":
			f.hangRate, err = parseRate(v)
		case "fault_crash_after":
			f.crashAfter, err = strconv.ParseInt(v, 10, 64)
		case "fault_seed":
			f.seed, err = strconv.ParseUint(v, 10, 64)
		default:
			continue
		}
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "model '%s': parameter %s = %q: %v", cfg.GetName(), key, v, err)
		}
		any = true
	}
	if !any {
		return nil, nil
	}
	_, a := cfg.GetParameters()["fault_latency"]
	_, b := cfg.GetParameters()["execute_delay_ms"]
	if a && b {
		return nil, status.Errorf(codes.InvalidArgument, "model '%s': set fault_latency or execute_delay_ms, not both", cfg.GetName())
	}
	return f, nil
}

func parseRate(v string) (float64, error) {
	r, err := strconv.ParseFloat(v, 64)
	if err == nil && (r < 0 || r > 1 || math.IsNaN(r)) {
		err = fmt.Errorf("must be between 0 and 1")
	}
	return r, err
}

func codeByName(name string) (codes.Code, bool) {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if strings.EqualFold(strings.ReplaceAll(c.String(), "_", ""), strings.ReplaceAll(name, "_", "")) {
			return c, true
		}
	}
	return 0, false
}

// withFaults wraps a backend so that models with fault parameters get them.
// Call it once per model version: its instances share the execution count.
func withFaults(b Backend, s *Server) Backend {
	var executions atomic.Int64
	return BackendFunc(func(ctx context.Context, inst Instance) (Executor, error) {
		f, err := parseFaults(inst.Config)
		if err != nil {
			return nil, err
		}
		e, err := b.NewExecutor(ctx, inst)
		if err != nil || f == nil {
			return e, err
		}
		return &faulty{Executor: e, f: f, rng: rand.New(rand.NewPCG(f.seed, uint64(inst.Index))), crash: s.opts.Crash, count: &executions}, nil
	})
}

type faulty struct {
	Executor
	f     *faults
	rng   *rand.Rand
	crash func()
	count *atomic.Int64 // executions of the version, for fault_crash_after
}

func (e *faulty) Execute(ctx context.Context, inputs []tensor.Tensor, outputs []string) ([]tensor.Tensor, error) {
	f := e.f
	if n := e.count.Add(1); f.crashAfter > 0 && n == f.crashAfter {
		e.crash()
		return nil, status.Error(codes.Unavailable, "injected crash")
	}
	if f.hangRate > 0 && e.rng.Float64() < f.hangRate {
		<-ctx.Done()
		if errors.Is(context.Cause(ctx), errUnloaded) {
			return nil, status.Error(codes.Unavailable, "injected hang ended: the model was unloaded")
		}
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if d := e.delay(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if f.errorRate > 0 && e.rng.Float64() < f.errorRate {
		return nil, status.Errorf(f.errorCode, "injected fault (fault_error_rate %g)", f.errorRate)
	}
	return e.Executor.Execute(ctx, inputs, outputs)
}

func (e *faulty) delay() time.Duration {
	f := e.f
	j := float64(f.jitter)
	switch f.dist {
	case "uniform":
		return f.latency + time.Duration(e.rng.Float64()*j)
	case "exponential":
		return f.latency + time.Duration(e.rng.ExpFloat64()*j)
	case "normal":
		return f.latency + time.Duration(math.Abs(e.rng.NormFloat64()*j))
	}
	return f.latency
}
