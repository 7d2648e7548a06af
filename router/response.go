package router

import (
	"slices"
	"strings"

	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// The answers, in OpenAI's shapes. Fields a client may rely on being
// present (finish_reason, logprobs, content) are written as null rather
// than left out.

type textCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"` // text_completion
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []textChoice `json:"choices"`
	Usage   *usageJSON   `json:"usage,omitempty"` // on a stream's usage chunk, or the whole answer
}

type textChoice struct {
	Text         string              `json:"text"`
	Index        uint32              `json:"index"`
	FinishReason *string             `json:"finish_reason"`
	Logprobs     *completionLogprobs `json:"logprobs"`
	tokenExtras
}

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"` // chat.completion
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usageJSON   `json:"usage"`
}

type chatChoice struct {
	Index        uint32          `json:"index"`
	Message      assistantReply  `json:"message"`
	FinishReason *string         `json:"finish_reason"`
	Logprobs     *chatLogprobsOf `json:"logprobs"`
	tokenExtras
}

// assistantReply is a whole reply: content is null when the reply is
// tool calls only.
type assistantReply struct {
	Role             string         `json:"role"`
	Content          *string        `json:"content"`
	ReasoningContent string         `json:"reasoning_content,omitempty"`
	ToolCalls        []toolCallJSON `json:"tool_calls,omitempty"`
}

type toolCallJSON struct {
	ID       string           `json:"id"`
	Type     string           `json:"type"` // function
	Function toolFunctionJSON `json:"function"`
}

type toolFunctionJSON struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type chatChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"` // chat.completion.chunk
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []chatChunkChoice `json:"choices"`
	Usage   *usageJSON        `json:"usage,omitempty"`
}

type chatChunkChoice struct {
	Index        uint32          `json:"index"`
	Delta        replyDelta      `json:"delta"`
	FinishReason *string         `json:"finish_reason"`
	Logprobs     *chatLogprobsOf `json:"logprobs"`
	tokenExtras
}

// replyDelta is a streamed piece of a reply.
type replyDelta struct {
	Role             string          `json:"role,omitempty"`
	Content          *string         `json:"content,omitempty"`
	ReasoningContent *string         `json:"reasoning_content,omitempty"`
	ToolCalls        []toolCallDelta `json:"tool_calls,omitempty"`
}

// toolCallDelta is OpenAI's streamed call: the first of a call carries
// its ID, type and name; the rest fragments of its arguments.
type toolCallDelta struct {
	Index    uint32            `json:"index"`
	ID       string            `json:"id,omitempty"`
	Type     string            `json:"type,omitempty"`
	Function toolFunctionDelta `json:"function"`
}

type toolFunctionDelta struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// tokenExtras are this server's extensions to a choice.
type tokenExtras struct {
	TokenIDs []int32     `json:"token_ids,omitempty"` // return_token_ids
	Routing  *routingOut `json:"routing,omitempty"`   // return_routing
}

// routingOut is the experts chosen: per position, per layer, the k
// experts (best first); none for a dense layer.
type routingOut struct {
	Prompt [][][]uint32 `json:"prompt,omitempty"`
	Tokens [][][]uint32 `json:"tokens"`
}

type usageJSON struct {
	PromptTokens        uint32               `json:"prompt_tokens"`
	CompletionTokens    uint32               `json:"completion_tokens"`
	TotalTokens         uint32               `json:"total_tokens"`
	PromptTokensDetails *promptTokensDetails `json:"prompt_tokens_details,omitempty"`
}

// promptTokensDetails is OpenAI's: how many prompt tokens were served from
// the prefix cache.
type promptTokensDetails struct {
	CachedTokens uint32 `json:"cached_tokens"`
}

// completionLogprobs is the legacy completions logprobs object.
type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float32            `json:"token_logprobs"`
	TopLogprobs   []map[string]float32 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

type chatLogprobsOf struct {
	Content []chatTokenLogprob `json:"content"`
}

type chatTokenLogprob struct {
	Token       string           `json:"token"`
	Logprob     float32          `json:"logprob"`
	Bytes       []int            `json:"bytes"`
	TopLogprobs []chatTopLogprob `json:"top_logprobs"`
}

type chatTopLogprob struct {
	Token   string  `json:"token"`
	Logprob float32 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

func finishString(f pb.FinishReason) *string {
	var s string
	switch f {
	case pb.FinishReason_FINISH_REASON_STOP:
		s = "stop"
	case pb.FinishReason_FINISH_REASON_LENGTH:
		s = "length"
	case pb.FinishReason_FINISH_REASON_TOOL_CALLS:
		s = "tool_calls"
	default:
		return nil
	}
	return &s
}

func pieceString(b []byte) string { return strings.ToValidUTF8(string(b), "\uFFFD") }

func ints(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

func tokenIDs(tokens []*pb.Token) []int32 {
	ids := make([]int32, len(tokens))
	for i, t := range tokens {
		ids[i] = t.Id
	}
	return ids
}

func tokenRouting(tokens []*pb.Token) []uint32 {
	var out []uint32
	for _, t := range tokens {
		out = append(out, t.Routing...)
	}
	return out
}

// response shapes a request's answer: the options it asked for, and each
// choice's state.
type response struct {
	id       string
	created  int64
	model    string
	kind     kind
	logprobs int // < 0: none asked for
	tokenIDs bool
	routing  bool
	layers   int
	moeLayer func(l int) bool // false: a dense layer, whose slots hold no experts
	k        int              // experts per token, from the first routing seen

	choices map[uint32]*choiceState
}

// choiceState is one choice as it comes in.
type choiceState struct {
	text, reasoning strings.Builder
	calls           []toolCallJSON
	tokens          []*pb.Token
	finish          pb.FinishReason
	usage           *pb.Usage
	promptRouting   []uint32
	offset          int  // text offset of the next token (completions logprobs)
	started         bool // its first chunk is sent
}

func (o *response) choice(i uint32) *choiceState {
	if o.choices == nil {
		o.choices = map[uint32]*choiceState{}
	}
	c := o.choices[i]
	if c == nil {
		c = &choiceState{}
		o.choices[i] = c
	}
	return c
}

// indexes are the choices seen, in order.
func (o *response) indexes() []uint32 {
	var out []uint32
	for i := range o.choices {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// usage sums the choices': the prompt once, each choice's completion
// tokens.
func (o *response) usage() *usageJSON {
	var u *usageJSON
	for _, c := range o.choices {
		if c.usage == nil {
			continue
		}
		if u == nil {
			u = &usageJSON{PromptTokens: c.usage.PromptTokens, PromptTokensDetails: &promptTokensDetails{}}
		}
		u.CompletionTokens += c.usage.CompletionTokens
		u.PromptTokensDetails.CachedTokens = max(u.PromptTokensDetails.CachedTokens, c.usage.CachedTokens)
	}
	if u != nil {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return u
}

// add folds a message into its choice and returns the choice and the
// message's typed content: its text, reasoning and tool-call deltas.
func (o *response) add(m *pb.GenerateResponse) (*choiceState, replyDelta) {
	c := o.choice(m.Index)
	if m.PromptRouting != nil {
		c.promptRouting, o.k = m.PromptRouting, int(m.ExpertsPerToken)
	}
	var d replyDelta
	var text, reasoning strings.Builder
	for _, dl := range m.Deltas {
		switch x := dl.Delta.(type) {
		case *pb.Delta_Text:
			text.WriteString(x.Text)
		case *pb.Delta_Reasoning:
			reasoning.WriteString(x.Reasoning)
		case *pb.Delta_ToolCall:
			call := toolCallJSON{ID: x.ToolCall.Id, Type: "function", Function: toolFunctionJSON{Name: x.ToolCall.Name}}
			c.calls = append(c.calls, call)
			d.ToolCalls = append(d.ToolCalls, toolCallDelta{Index: x.ToolCall.Index, ID: call.ID, Type: "function", Function: toolFunctionDelta{Name: call.Function.Name}})
		case *pb.Delta_ToolCallArguments:
			a := x.ToolCallArguments
			if int(a.Index) < len(c.calls) {
				c.calls[a.Index].Function.Arguments += a.Fragment
			}
			d.ToolCalls = append(d.ToolCalls, toolCallDelta{Index: a.Index, Function: toolFunctionDelta{Arguments: a.Fragment}})
		}
	}
	if text.Len() > 0 {
		s := text.String()
		c.text.WriteString(s)
		d.Content = &s
	}
	if reasoning.Len() > 0 {
		s := reasoning.String()
		c.reasoning.WriteString(s)
		d.ReasoningContent = &s
	}
	c.tokens = append(c.tokens, m.Tokens...)
	if m.FinishReason != pb.FinishReason_FINISH_REASON_UNSPECIFIED {
		c.finish = m.FinishReason
	}
	if m.Usage != nil {
		c.usage = m.Usage
	}
	return c, d
}

// extras are a choice's token IDs and routing for tokens.
func (o *response) extras(c *choiceState, tokens []*pb.Token) tokenExtras {
	var e tokenExtras
	if o.tokenIDs {
		e.TokenIDs = tokenIDs(tokens)
	}
	if o.routing {
		e.Routing = &routingOut{Tokens: o.shape(tokenRouting(tokens))}
		if c.promptRouting != nil {
			e.Routing.Prompt = o.shape(c.promptRouting)
			c.promptRouting = nil // sent once
		}
	}
	return e
}

// chatLogprobs renders tokens' log-probabilities for chat.
func (o *response) chatLogprobs(tokens []*pb.Token) *chatLogprobsOf {
	if o.logprobs < 0 {
		return nil
	}
	out := &chatLogprobsOf{Content: []chatTokenLogprob{}}
	for _, t := range tokens {
		e := chatTokenLogprob{Token: pieceString(t.Piece), Logprob: t.Logprob, Bytes: ints(t.Piece), TopLogprobs: []chatTopLogprob{}}
		for _, a := range t.Top {
			e.TopLogprobs = append(e.TopLogprobs, chatTopLogprob{pieceString(a.Piece), a.Logprob, ints(a.Piece)})
		}
		out.Content = append(out.Content, e)
	}
	return out
}

// completionLogprobs renders tokens' log-probabilities for completions.
func (o *response) completionLogprobs(c *choiceState, tokens []*pb.Token) *completionLogprobs {
	if o.logprobs < 0 {
		return nil
	}
	lp := &completionLogprobs{Tokens: []string{}, TokenLogprobs: []float32{}, TopLogprobs: []map[string]float32{}, TextOffset: []int{}}
	for _, t := range tokens {
		lp.Tokens = append(lp.Tokens, pieceString(t.Piece))
		lp.TokenLogprobs = append(lp.TokenLogprobs, t.Logprob)
		top := map[string]float32{}
		for _, a := range t.Top {
			top[pieceString(a.Piece)] = a.Logprob
		}
		lp.TopLogprobs = append(lp.TopLogprobs, top)
		lp.TextOffset = append(lp.TextOffset, c.offset)
		c.offset += len(t.Piece)
	}
	return lp
}

// shape turns flat routing (positions × layers × k) into nested lists:
// per position, per layer, the k experts chosen (best first); none for a
// dense layer.
func (o *response) shape(flat []uint32) [][][]uint32 {
	out := [][][]uint32{}
	if o.k == 0 || o.layers == 0 {
		return out
	}
	per := o.layers * o.k
	for p := 0; p+per <= len(flat); p += per {
		pos := make([][]uint32, o.layers)
		for l := range o.layers {
			pos[l] = flat[p+l*o.k : p+(l+1)*o.k]
			if !o.moeLayer(l) {
				pos[l] = []uint32{}
			}
		}
		out = append(out, pos)
	}
	return out
}

// whole is the answer of a request that did not stream.
func (o *response) whole() any {
	if o.kind == kindChat {
		out := chatCompletion{ID: o.id, Object: "chat.completion", Created: o.created, Model: o.model, Choices: []chatChoice{}, Usage: o.usage()}
		for _, i := range o.indexes() {
			c := o.choices[i]
			reply := assistantReply{Role: "assistant", ReasoningContent: c.reasoning.String(), ToolCalls: c.calls}
			if text := c.text.String(); text != "" || len(c.calls) == 0 {
				reply.Content = &text
			}
			out.Choices = append(out.Choices, chatChoice{Index: i, Message: reply, FinishReason: finishString(c.finish),
				Logprobs: o.chatLogprobs(c.tokens), tokenExtras: o.extras(c, c.tokens)})
		}
		return out
	}
	out := textCompletion{ID: o.id, Object: "text_completion", Created: o.created, Model: o.model, Choices: []textChoice{}, Usage: o.usage()}
	for _, i := range o.indexes() {
		c := o.choices[i]
		out.Choices = append(out.Choices, textChoice{Text: c.text.String(), Index: i, FinishReason: finishString(c.finish),
			Logprobs: o.completionLogprobs(c, c.tokens), tokenExtras: o.extras(c, c.tokens)})
	}
	return out
}

// chunk is the streamed chunk of one coordinator message.
func (o *response) chunk(m *pb.GenerateResponse) any {
	c, d := o.add(m)
	finish := finishString(m.FinishReason)
	if o.kind == kindChat {
		if !c.started {
			// The first chunk of a choice opens the reply, as OpenAI's do.
			d.Role = "assistant"
			if d.Content == nil {
				empty := ""
				d.Content = &empty
			}
		}
		c.started = true
		return chatChunk{ID: o.id, Object: "chat.completion.chunk", Created: o.created, Model: o.model,
			Choices: []chatChunkChoice{{Index: m.Index, Delta: d, FinishReason: finish, Logprobs: o.chatLogprobs(m.Tokens), tokenExtras: o.extras(c, m.Tokens)}}}
	}
	text := ""
	if d.Content != nil {
		text = *d.Content
	}
	return textCompletion{ID: o.id, Object: "text_completion", Created: o.created, Model: o.model,
		Choices: []textChoice{{Text: text, Index: m.Index, FinishReason: finish, Logprobs: o.completionLogprobs(c, m.Tokens), tokenExtras: o.extras(c, m.Tokens)}}}
}

// usageChunk is the last chunk of a stream with include_usage.
func (o *response) usageChunk() any {
	if o.kind == kindChat {
		return chatChunk{ID: o.id, Object: "chat.completion.chunk", Created: o.created, Model: o.model, Choices: []chatChunkChoice{}, Usage: o.usage()}
	}
	return textCompletion{ID: o.id, Object: "text_completion", Created: o.created, Model: o.model, Choices: []textChoice{}, Usage: o.usage()}
}
