package server

import (
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tritongate/tritongate/internal/gateway/pool"
	"github.com/tritongate/tritongate/internal/gateway/route"
)

// Sequences. Triton keeps a sequence's state (an accumulator, an RNN's
// hidden state) in the backend that saw its START: every request of a
// sequence (the same parameters["sequence_id"] for a model) must reach that
// backend and that version, in order. The gateway pins a sequence to the
// backend and version that served its START and sends its later requests
// there, without retrying them elsewhere (another backend knows nothing of
// the sequence). The pin goes with the request flagged sequence_end, or
// after seqIdle without a request. A sequence whose backend went away is
// sent to another backend, which answers it as Triton does for a sequence
// it does not know (the first request must carry START).

// seqIdle is how long a pin outlives its last request (Triton drops idle
// sequences after max_sequence_idle_microseconds, 1 s by default).
const seqIdle = 5 * time.Minute

type sequences struct {
	mu        sync.Mutex
	pins      map[string]*seqPin
	lastSweep time.Time
}

type seqPin struct {
	pool    *pool.Pool
	ep      *pool.Endpoint
	version string
	used    time.Time
}

// seqKey identifies a sequence: the model and its sequence id.
func seqKey(model, id string) string { return model + "\x00" + id }

// lookup returns the pin of a sequence, if any.
func (s *sequences) lookup(key string) *seqPin {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pins[key]
	if p != nil {
		if time.Since(p.used) > seqIdle {
			delete(s.pins, key)
			return nil
		}
		p.used = time.Now()
	}
	return p
}

// pin records the backend and version that served a sequence's START
// (replacing an earlier pin: a new START begins a new sequence).
func (s *sequences) pin(key string, p *seqPin) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pins == nil {
		s.pins = map[string]*seqPin{}
	}
	now := time.Now()
	p.used = now
	s.pins[key] = p
	if now.Sub(s.lastSweep) > time.Minute {
		s.lastSweep = now
		for k, v := range s.pins {
			if now.Sub(v.used) > seqIdle {
				delete(s.pins, k)
			}
		}
	}
}

func (s *sequences) drop(key string) {
	s.mu.Lock()
	delete(s.pins, key)
	s.mu.Unlock()
}

// Len is the number of sequences pinned.
func (s *sequences) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pins)
}

// seqCall is what routing needs to know of a request's sequence.
type seqCall struct {
	key        string
	start, end bool
	pin        *seqPin // the backend of a sequence already started, or nil
}

// sequenceOf looks the request's sequence up and applies its pin to the
// target: a sequence started on a version stays on it unless the request
// names a version itself. nil for a request outside any sequence.
func (s *Server) sequenceOf(req *inferRequest, target *route.Target) *seqCall {
	if req.seqID == "" {
		return nil
	}
	sc := &seqCall{key: seqKey(req.model, req.seqID), start: req.seqStart, end: req.seqEnd}
	if !sc.start {
		if p := s.seqs.lookup(sc.key); p != nil && p.pool == target.Pool {
			sc.pin = p
			if req.version == "" {
				target.Version = p.version
			}
		}
	}
	return sc
}

// prefer is the endpoint the sequence is pinned to, or nil.
func (sc *seqCall) prefer() *pool.Endpoint {
	if sc == nil || sc.pin == nil {
		return nil
	}
	return sc.pin.ep
}

// retriable reports whether a failed request of the sequence may go to
// another backend: only its START (nothing of it exists anywhere yet).
func (sc *seqCall) retriable() bool { return sc == nil || sc.start }

// served records the outcome of a request of the sequence.
func (s *Server) seqServed(sc *seqCall, target route.Target, ep *pool.Endpoint, ok bool) {
	if sc == nil {
		return
	}
	switch {
	case sc.end:
		s.seqs.drop(sc.key)
	case sc.start && ok:
		s.seqs.pin(sc.key, &seqPin{pool: target.Pool, ep: ep, version: target.Version})
	}
}

// Parameters of a ModelInferRequest (field 4: map<string, InferParameter>).
const (
	reqParameters = 4
	paramBool     = 1
	paramInt64    = 2
	paramString   = 3
	paramUint64   = 5
)

// scanParameter reads one entry of the request's parameters map, keeping
// the sequence fields.
func (r *inferRequest) scanParameter(entry []byte) {
	var key string
	var value []byte
	for len(entry) > 0 {
		num, typ, n := protowire.ConsumeTag(entry)
		if n < 0 {
			return
		}
		entry = entry[n:]
		m := protowire.ConsumeFieldValue(num, typ, entry)
		if m < 0 {
			return
		}
		if typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(entry)
			switch num {
			case 1:
				key = string(v)
			case 2:
				value = v
			}
		}
		entry = entry[m:]
	}
	switch key {
	case "sequence_id", "sequence_start", "sequence_end":
	default:
		return
	}
	// The value's oneof: the last of its fields 1-5 wins, as in protobuf.
	var choice protowire.Number
	var varint uint64
	var str []byte
	for len(value) > 0 {
		num, typ, n := protowire.ConsumeTag(value)
		if n < 0 {
			return
		}
		value = value[n:]
		m := protowire.ConsumeFieldValue(num, typ, value)
		if m < 0 {
			return
		}
		if num >= 1 && num <= 5 {
			choice = num
			switch typ {
			case protowire.VarintType:
				varint, _ = protowire.ConsumeVarint(value)
			case protowire.BytesType:
				str, _ = protowire.ConsumeBytes(value)
			}
		}
		value = value[m:]
	}
	switch key {
	case "sequence_start":
		r.seqStart = choice == paramBool && varint != 0
	case "sequence_end":
		r.seqEnd = choice == paramBool && varint != 0
	default:
		r.seqID = ""
		switch choice {
		case paramInt64:
			r.seqID = seqIDOrEmpty(strconv.FormatInt(int64(varint), 10))
		case paramUint64:
			r.seqID = seqIDOrEmpty(strconv.FormatUint(varint, 10))
		case paramString:
			if len(str) > 0 {
				r.seqID = "s:" + string(str)
			}
		}
	}
}

// seqIDOrEmpty: correlation id 0 means "no sequence" in Triton.
func seqIDOrEmpty(id string) string {
	if id == "0" {
		return ""
	}
	return id
}
