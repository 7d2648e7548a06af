package router

import (
	"encoding/binary"
	"hash/fnv"

	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// Cache-aware routing: requests that start alike go to the same
// coordinator, where their common prefix is likely in its prefix cache.
// The router has no tokenizer, so it keys a request by the first
// affinityChars bytes of its text (the prompt, or the messages in order:
// system prompt, tools and first turns), and picks among coordinators by
// rendezvous hashing on that key: each key has its own order of
// coordinators, stable as coordinators come and go. A coordinator more
// than affinitySlack requests busier than the least busy is passed over.
const (
	affinityChars = 256
	affinitySlack = 4
)

// affinityKey hashes a request's leading text; ok is false for requests
// too short to share a cached block worth routing for.
func affinityKey(g *pb.GenerateRequest) (key uint64, ok bool) {
	h := fnv.New64a()
	n := 0
	write := func(b []byte) {
		b = b[:min(len(b), affinityChars-n)]
		h.Write(b)
		n += len(b)
	}
	switch {
	case g.Prompt != "":
		write([]byte(g.Prompt))
	case len(g.PromptTokens) > 0:
		var buf [4]byte
		for _, t := range g.PromptTokens {
			if n >= affinityChars {
				break
			}
			binary.LittleEndian.PutUint32(buf[:], uint32(t))
			write(buf[:])
		}
	default:
		for _, m := range g.Messages {
			if n >= affinityChars {
				break
			}
			write([]byte(m.Role))
			write([]byte{0})
			for _, p := range m.Parts {
				write([]byte(p.GetText()))
			}
			write([]byte{0})
		}
	}
	return h.Sum64(), n >= affinityChars
}

// pickFor is the coordinator for a request keyed key (see affinityKey),
// not in skip: the highest rendezvous score among those within
// affinitySlack requests of the least busy; without a key, the least
// busy.
func (r *Router) pickFor(key uint64, keyed bool, skip map[string]bool) *coordConn {
	least := r.pickExcept(skip)
	if !keyed || least == nil {
		return least
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	limit := least.inFlight.Load() + affinitySlack
	var best *coordConn
	var bestScore uint64
	for _, c := range r.coords {
		if skip[c.id] || c.inFlight.Load() > limit {
			continue
		}
		if s := rendezvous(key, c.id); best == nil || s > bestScore {
			best, bestScore = c, s
		}
	}
	if best == nil {
		return least
	}
	return best
}

// rendezvous scores coordinator id for key.
func rendezvous(key uint64, id string) uint64 {
	h := fnv.New64a()
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], key)
	h.Write(buf[:])
	h.Write([]byte(id))
	// fnv's low bits mix poorly for short inputs: finish with a 64-bit mixer.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}
