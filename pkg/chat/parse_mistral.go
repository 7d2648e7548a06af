package chat

import (
	"encoding/json"
	"strings"
)

// mistral: Mistral Nemo's [TOOL_CALLS] and a JSON array of calls,
//
//	[TOOL_CALLS][{"name": "f", "arguments": {…}, "id": "a1b2c3d4e"}]
//
// Its template refuses a call ID that is not nine letters and digits, so
// the model's ID is kept and a missing one is made in that shape.
var mistral = family{
	name:   "mistral",
	detect: func(src string) bool { return strings.Contains(src, "[TOOL_CALLS]") },
	reader: tagged(&tagSyntax{
		family:   "mistral",
		open:     "[TOOL_CALLS]",
		jsonBody: true,
		read:     readMistral,
	}),
	newID: func() string { return randomID("", 9) },
}

func readMistral(body []byte) ([]rawCall, error) {
	var calls []namedCall
	if err := json.Unmarshal(body, &calls); err != nil {
		return nil, malformed("mistral", "%v", err)
	}
	if len(calls) == 0 {
		return nil, malformed("mistral", "no calls after [TOOL_CALLS]")
	}
	out := make([]rawCall, len(calls))
	for i, c := range calls {
		rc, err := c.toRaw("mistral")
		if err != nil {
			return nil, err
		}
		if len(c.ID) == 9 && strings.Trim(c.ID, idChars) == "" {
			rc.id = c.ID
		}
		out[i] = rc
	}
	return out, nil
}
