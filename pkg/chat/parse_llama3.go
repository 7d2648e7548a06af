package chat

import (
	"bytes"
	"encoding/json"
	"strings"
)

// llama3: Llama 3.1–3.3 answer a call with its bare JSON, the whole reply,
//
//	{"name": "f", "parameters": {…}}
//
// so a call is read only where the content begins (after any reasoning),
// and after a call, for models that write several one after another.
var llama3 = family{
	name:   "llama3",
	detect: func(src string) bool { return strings.Contains(src, "<|start_header_id|>ipython<|end_header_id|>") },
	reader: tagged(&tagSyntax{
		family:   "llama3",
		think:    true,
		open:     "{",
		keepOpen: true,
		jsonBody: true,
		lead:     true,
		read:     readBareCall("llama3"),
	}),
	newID: openAIID,
}

// readBareCall reads a call written as its bare JSON object, {"name": …,
// "arguments" or "parameters": …}, as Llama 3 and the plain template write
// it.
func readBareCall(fam string) func(body []byte) ([]rawCall, error) {
	return func(body []byte) ([]rawCall, error) { return bareCall(fam, body) }
}

func bareCall(fam string, body []byte) ([]rawCall, error) {
	// Only these keys: any other JSON is an answer, not a call.
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return nil, malformed(fam, "%v", err)
	}
	for k, v := range keys {
		switch {
		case k == "type" && bytes.Equal(trimSpace(v), []byte(`"function"`)):
		case k == "name" || k == "parameters" || k == "arguments":
		default:
			return nil, malformed(fam, "key %.40q in a call", k)
		}
	}
	var c namedCall
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, malformed(fam, "%v", err)
	}
	rc, err := c.toRaw(fam)
	if err != nil {
		return nil, err
	}
	return []rawCall{rc}, nil
}
