package pbtxt

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tritongate/tritongate/proto/inference"
)

// Merge applies an override fragment to cfg in place: every field set in ov
// replaces the same field of cfg, repeated fields and messages as a whole
// (an override's instance_group replaces all groups, its dynamic_batching the
// whole batcher), and map entries are set key by key. Setting one member of a
// oneof (dynamic_batching, sequence_batching) replaces the other.
func Merge(cfg, ov *inference.ModelConfig) {
	dst := cfg.ProtoReflect()
	ov.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			m := dst.Mutable(fd).Map()
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if fd.MapValue().Message() != nil {
					mv = protoreflect.ValueOfMessage(proto.Clone(mv.Message().Interface()).ProtoReflect())
				}
				m.Set(k, mv)
				return true
			})
		case fd.IsList():
			l := dst.NewField(fd).List()
			src := v.List()
			for i := range src.Len() {
				e := src.Get(i)
				if fd.Message() != nil {
					e = protoreflect.ValueOfMessage(proto.Clone(e.Message().Interface()).ProtoReflect())
				}
				l.Append(e)
			}
			dst.Set(fd, protoreflect.ValueOfList(l))
		case fd.Message() != nil:
			dst.Set(fd, protoreflect.ValueOfMessage(proto.Clone(v.Message().Interface()).ProtoReflect()))
		default:
			dst.Set(fd, v)
		}
		return true
	})
}

// PoolOverride is what a serving pool changes in a model's config: where its
// instances run and how requests are batched.
type PoolOverride struct {
	// Kind is KIND_CPU or KIND_GPU; KIND_AUTO leaves instance groups alone.
	Kind inference.ModelInstanceGroup_Kind
	// Count is the number of instances (per GPU for KIND_GPU); 0 keeps
	// Triton's default (2 on CPU for ONNX Runtime, 1 per GPU).
	Count int32
	// GPUs restricts KIND_GPU instances to these device ids (empty: all).
	GPUs []int32
	// MaxBatchSize, when set, replaces max_batch_size.
	MaxBatchSize *int32
	// DynamicBatching, when set, replaces the scheduler with this batcher.
	DynamicBatching *inference.ModelDynamicBatching
	// BatchingIfSupported applies MaxBatchSize and DynamicBatching only to
	// models that batch (a pool's defaults): an ONNX model whose inputs and
	// outputs all have a variable leading dimension, or a config with
	// max_batch_size > 0. Other models keep max_batch_size 0 and no batcher.
	// Without it, batching settings on a model that cannot batch are an
	// error.
	BatchingIfSupported bool
}

// withoutBatching is o without its batching settings.
func (o PoolOverride) withoutBatching() PoolOverride {
	o.MaxBatchSize, o.DynamicBatching = nil, nil
	return o
}

// Fragment returns the override as a config fragment for Merge.
func (o PoolOverride) Fragment() (*inference.ModelConfig, error) {
	ov := &inference.ModelConfig{}
	switch o.Kind {
	case inference.ModelInstanceGroup_KIND_AUTO:
		if o.Count != 0 || len(o.GPUs) > 0 {
			return nil, fmt.Errorf("pool override: an instance count or GPU list needs a kind (KIND_CPU or KIND_GPU)")
		}
	case inference.ModelInstanceGroup_KIND_CPU:
		if len(o.GPUs) > 0 {
			return nil, fmt.Errorf("pool override: KIND_CPU instances cannot list GPUs")
		}
		ov.InstanceGroup = []*inference.ModelInstanceGroup{{Kind: o.Kind, Count: o.Count}}
	case inference.ModelInstanceGroup_KIND_GPU:
		ov.InstanceGroup = []*inference.ModelInstanceGroup{{Kind: o.Kind, Count: o.Count, Gpus: o.GPUs}}
	default:
		return nil, fmt.Errorf("pool override: instance kind %s is not a pool kind (use KIND_CPU or KIND_GPU)", o.Kind)
	}
	if o.Count < 0 {
		return nil, fmt.Errorf("pool override: instance count %d must be >= 0", o.Count)
	}
	if o.MaxBatchSize != nil {
		if *o.MaxBatchSize < 0 {
			return nil, fmt.Errorf("pool override: max_batch_size %d must be >= 0", *o.MaxBatchSize)
		}
		ov.MaxBatchSize = *o.MaxBatchSize
	}
	if o.DynamicBatching != nil {
		ov.SchedulingChoice = &inference.ModelConfig_DynamicBatching{DynamicBatching: o.DynamicBatching}
	}
	return ov, nil
}

// Apply returns a copy of cfg with the override applied. An explicit
// max_batch_size of 0 is applied too (Merge skips proto3 zero values).
func (o PoolOverride) Apply(cfg *inference.ModelConfig) (*inference.ModelConfig, error) {
	if o.BatchingIfSupported && cfg.GetMaxBatchSize() == 0 {
		o = o.withoutBatching()
	}
	ov, err := o.Fragment()
	if err != nil {
		return nil, err
	}
	out := proto.Clone(cfg).(*inference.ModelConfig)
	Merge(out, ov)
	if o.MaxBatchSize != nil {
		out.MaxBatchSize = *o.MaxBatchSize
	}
	return out, nil
}
