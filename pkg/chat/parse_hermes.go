package chat

import (
	"encoding/json"
	"strings"
)

// hermes: <tool_call>\n{"name": "f", "arguments": {…}}\n</tool_call>, one
// block per call, as Hermes 2 Pro, Qwen2.5 and Qwen3 write them.
var hermes = family{
	name:   "hermes",
	detect: func(src string) bool { return strings.Contains(src, "<tool_call>") },
	reader: tagged(&tagSyntax{
		family:   "hermes",
		think:    true,
		open:     "<tool_call>",
		close:    "</tool_call>",
		jsonBody: true,
		read:     readHermes,
	}),
	newID: openAIID,
}

// namedCall is a call written as a JSON object (Hermes, Mistral, Llama 3).
type namedCall struct {
	Name       string          `json:"name"`
	Arguments  json.RawMessage `json:"arguments"`
	Parameters json.RawMessage `json:"parameters"` // Llama 3's name for them
	ID         string          `json:"id"`         // Mistral's
}

// toRaw checks a namedCall and returns it as a rawCall.
func (c namedCall) toRaw(fam string) (rawCall, error) {
	if !validName(c.Name) {
		return rawCall{}, malformed(fam, "function name %.40q", c.Name)
	}
	args := c.Arguments
	if args == nil {
		args = c.Parameters
	}
	if args == nil {
		args = json.RawMessage("{}")
	}
	a, err := argsText(args)
	if err != nil {
		return rawCall{}, malformed(fam, "call %s: %v", c.Name, err)
	}
	return rawCall{name: c.Name, args: a}, nil
}

func readHermes(body []byte) ([]rawCall, error) {
	var c namedCall
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, malformed("hermes", "%v", err)
	}
	rc, err := c.toRaw("hermes")
	if err != nil {
		return nil, err
	}
	return []rawCall{rc}, nil
}
