package router

import (
	"strings"
	"testing"

	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

func routerWith(loads map[string]int64) *Router {
	r := &Router{coords: map[string]*coordConn{}}
	for id, n := range loads {
		c := &coordConn{id: id}
		c.inFlight.Store(n)
		r.coords[id] = c
	}
	return r
}

func TestAffinityKey(t *testing.T) {
	system := strings.Repeat("You are a careful assistant. ", 20)
	a, okA := affinityKey(&pb.GenerateRequest{Messages: []*pb.ChatMessage{{Role: "system", Parts: text(system)}, {Role: "user", Parts: text("What is 2+2?")}}})
	b, okB := affinityKey(&pb.GenerateRequest{Messages: []*pb.ChatMessage{{Role: "system", Parts: text(system)}, {Role: "user", Parts: text("Name a colour.")}}})
	c, _ := affinityKey(&pb.GenerateRequest{Messages: []*pb.ChatMessage{{Role: "system", Parts: text("Be brief. " + system)}}})
	if !okA || !okB || a != b {
		t.Errorf("requests sharing a long system prompt key differently: %x %x (%v %v)", a, b, okA, okB)
	}
	if a == c {
		t.Error("a different system prompt keys the same")
	}
	if _, ok := affinityKey(&pb.GenerateRequest{Prompt: "short"}); ok {
		t.Error("a 5-byte prompt is keyed for affinity")
	}
	long := make([]int32, 100)
	if _, ok := affinityKey(&pb.GenerateRequest{PromptTokens: long}); !ok {
		t.Error("a 100-token prompt is not keyed")
	}
}

func TestPickFor(t *testing.T) {
	r := routerWith(map[string]int64{"c1": 0, "c2": 0, "c3": 0})
	counts := map[string]int{}
	for k := range uint64(300) {
		first := r.pickFor(k, true, map[string]bool{})
		if again := r.pickFor(k, true, map[string]bool{}); again != first {
			t.Fatalf("key %d: %s then %s", k, first.id, again.id)
		}
		counts[first.id]++
	}
	for id, n := range counts {
		if n < 60 {
			t.Errorf("coordinator %s got %d of 300 keys: %v", id, n, counts)
		}
	}
	// Skipped and overloaded coordinators are passed over; without a key
	// the least busy is chosen.
	key := uint64(7)
	home := r.pickFor(key, true, map[string]bool{}).id
	if got := r.pickFor(key, true, map[string]bool{home: true}); got == nil || got.id == home {
		t.Errorf("skipping %s still picked it", home)
	}
	r.coords[home].inFlight.Store(affinitySlack + 1)
	if got := r.pickFor(key, true, map[string]bool{}); got.id == home {
		t.Errorf("%s, %d requests busier than the others, was still picked", home, affinitySlack+1)
	}
	r.coords[home].inFlight.Store(affinitySlack)
	if got := r.pickFor(key, true, map[string]bool{}); got.id != home {
		t.Errorf("%s within the slack was passed over for %s", home, got.id)
	}
	r2 := routerWith(map[string]int64{"a": 3, "b": 1, "c": 2})
	if got := r2.pickFor(0, false, map[string]bool{}); got.id != "b" {
		t.Errorf("unkeyed request went to %s, want the least busy b", got.id)
	}
}

func text(s string) []*pb.ContentPart {
	return []*pb.ContentPart{{Part: &pb.ContentPart_Text{Text: s}}}
}
