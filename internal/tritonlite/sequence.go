package tritonlite

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
)

// seqID is a request's correlation ID (the sequence_id parameter): an
// unsigned number (int64_param, taken as uint64 as Triton does) or a string.
type seqID struct {
	str   string
	num   uint64
	isStr bool
}

// none is Triton's "not in a sequence": 0 or "".
func (id seqID) none() bool {
	if id.isStr {
		return id.str == ""
	}
	return id.num == 0
}

func (id seqID) String() string {
	if id.isStr {
		return id.str
	}
	return strconv.FormatUint(id.num, 10)
}

// seqInfo is what a request says about its sequence.
type seqInfo struct {
	id         seqID
	start, end bool
}

// maxStringSeqID is Triton's limit on string correlation IDs.
const maxStringSeqID = 128

// seqControl is one control input of a sequence model: the tensor the
// sequence batcher adds to every request it hands the model.
type seqControl struct {
	name string
	kind inference.ModelSequenceBatching_Control_Kind
	dt   tensor.DataType
	// off and on are the encoded false and true values (START, END, READY).
	off, on []byte
}

// parseControls reads a config's sequence_batching control inputs (already
// validated as Triton does by pbtxt).
func parseControls(sb *inference.ModelSequenceBatching) ([]seqControl, error) {
	var out []seqControl
	for _, ci := range sb.GetControlInput() {
		for _, c := range ci.GetControl() {
			sc := seqControl{name: ci.GetName(), kind: c.GetKind()}
			if _, known := inference.ModelSequenceBatching_Control_Kind_name[int32(c.GetKind())]; !known {
				return nil, fmt.Errorf("unknown control kind %d for '%s'", c.GetKind(), ci.GetName())
			}
			switch {
			case c.GetKind() == inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_CORRID:
				sc.dt = tensor.FromConfig(c.GetDataType())
				switch sc.dt {
				case tensor.Uint64, tensor.Int64, tensor.Uint32, tensor.Int32, tensor.Bytes:
				default:
					return nil, fmt.Errorf("unexpected data type for control %s", c.GetKind())
				}
			case len(c.GetInt32FalseTrue()) == 2:
				sc.dt = tensor.Int32
				sc.off = binary.LittleEndian.AppendUint32(nil, uint32(c.GetInt32FalseTrue()[0]))
				sc.on = binary.LittleEndian.AppendUint32(nil, uint32(c.GetInt32FalseTrue()[1]))
			case len(c.GetFp32FalseTrue()) == 2:
				sc.dt = tensor.FP32
				sc.off = binary.LittleEndian.AppendUint32(nil, math.Float32bits(c.GetFp32FalseTrue()[0]))
				sc.on = binary.LittleEndian.AppendUint32(nil, math.Float32bits(c.GetFp32FalseTrue()[1]))
			case len(c.GetBoolFalseTrue()) == 2:
				sc.dt = tensor.Bool
				sc.off = []byte{boolByte(c.GetBoolFalseTrue()[0])}
				sc.on = []byte{boolByte(c.GetBoolFalseTrue()[1])}
			default:
				return nil, fmt.Errorf("control %s of '%s' has no false/true values", c.GetKind(), ci.GetName())
			}
			out = append(out, sc)
		}
	}
	return out, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// checkCorrID refuses a correlation ID whose kind the model's CORRID control
// cannot carry, with the message of Triton's later releases (2.51 crashes on
// a string ID with a numeric CORRID).
func checkCorrID(controls []seqControl, pre, model string, id seqID) error {
	for _, c := range controls {
		if c.kind != inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_CORRID || id.none() {
			continue
		}
		switch {
		case id.isStr && c.dt != tensor.Bytes:
			return invalidArg("%ssequence batching control '%s' data-type is 'BYTES', but model '%s' expects '%s'", pre, c.name, model, c.dt)
		case !id.isStr && c.dt == tensor.Bytes:
			return invalidArg("%ssequence batching control '%s' data-type is 'UINT64', but model '%s' expects 'BYTES'", pre, c.name, model)
		}
	}
	return nil
}

// tensorFor is the control tensor for one request: shape [1] ([1,1] with the
// batch dimension).
func (c seqControl) tensorFor(info seqInfo, batched bool) tensor.Tensor {
	shape := []int64{1}
	if batched {
		shape = []int64{1, 1}
	}
	t := tensor.Tensor{Name: c.name, DataType: c.dt, Shape: shape}
	switch c.kind {
	case inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_START:
		t.Data = pick(info.start, c.on, c.off)
	case inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_END:
		t.Data = pick(info.end, c.on, c.off)
	case inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_READY:
		t.Data = c.on // every request the batcher hands over is ready
	case inference.ModelSequenceBatching_Control_CONTROL_SEQUENCE_CORRID:
		switch {
		case c.dt == tensor.Bytes:
			t.Data = tensor.EncodeBytes([][]byte{[]byte(info.id.str)})
		default:
			// The ID's little-endian bytes, cut to the type's size (Triton
			// copies the first bytes of the uint64).
			t.Data = binary.LittleEndian.AppendUint64(nil, info.id.num)[:c.dt.Size()]
		}
	}
	return t
}

func pick(cond bool, on, off []byte) []byte {
	if cond {
		return slices.Clone(on)
	}
	return slices.Clone(off)
}

// seqSlotKey carries a request's sequence slot to the executor.
type seqSlotKey struct{}

// SequenceSlot reports, inside Executor.Execute of a model with sequence
// batching, the sequence slot of the executing request on this instance (0 ≤
// slot < max(1, max_batch_size), or max_candidate_sequences with the oldest
// strategy). A sequence keeps its slot from its START request to its END
// (or until it is idle for max_sequence_idle_microseconds), so a model can
// keep a sequence's state per slot, as models do under Triton's direct
// strategy; the START control tells it when to reset.
func SequenceSlot(ctx context.Context) (int, bool) {
	s, ok := ctx.Value(seqSlotKey{}).(int)
	return s, ok
}

// sequencer is Triton's sequence batcher for one model version: each
// sequence (correlation ID) holds a slot of one instance from its START to
// its END; a sequence that finds every slot taken waits in the backlog; a
// slot idle for max_sequence_idle_microseconds is released. Requests run in
// their sequence's order, one per execution, with the control inputs added.
type sequencer struct {
	v        *version
	log      *slog.Logger
	idle     time.Duration
	controls []seqControl
	batched  bool
	insts    []*seqInstance

	mu      sync.Mutex
	active  map[seqID]*seqSlot
	waiting map[seqID]*backlogged // backlogged sequences not yet ended
	backlog []*backlogged         // in arrival order
	last    map[seqID]time.Time   // latest request of each ID (idle reaping)
	free    []*seqSlot            // lowest slot index first, then instance
	stopped bool

	reap    chan struct{}
	quit    chan struct{}
	running sync.WaitGroup
}

type seqInstance struct {
	idx   int // executor index
	slots []*seqSlot
	wake  chan struct{}
}

type seqSlot struct {
	inst  *seqInstance
	index int
	queue []*request
	// ending: the sequence ended (END enqueued, or idle); the slot is free
	// once its queue is done.
	ending bool
}

type backlogged struct {
	id      seqID
	queue   []*request
	expires time.Time // zero: never (no request timeout)
}

func newSequencer(v *version, sb *inference.ModelSequenceBatching, log *slog.Logger) (*sequencer, error) {
	controls, err := parseControls(sb)
	if err != nil {
		return nil, err
	}
	s := &sequencer{
		v:        v,
		log:      log,
		idle:     time.Duration(sb.GetMaxSequenceIdleMicroseconds()) * time.Microsecond,
		controls: controls,
		batched:  v.cfg.GetMaxBatchSize() > 0,
		active:   map[seqID]*seqSlot{},
		waiting:  map[seqID]*backlogged{},
		last:     map[seqID]time.Time{},
		reap:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
	}
	if s.idle <= 0 {
		s.idle = time.Second // Triton's default
	}
	perInstance := max(1, int(v.cfg.GetMaxBatchSize()))
	if o := sb.GetOldest(); o != nil {
		perInstance = max(1, int(o.GetMaxCandidateSequences()))
	}
	for i := range v.execs {
		in := &seqInstance{idx: i, wake: make(chan struct{}, 1)}
		for j := range perInstance {
			in.slots = append(in.slots, &seqSlot{inst: in, index: j})
		}
		s.insts = append(s.insts, in)
	}
	for j := range perInstance {
		for _, in := range s.insts {
			s.free = append(s.free, in.slots[j])
		}
	}
	return s, nil
}

func (s *sequencer) start() {
	for _, in := range s.insts {
		s.running.Add(1)
		go s.work(in)
	}
	s.running.Add(1)
	go s.reaper()
}

// stop ends the workers and the reaper; requests still queued (none once
// the version's requests are done) are refused.
func (s *sequencer) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	close(s.quit)
	s.running.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	var left []*request
	for _, in := range s.insts {
		for _, sl := range in.slots {
			left = append(left, sl.queue...)
			sl.queue = nil
		}
	}
	for _, b := range s.backlog {
		left = append(left, b.queue...)
	}
	s.backlog = nil
	for _, r := range left {
		r.answerAfter(result{err: status.Error(codes.Unavailable, "[request id: "+requestID(r.id)+"] Server is stopping, scheduler for model has stopped accepting new inference requests")},
			func() { s.v.fail(r, "REJECTED", time.Since(r.enqueued)) })
	}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// enqueue places r in its sequence's slot (or the backlog), or refuses it
// with Triton's errors (the request is then not issued).
func (s *sequencer) enqueue(r *request) error {
	model := s.v.model
	if r.batch > 1 {
		return invalidArg("inference request to model '%s' must specify batch-size 1 due to requirements of sequence batcher", model)
	}
	id := r.seq.id
	if id.none() {
		return invalidArg("inference request to model '%s' must specify a non-zero or non-empty correlation ID", model)
	}
	for _, c := range s.controls {
		r.inputs = append(r.inputs, c.tensorFor(r.seq, s.batched))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped && r.seq.start {
		return status.Error(codes.Unavailable, "Server is stopping, scheduler for model has stopped accepting new inference requests")
	}
	slot, bl := s.active[id], s.waiting[id]
	if !r.seq.start && slot == nil && bl == nil {
		return invalidArg("inference request for sequence %s to model '%s' must specify the START flag on the first request of the sequence", id, model)
	}
	if _, known := s.last[id]; !known {
		defer poke(s.reap) // a new idle deadline
	}
	s.last[id] = r.enqueued
	if r.seq.start && (slot != nil || bl != nil) {
		s.log.Warn("sequence has a conflict: the previous sequence did not end before this sequence start; previous sequence will be terminated early", "sequence", id.String(), "model", model)
	}
	switch {
	case slot != nil:
	case bl != nil:
		bl.queue = append(bl.queue, r)
		s.setExpiry(bl, r)
		if r.seq.end {
			delete(s.waiting, id)
		}
		return nil
	case len(s.free) > 0:
		slot = s.free[0]
		s.free = s.free[1:]
		s.active[id] = slot
	default:
		bl = &backlogged{id: id}
		bl.queue = append(bl.queue, r)
		s.setExpiry(bl, r)
		s.backlog = append(s.backlog, bl)
		if !r.seq.end {
			s.waiting[id] = bl
		}
		return nil
	}
	slot.queue = append(slot.queue, r)
	if r.seq.end {
		delete(s.active, id)
		slot.ending = true
	}
	poke(slot.inst.wake)
	return nil
}

// setExpiry: a backlogged sequence is rejected once the shortest request
// timeout among its requests passes (Triton's backlog timeout).
func (s *sequencer) setExpiry(bl *backlogged, r *request) {
	if r.timeout <= 0 {
		return
	}
	e := r.enqueued.Add(r.timeout)
	if bl.expires.IsZero() || e.Before(bl.expires) {
		bl.expires = e
		poke(s.reap)
	}
}

// work runs the requests of one instance's slots, oldest first, one per
// execution.
func (s *sequencer) work(in *seqInstance) {
	defer s.running.Done()
	for {
		select {
		case <-in.wake:
		case <-s.quit:
			return
		}
		for {
			r, slot := s.next(in)
			if r == nil {
				break
			}
			ctx, cancel := context.WithCancelCause(r.ctx)
			stop := context.AfterFunc(s.v.ctx, func() { cancel(context.Cause(s.v.ctx)) })
			s.v.execute(in.idx, []*request{r}, context.WithValue(ctx, seqSlotKey{}, slot))
			stop()
			cancel(nil)
		}
	}
}

// next takes the oldest queued request of the instance's slots, releasing a
// slot whose sequence ended once its last request is taken (as Triton frees
// the slot when the END request joins a batch).
func (s *sequencer) next(in *seqInstance) (*request, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		var best *seqSlot
		for _, sl := range in.slots {
			if len(sl.queue) > 0 && (best == nil || sl.queue[0].enqueued.Before(best.queue[0].enqueued)) {
				best = sl
			}
		}
		if best == nil {
			return nil, 0
		}
		r := best.queue[0]
		best.queue[0] = nil
		best.queue = best.queue[1:]
		if len(best.queue) == 0 && best.ending {
			s.release(best)
		}
		if r.settled.Load() {
			// The client gave up (infer counted it as cancelled).
			s.v.pendingGauge().Add(-1)
			continue
		}
		return r, best.index
	}
}

// release frees a slot: the oldest backlogged sequence takes it, or it
// waits for the next START. Called with s.mu held.
func (s *sequencer) release(sl *seqSlot) {
	sl.ending = false
	if len(s.backlog) > 0 {
		bl := s.backlog[0]
		s.backlog[0] = nil
		s.backlog = s.backlog[1:]
		sl.queue = append(sl.queue, bl.queue...)
		if last := bl.queue[len(bl.queue)-1]; last.seq.end {
			sl.ending = true
		} else {
			if s.waiting[bl.id] == bl {
				delete(s.waiting, bl.id)
			}
			s.active[bl.id] = sl
		}
		poke(sl.inst.wake)
		return
	}
	i, _ := slices.BinarySearchFunc(s.free, sl, func(a, b *seqSlot) int {
		if a.index != b.index {
			return a.index - b.index
		}
		return a.inst.idx - b.inst.idx
	})
	s.free = slices.Insert(s.free, i, sl)
}

// reaper releases the slots of idle sequences and rejects backlogged
// sequences whose timeout passed.
func (s *sequencer) reaper() {
	defer s.running.Done()
	t := time.NewTimer(s.idle)
	defer t.Stop()
	for {
		t.Reset(s.reapOnce(time.Now()))
		select {
		case <-t.C:
		case <-s.reap:
		case <-s.quit:
			return
		}
	}
}

// backlogIdleRecheck is how soon an idle sequence that waits in the backlog
// is looked at again (Triton's 50 ms).
const backlogIdleRecheck = 50 * time.Millisecond

// reapOnce does one pass and returns how long until the next is due.
func (s *sequencer) reapOnce(now time.Time) time.Duration {
	s.mu.Lock()
	wait := s.idle
	for id, at := range s.last {
		if left := s.idle - now.Sub(at); left > 0 {
			wait = min(wait, left)
			continue
		}
		if sl := s.active[id]; sl != nil {
			delete(s.active, id)
			delete(s.last, id)
			sl.ending = true
			if len(sl.queue) == 0 {
				s.release(sl)
			}
			continue
		}
		if s.waiting[id] != nil {
			wait = min(wait, backlogIdleRecheck)
			continue
		}
		delete(s.last, id) // ended: nothing to release
	}
	var rejected []*request
	kept := s.backlog[:0]
	for _, bl := range s.backlog {
		switch {
		case bl.expires.IsZero() || now.Before(bl.expires):
			if !bl.expires.IsZero() {
				wait = min(wait, bl.expires.Sub(now))
			}
			kept = append(kept, bl)
		default:
			rejected = append(rejected, bl.queue...)
			if s.waiting[bl.id] == bl {
				delete(s.waiting, bl.id)
			}
		}
	}
	clear(s.backlog[len(kept):])
	s.backlog = kept
	s.mu.Unlock()
	for _, r := range rejected {
		s.v.pendingGauge().Add(-1)
		r.answerAfter(result{err: status.Error(codes.Unavailable, "timeout of the corresponding sequence has been expired")},
			func() { s.v.fail(r, "REJECTED", now.Sub(r.enqueued)) })
	}
	return max(wait, time.Millisecond)
}

// unsupportedSequencing refuses the sequence_batching features tritonlite
// does not implement, naming the field.
func unsupportedSequencing(cfg *inference.ModelConfig) error {
	sb := cfg.GetSequenceBatching()
	switch {
	case sb == nil:
		return nil
	case len(sb.GetState()) > 0:
		return status.Errorf(codes.Unimplemented, "model '%s': sequence_batching.state (implicit state) is not supported by tritonlite", cfg.GetName())
	case sb.GetIterativeSequence():
		return status.Errorf(codes.Unimplemented, "model '%s': sequence_batching.iterative_sequence is not supported by tritonlite", cfg.GetName())
	}
	return nil
}
