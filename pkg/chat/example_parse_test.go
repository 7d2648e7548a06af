package chat_test

import (
	"fmt"

	"github.com/switchyard-llm/switchyard/pkg/chat"
	"github.com/switchyard-llm/switchyard/pkg/sampling"
)

// A scheduler feeds each token's text through the stop matcher and then
// the parser, so that stops, reasoning and calls are cut from one stream;
// a stop, or the end of generation, finishes the parser.
func ExampleParser() {
	tmpl := "… <tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call> …"
	p, err := chat.NewParser(chat.DefaultParserConfig(chat.DetectFamily(tmpl)))
	if err != nil {
		panic(err)
	}
	stop := sampling.NewStopper([]string{"<|im_end|>"})
	show := func(ds []chat.Delta) {
		for _, d := range ds {
			switch d.Kind {
			case chat.KindCallStart:
				fmt.Println(d.Kind, d.Index, d.Name)
			case chat.KindFinish:
				fmt.Println(d.Kind, d.Calls)
			default:
				fmt.Printf("%v %q\n", d.Kind, d.Text)
			}
		}
	}
	tokens := []string{"<think>", "\nThe user", " asks.\n", "</think>", "\n\n", "<tool_call>", "\n{\"name\": \"get_weather\",",
		" \"arguments\": {\"city\": \"Paris\"}}\n", "</tool_call>", "<|im_end|>"}
	for _, tok := range tokens {
		text, stopped := stop.Push(tok)
		show(p.Push(text))
		if stopped {
			break
		}
	}
	show(p.Finish())
	// Output:
	// reasoning "The user"
	// reasoning " asks."
	// call-start 0 get_weather
	// call-args "{\"city\": \"Paris\"}"
	// finish 1
}
