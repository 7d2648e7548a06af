package coordinator

import (
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/model"
)

// The dispatcher tells the forward pass how many micro-batches to cut a
// step into: the configured count, or two for steps of 32 rows or more.
func TestDispatcherMicroBatches(t *testing.T) {
	var _ model.MicroBatcher = (*dispatcher)(nil) // the forward pass asks it
	cases := []struct {
		configured, rows, want int
	}{
		{0, 1, 1}, {0, 31, 1}, {0, 32, 2}, {0, 500, 2},
		{1, 64, 1}, {4, 16, 4}, {4, 2, 4}, // the forward pass caps it at the rows
	}
	for _, c := range cases {
		d := &dispatcher{microBatches: c.configured}
		if got := d.MicroBatches(c.rows); got != c.want {
			t.Errorf("configured %d, %d rows: %d micro-batches, want %d", c.configured, c.rows, got, c.want)
		}
	}
}
