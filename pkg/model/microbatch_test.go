package model

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// chosenMicroBatches are remote experts that ask for k micro-batches
// (MicroBatcher), as the dispatcher does from the round trip it measures.
type chosenMicroBatches struct {
	asyncExperts
	k     int
	asked *[]int
}

func (c chosenMicroBatches) MicroBatches(rows int) int {
	*c.asked = append(*c.asked, rows)
	return c.k
}

// TestManyMicroBatches: a step cut into as many micro-batches as the
// experts ask — none, a few, more than eight, more than it has rows — gives
// the uncut step's logits and routing bit for bit, with one expert call per
// micro-batch and layer; a failure in a middle micro-batch fails the step
// and leaves no sequence advanced.
func TestManyMicroBatches(t *testing.T) {
	m := loadModel(t, tinyMixtral)
	long := make([]int32, 13)
	for i := range long {
		long[i] = int32(300 + i)
	}
	chunks := func() []Chunk {
		return []Chunk{
			{Seq: m.NewSequence(), Tokens: []int32{510, 1, 2}, AllLogits: true, WantRouting: true},
			{Seq: m.NewSequence(), Tokens: long, AllLogits: true, WantRouting: true},
			{Seq: m.NewSequence(), Tokens: []int32{7}, AllLogits: true, WantRouting: true},
		}
	}
	const rows = 17
	want := chunks()
	if _, err := m.Forward(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	local := m.Experts.(*Local)
	defer func() { m.Experts = local }()
	for _, k := range []int{1, 3, 5, 8, 9, 40} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			started := 0
			var asked []int
			m.Experts = chosenMicroBatches{asyncExperts{local, &started, -1}, k, &asked}
			got := chunks()
			if _, err := m.Forward(t.Context(), got); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(asked, []int{rows}) {
				t.Errorf("asked for micro-batches with %v rows, want once with %d", asked, rows)
			}
			if calls := min(k, rows) * m.Layers; started != calls {
				t.Errorf("%d expert calls, want %d (%d micro-batches per layer)", started, calls, min(k, rows))
			}
			for c := range want {
				if d := maxDiff(got[c].Logits, want[c].Logits); d != 0 || len(got[c].Logits) != len(want[c].Logits) {
					t.Errorf("chunk %d: logits differ by %g", c, d)
				}
				if !slices.Equal(got[c].Routing, want[c].Routing) {
					t.Errorf("chunk %d: routing differs", c)
				}
			}
		})
	}
	started := 0
	var asked []int
	m.Experts = chosenMicroBatches{asyncExperts{local, &started, m.Layers - 1}, 4, &asked}
	ch := chunks()
	if _, err := m.Forward(t.Context(), ch); err == nil || !strings.Contains(err.Error(), "node unreachable") {
		t.Fatalf("failing the last layer: got %v, want the experts' error", err)
	}
	for c := range ch {
		if ch[c].Seq.Len() != 0 {
			t.Errorf("chunk %d left %d positions", c, ch[c].Seq.Len())
		}
	}
}
