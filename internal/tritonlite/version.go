package tritonlite

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/onnxmodel"
	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
)

// version is one loaded model version: its instances, its scheduler (direct,
// or a dynamic batcher) and its statistics. Requests hold a reference
// (inflight) from lookup to response, so a version is closed only once every
// request that found it has finished.
type version struct {
	model    string
	number   int64
	label    string // number as a string, for metrics and responses
	cfg      *inference.ModelConfig
	sig      *onnxmodel.Model
	inputs   map[string]*inference.ModelInput
	outputs  map[string]*inference.ModelOutput
	execs    []Executor
	free     chan int   // idle instances
	batcher  *batcher   // nil: requests run as they come, one per execution
	seq      *sequencer // the sequence batcher (sequence_batching), or nil
	metrics  *metrics
	stats    stats
	inflight sync.WaitGroup
	files    string // fingerprint of the files it was loaded from

	ctx    context.Context // ends when the version is closed (cause errUnloaded on unload)
	cancel context.CancelCauseFunc
	closed sync.Once
}

func newVersion(model string, number int64, cfg *inference.ModelConfig, sig *onnxmodel.Model, execs []Executor, m *metrics, log *slog.Logger) (*version, error) {
	v := &version{
		model:   model,
		number:  number,
		label:   strconv.FormatInt(number, 10),
		cfg:     cfg,
		sig:     sig,
		inputs:  map[string]*inference.ModelInput{},
		outputs: map[string]*inference.ModelOutput{},
		execs:   execs,
		free:    make(chan int, len(execs)),
		metrics: m,
	}
	v.ctx, v.cancel = context.WithCancelCause(context.Background())
	for _, in := range cfg.GetInput() {
		v.inputs[in.GetName()] = in
	}
	for _, out := range cfg.GetOutput() {
		v.outputs[out.GetName()] = out
	}
	for i := range execs {
		v.free <- i
	}
	switch {
	case cfg.GetSequenceBatching() != nil:
		seq, err := newSequencer(v, cfg.GetSequenceBatching(), log.With("model", model, "version", number))
		if err != nil {
			v.cancel(nil)
			return nil, status.Errorf(codes.InvalidArgument, "model '%s': %v", model, err)
		}
		v.seq = seq
		v.seq.start()
	case cfg.GetDynamicBatching() != nil && cfg.GetMaxBatchSize() > 0:
		v.batcher = newBatcher(v, cfg.GetDynamicBatching())
		v.batcher.start()
	}
	return v, nil
}

// errUnloaded is the cause of executions ended because their model version
// was unloaded.
var errUnloaded = errors.New("model version unloaded")

// How a version is closed.
const (
	// retired: replaced by a new instance of the same version; requests in
	// flight finish normally and the metric series carry on.
	retired = iota
	// unloaded: the version is gone; executions still running are told to
	// stop (an injected hang ends) and its metric series are dropped.
	unloaded
)

// close stops the scheduler once every request holding the version is done,
// then closes the instances.
func (v *version) close(how int) {
	v.closed.Do(func() {
		if how == unloaded {
			v.cancel(errUnloaded)
		}
		v.inflight.Wait()
		v.cancel(nil)
		if v.batcher != nil {
			v.batcher.stop()
		}
		if v.seq != nil {
			v.seq.stop()
		}
		for _, e := range v.execs {
			e.Close()
		}
		if how == unloaded {
			v.metrics.forget(v.model, v.label)
		}
	})
}

// request is one inference request, validated and ready for the scheduler.
type request struct {
	ctx      context.Context
	id       string
	inputs   []tensor.Tensor // with the batch dimension first when batching
	outputs  []string
	batch    int64             // the request's batch size (1 for models that do not batch)
	key      string            // requests batch together only with equal keys
	timeout  time.Duration     // the request's "timeout" parameter (0: none)
	seq      seqInfo           // sequence_id, sequence_start, sequence_end
	regions  []*shmRegion      // shared memory regions held until answered
	shmOut   map[string][]byte // outputs to write into shared memory
	enqueued time.Time
	expires  time.Time // zero: never times out in the queue
	done     chan result
	settled  atomic.Bool // answered (or given up by its client)
}

type result struct {
	outputs []tensor.Tensor
	err     error
}

// answer delivers r's result once; later answers are dropped. It reports
// whether this answer was the one delivered (false when the client had
// already given up), so that each request is accounted once.
func (r *request) answer(res result) bool {
	return r.answerAfter(res, nil)
}

// answerAfter is answer, with account (if not nil) called before the result
// is delivered when this answer wins: a client that has its answer sees it
// in the statistics and metrics.
func (r *request) answerAfter(res result, account func()) bool {
	if !r.settled.CompareAndSwap(false, true) {
		return false
	}
	if account != nil {
		account()
	}
	r.done <- res
	return true
}

func (v *version) pendingGauge() interface{ Add(float64) } {
	return v.metrics.pending.WithLabelValues(v.model, v.label)
}

// infer runs a request through the version's scheduler. issued is false when
// the scheduler refused it (a full queue, a request out of its sequence):
// Triton returns that error from enqueuing, before the request counts in the
// model's statistics.
func (v *version) infer(r *request) (outs []tensor.Tensor, issued bool, err error) {
	if err := v.enqueue(r); err != nil {
		return nil, false, err
	}
	return v.await(r)
}

// enqueue hands r to the version's batcher (dynamic or sequence), which
// keeps the order of arrival; a refusal means the request was not issued.
// Without a batcher it only prepares r for await.
func (v *version) enqueue(r *request) error {
	r.enqueued = time.Now()
	r.done = make(chan result, 1)
	pending := v.pendingGauge()
	pending.Add(1)
	var err error
	switch {
	case v.batcher != nil:
		err = v.batcher.enqueue(r)
	case v.seq != nil:
		err = v.seq.enqueue(r)
	}
	if err != nil {
		pending.Add(-1)
	}
	return err
}

// await runs r (without a batcher) or waits for its batch, and returns its
// outputs.
func (v *version) await(r *request) (outs []tensor.Tensor, issued bool, err error) {
	pending := v.pendingGauge()
	if v.batcher == nil && v.seq == nil {
		select {
		case idx := <-v.free:
			// The execution ends early if the client goes away or the
			// version is unloaded.
			ctx, cancel := context.WithCancelCause(r.ctx)
			stop := context.AfterFunc(v.ctx, func() { cancel(context.Cause(v.ctx)) })
			v.execute(idx, []*request{r}, ctx)
			stop()
			cancel(nil)
			v.free <- idx
		case <-r.ctx.Done():
			pending.Add(-1)
			r.settled.Store(true)
			v.fail(r, "CANCELED", time.Since(r.enqueued))
			return nil, true, status.FromContextError(r.ctx.Err()).Err()
		}
	}
	select {
	case res := <-r.done:
		return res.outputs, true, res.err
	case <-r.ctx.Done():
		if r.settled.CompareAndSwap(false, true) {
			v.fail(r, "CANCELED", time.Since(r.enqueued))
		}
		return nil, true, status.FromContextError(r.ctx.Err()).Err()
	}
}

// fail accounts a request that ended without executing successfully.
func (v *version) fail(r *request, reason string, d time.Duration) {
	v.stats.fail(d)
	v.metrics.failure.WithLabelValues(v.model, v.label, reason).Inc()
}

// execute runs one batch on instance idx and answers each request.
func (v *version) execute(idx int, reqs []*request, ctx context.Context) {
	start := time.Now()
	pending := v.pendingGauge()
	var batch int64
	for _, r := range reqs {
		batch += r.batch
		pending.Add(-1)
	}
	inputs := reqs[0].inputs
	var err error
	if len(reqs) > 1 {
		inputs, err = concatInputs(reqs)
	}
	inferStart := time.Now()
	var outs []tensor.Tensor
	if err == nil {
		outs, err = safeExecute(v.execs[idx], ctx, inputs, reqs[0].outputs)
	}
	inferEnd := time.Now()
	var parts [][]tensor.Tensor
	if err == nil {
		parts, err = splitOutputs(outs, reqs, batch, v.cfg.GetMaxBatchSize() > 0)
	}
	end := time.Now()
	if err != nil {
		if _, ok := status.FromError(err); !ok {
			err = status.Error(codes.Internal, err.Error())
		}
	}
	reason := "BACKEND"
	if ctx.Err() != nil {
		reason = "CANCELED"
	}
	// Each request is claimed and accounted, and the execution too, before
	// any answer is delivered: a client sees its request in the statistics.
	answers := make([]result, len(reqs))
	claimed := make([]bool, len(reqs))
	for i, r := range reqs {
		total := end.Sub(r.enqueued)
		queue := start.Sub(r.enqueued)
		if !r.settled.CompareAndSwap(false, true) {
			continue // the client gave up; infer counted it as cancelled
		}
		claimed[i] = true
		if err != nil {
			answers[i] = result{err: err}
			v.fail(r, reason, total)
			continue
		}
		answers[i] = result{outputs: parts[i]}
		v.stats.success(total, queue)
		m := v.metrics
		m.success.WithLabelValues(v.model, v.label).Inc()
		m.count.WithLabelValues(v.model, v.label).Add(float64(r.batch))
		m.requestUS.WithLabelValues(v.model, v.label).Add(float64(total.Microseconds()))
		m.queueUS.WithLabelValues(v.model, v.label).Add(float64(queue.Microseconds()))
	}
	v.stats.execution(uint64(batch), inferStart.Sub(start), inferEnd.Sub(inferStart), end.Sub(inferEnd), err == nil)
	m := v.metrics
	m.execCount.WithLabelValues(v.model, v.label).Inc()
	m.inputUS.WithLabelValues(v.model, v.label).Add(float64(inferStart.Sub(start).Microseconds()))
	m.inferUS.WithLabelValues(v.model, v.label).Add(float64(inferEnd.Sub(inferStart).Microseconds()))
	m.outputUS.WithLabelValues(v.model, v.label).Add(float64(end.Sub(inferEnd).Microseconds()))
	for i, r := range reqs {
		if claimed[i] {
			r.done <- answers[i]
		}
	}
}

// safeExecute runs an executor, turning a panic into an INTERNAL error so
// that no model can take the server down.
func safeExecute(e Executor, ctx context.Context, inputs []tensor.Tensor, outputs []string) (outs []tensor.Tensor, err error) {
	defer func() {
		if p := recover(); p != nil {
			outs, err = nil, status.Errorf(codes.Internal, "model execution failed: %v", p)
		}
	}()
	return e.Execute(ctx, inputs, outputs)
}

func concatInputs(reqs []*request) ([]tensor.Tensor, error) {
	out := make([]tensor.Tensor, len(reqs[0].inputs))
	parts := make([]tensor.Tensor, len(reqs))
	for i := range out {
		for j, r := range reqs {
			parts[j] = r.inputs[i]
		}
		t, err := tensor.Concat(parts)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// splitOutputs hands each request its rows of a batched execution.
func splitOutputs(outs []tensor.Tensor, reqs []*request, batch int64, batching bool) ([][]tensor.Tensor, error) {
	parts := make([][]tensor.Tensor, len(reqs))
	if len(reqs) == 1 {
		parts[0] = outs
		return parts, nil
	}
	sizes := make([]int64, len(reqs))
	for i, r := range reqs {
		sizes[i] = r.batch
		parts[i] = make([]tensor.Tensor, len(outs))
	}
	for k, o := range outs {
		if !batching || len(o.Shape) == 0 || o.Shape[0] != batch {
			return nil, fmt.Errorf("output '%s' has shape %s, expected a batch dimension of %d", o.Name, tensor.FormatShape(o.Shape), batch)
		}
		split, err := tensor.Split(o, sizes)
		if err != nil {
			return nil, err
		}
		for i := range reqs {
			parts[i][k] = split[i]
		}
	}
	return parts, nil
}

// stats are the version's ModelStatistics.
type stats struct {
	mu             sync.Mutex
	lastInference  time.Time
	inferenceCount uint64
	executionCount uint64
	ok, failed     duration
	queue          duration
	input, compute duration
	output         duration
	batches        map[uint64]*batchStats
}

type duration struct{ count, ns uint64 }

func (d *duration) add(t time.Duration) {
	d.count++
	d.ns += uint64(t.Nanoseconds())
}

func (d duration) proto() *inference.StatisticDuration {
	return &inference.StatisticDuration{Count: d.count, Ns: d.ns}
}

type batchStats struct{ input, compute, output duration }

func (s *stats) success(total, queue time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ok.add(total)
	s.queue.add(queue)
	s.lastInference = time.Now()
}

func (s *stats) fail(total time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed.add(total)
}

func (s *stats) execution(batch uint64, input, compute, output time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		return
	}
	s.executionCount++
	s.inferenceCount += batch
	s.input.add(input)
	s.compute.add(compute)
	s.output.add(output)
	if s.batches == nil {
		s.batches = map[uint64]*batchStats{}
	}
	b := s.batches[batch]
	if b == nil {
		b = &batchStats{}
		s.batches[batch] = b
	}
	b.input.add(input)
	b.compute.add(compute)
	b.output.add(output)
}

func (s *stats) proto(name, version string) *inference.ModelStatistics {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := &inference.ModelStatistics{
		Name:           name,
		Version:        version,
		InferenceCount: s.inferenceCount,
		ExecutionCount: s.executionCount,
		InferenceStats: &inference.InferStatistics{
			Success:       s.ok.proto(),
			Fail:          s.failed.proto(),
			Queue:         s.queue.proto(),
			ComputeInput:  s.input.proto(),
			ComputeInfer:  s.compute.proto(),
			ComputeOutput: s.output.proto(),
			CacheHit:      &inference.StatisticDuration{},
			CacheMiss:     &inference.StatisticDuration{},
		},
	}
	if !s.lastInference.IsZero() {
		ms.LastInference = uint64(s.lastInference.UnixMilli())
	}
	for size := range s.batches {
		b := s.batches[size]
		ms.BatchStats = append(ms.BatchStats, &inference.InferBatchStatistics{
			BatchSize: size, ComputeInput: b.input.proto(), ComputeInfer: b.compute.proto(), ComputeOutput: b.output.proto(),
		})
	}
	sortBatchStats(ms.BatchStats)
	return ms
}

func sortBatchStats(bs []*inference.InferBatchStatistics) {
	slices.SortFunc(bs, func(a, b *inference.InferBatchStatistics) int { return cmp.Compare(a.BatchSize, b.BatchSize) })
}

// requestID is how Triton names a request in messages.
func requestID(id string) string {
	if id == "" {
		return "<id_unknown>"
	}
	return id
}
