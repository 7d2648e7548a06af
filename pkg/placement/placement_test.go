package placement

import (
	"testing"

	"github.com/switchyard-llm/switchyard/pkg/model"
)

func TestUnitKey(t *testing.T) {
	u := model.Unit{Layer: 3, Expert: 12}
	if got, err := ParseUnitKey(UnitKey(u)); err != nil || got != u {
		t.Errorf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"", "3", "a/b", "-1/2", "1/"} {
		if _, err := ParseUnitKey(bad); err == nil {
			t.Errorf("ParseUnitKey(%q): nil error", bad)
		}
	}
}
