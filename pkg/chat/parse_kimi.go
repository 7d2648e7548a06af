package chat

import (
	"bytes"
	"strings"
)

// kimiK2: a section of calls, each with the model's own ID,
//
//	<|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:0<|tool_call_argument_begin|>{…}<|tool_call_end|><|tool_calls_section_end|>
//
// The ID (functions.NAME:0) is kept as the call's ID, as Moonshot's API
// returns it and the template renders it back.
var kimiK2 = family{
	name:   "kimi-k2",
	detect: func(src string) bool { return containsAll(src, "<|tool_calls_section_begin|>", "<|tool_call_begin|>") },
	reader: tagged(&tagSyntax{
		family:       "kimi-k2",
		think:        true,
		sectionOpen:  "<|tool_calls_section_begin|>",
		sectionClose: "<|tool_calls_section_end|>",
		open:         "<|tool_call_begin|>",
		close:        "<|tool_call_end|>",
		start:        func(b []byte) bool { return nameThen(b, kimiArgs) },
		read:         readKimi,
	}),
	newID: openAIID,
}

const kimiArgs = "<|tool_call_argument_begin|>"

func readKimi(body []byte) ([]rawCall, error) {
	id, args, ok := bytes.Cut(body, []byte(kimiArgs))
	if !ok {
		return nil, malformed("kimi-k2", "no %s in call", kimiArgs)
	}
	ids := string(trimSpace(id))
	// functions.NAME:INDEX; the name is what lies between.
	name := strings.TrimPrefix(ids, "functions.")
	if i := strings.LastIndexByte(name, ':'); i >= 0 && i+1 < len(name) && strings.Trim(name[i+1:], "0123456789") == "" {
		name = name[:i]
	}
	if !validName(name) || !validName(ids) {
		return nil, malformed("kimi-k2", "call ID %.40q", ids)
	}
	a, err := objectText(args)
	if err != nil {
		return nil, malformed("kimi-k2", "call %s: %v", ids, err)
	}
	return []rawCall{{id: ids, name: name, args: a}}, nil
}
