package tritonlite

import (
	"encoding/binary"
	"slices"

	"github.com/tritongate/tritongate/internal/tensor"
)

// Triton keeps a request's inputs in a std::unordered_map<std::string, Input>
// (InferenceRequest::original_inputs_) and validates them in that map's
// iteration order: when two inputs are wrong, the one reported is the first
// in that order, and the input-count error lists the inputs in it. That order
// is libstdc++'s, fixed by its string hash and its bucket policy, so
// tritonlite computes it the same way (tritonserver is built with GCC on
// Linux x86-64).

// stdHash is libstdc++'s std::hash<std::string> on a 64-bit target:
// std::_Hash_bytes (a Murmur hash) with the seed 0xc70f6907.
func stdHash(s string) uint64 {
	const mul = uint64(0xc6a4a793)<<32 + 0x5bd1e995
	shiftMix := func(v uint64) uint64 { return v ^ (v >> 47) }
	n := len(s)
	aligned := n &^ 7
	h := uint64(0xc70f6907) ^ (uint64(n) * mul)
	for p := 0; p < aligned; p += 8 {
		d := shiftMix(binary.LittleEndian.Uint64([]byte(s[p:p+8]))*mul) * mul
		h ^= d
		h *= mul
	}
	if n&7 != 0 {
		var d uint64
		for i := n - 1; i >= aligned; i-- {
			d = d<<8 + uint64(s[i])
		}
		h ^= d
		h *= mul
	}
	h = shiftMix(h) * mul
	return shiftMix(h)
}

// stdPrimes is the start of libstdc++'s __prime_list (hashtable-aux.cc), the
// bucket counts its _Prime_rehash_policy picks from.
var stdPrimes = []int{2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
	103, 109, 113, 127, 137, 139, 149, 157, 167, 179, 193, 199, 211, 227, 241, 257, 277, 293, 313, 337, 359, 383, 409,
	439, 467, 503, 541, 577, 619, 661, 709, 761, 823, 887, 953, 1031, 1109, 1193, 1289, 1381, 1493, 1613, 1741, 1879,
	2029, 2179, 2357, 2549, 2753, 2971, 3209, 3469, 3739, 4027, 4349, 4703, 5087, 5503, 5953, 6427, 6949, 7517, 8123,
	8783, 9497, 10273, 11113, 12011, 12983, 14033, 15173, 16411, 17749, 19183, 20753, 22447, 24281, 26267, 28411,
	30727, 33223, 35933, 38873, 42043, 45481, 49201, 53201, 57557, 62233, 67307, 72817, 78779, 85229, 92203, 99733}

// stdNextBucket is _Prime_rehash_policy::_M_next_bkt (max load factor 1).
func stdNextBucket(n int) int {
	fast := []int{2, 2, 2, 3, 5, 5, 7, 7, 11, 11, 11, 11, 13, 13}
	if n < len(fast) {
		if n == 0 {
			return 1
		}
		return fast[n]
	}
	if i, _ := slices.BinarySearch(stdPrimes[6:], n); 6+i < len(stdPrimes) {
		return stdPrimes[6+i]
	}
	return n | 1 // beyond any request's input count
}

// tritonInputOrder returns names (distinct, in the order the request lists
// them, which is the order Triton inserts them) in the iteration order of a
// libstdc++ unordered_map they were inserted into.
func tritonInputOrder(names []string) []string {
	type node struct {
		name string
		hash uint64
	}
	var order []node // the map's node list
	buckets, nextResize := 1, 0
	// insert puts a node at the start of its bucket's run, or at the front of
	// the list when the bucket is empty (_M_insert_bucket_begin); a rehash
	// re-inserts the nodes in list order the same way (_M_rehash_aux).
	insert := func(list []node, nd node, n int) []node {
		b := nd.hash % uint64(n)
		for i, o := range list {
			if o.hash%uint64(n) == b {
				return slices.Insert(list, i, nd)
			}
		}
		return slices.Insert(list, 0, nd)
	}
	for _, name := range names {
		// _M_need_rehash(buckets, len(order), 1); the first insertion sizes
		// the table for 11 elements.
		if len(order)+1 > nextResize {
			minBuckets := len(order) + 1
			if nextResize == 0 {
				minBuckets = max(minBuckets, 11)
			}
			if minBuckets >= buckets {
				buckets = stdNextBucket(max(minBuckets+1, buckets*2))
				re := make([]node, 0, len(names))
				for _, o := range order {
					re = insert(re, o, buckets)
				}
				order = re
			}
			nextResize = buckets
		}
		order = insert(order, node{name, stdHash(name)}, buckets)
	}
	out := make([]string, len(order))
	for i, o := range order {
		out[i] = o.name
	}
	return out
}

// inTritonOrder sorts a request's inputs (distinct names, in request order)
// into the order Triton validates them in.
func inTritonOrder(ins []tensor.Tensor) []tensor.Tensor {
	if len(ins) < 2 {
		return ins
	}
	names := make([]string, len(ins))
	byName := make(map[string]tensor.Tensor, len(ins))
	for i, t := range ins {
		names[i] = t.Name
		byName[t.Name] = t
	}
	out := make([]tensor.Tensor, 0, len(ins))
	for _, n := range tritonInputOrder(names) {
		out = append(out, byName[n])
	}
	return out
}
