package chat

import (
	"bytes"
	"strings"
)

// deepseek: a section of calls in DeepSeek's special tokens. V3.1 writes
//
//	<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{…}<｜tool▁call▁end｜><｜tool▁calls▁end｜>
//
// and V3 and R1 wrote the call as
//
//	<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
//	```json
//	{…}
//	```<｜tool▁call▁end｜>
//
// Both are read.
var deepseek = family{
	name:   "deepseek",
	detect: func(src string) bool { return strings.Contains(src, "<｜tool▁calls▁begin｜>") },
	reader: tagged(&tagSyntax{
		family:       "deepseek",
		think:        true,
		sectionOpen:  "<｜tool▁calls▁begin｜>",
		sectionClose: "<｜tool▁calls▁end｜>",
		open:         "<｜tool▁call▁begin｜>",
		close:        "<｜tool▁call▁end｜>",
		start:        func(b []byte) bool { return nameThen(b, deepseekSep) },
		read:         readDeepSeek,
	}),
	newID: openAIID,
}

const deepseekSep = "<｜tool▁sep｜>"

func readDeepSeek(body []byte) ([]rawCall, error) {
	name, args, ok := bytes.Cut(body, []byte(deepseekSep))
	if !ok {
		return nil, malformed("deepseek", "no %s in call", deepseekSep)
	}
	if string(trimSpace(name)) == "function" {
		// V3/R1: the name, then the arguments in a JSON code block.
		name, args, ok = bytes.Cut(args, []byte("\n"))
		if !ok {
			return nil, malformed("deepseek", "no newline after the function name")
		}
		args = trimSpace(args)
		if args, ok = bytes.CutPrefix(args, []byte("```json")); !ok {
			return nil, malformed("deepseek", "arguments not in a ```json block")
		}
		if args, ok = bytes.CutSuffix(args, []byte("```")); !ok {
			return nil, malformed("deepseek", "arguments' ```json block not closed")
		}
	}
	n := string(trimSpace(name))
	if !validName(n) {
		return nil, malformed("deepseek", "function name %.40q", n)
	}
	a, err := objectText(args)
	if err != nil {
		return nil, malformed("deepseek", "call %s: %v", n, err)
	}
	return []rawCall{{name: n, args: a}}, nil
}
