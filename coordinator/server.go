package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard-llm/switchyard/pkg/chat"
	"github.com/switchyard-llm/switchyard/pkg/sampling"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// Limits on one request.
const (
	maxStops    = 16
	maxStopLen  = 1 << 10
	maxMessages = 1 << 10
	maxTools    = 128
	// maxChoices is OpenAI's limit on n.
	maxChoices = 128
	// maxTemplateVars bounds chat_template_kwargs.
	maxTemplateVars = 64
)

func invalid(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, format, a...)
}

// Conversation is the chat request's conversation as the chat template
// renders it: its messages (text parts joined), tools, and template
// variables (reasoning_effort, enable_thinking, then chat_template_kwargs,
// which win over the two). `switchyard model chat-template` renders
// through it, so it prints what the coordinator renders.
func Conversation(req *pb.GenerateRequest) (chat.Conversation, error) {
	conv := chat.Conversation{AddGenerationPrompt: true}
	if len(req.Messages) > maxMessages {
		return conv, invalid("%d messages (limit %d)", len(req.Messages), maxMessages)
	}
	if len(req.Tools) > maxTools {
		return conv, invalid("%d tools (limit %d)", len(req.Tools), maxTools)
	}
	if len(req.ChatTemplateKwargs) > maxTemplateVars {
		return conv, invalid("%d chat_template_kwargs (limit %d)", len(req.ChatTemplateKwargs), maxTemplateVars)
	}
	for _, m := range req.Messages {
		parts := make([]string, len(m.Parts))
		for i, p := range m.Parts {
			parts[i] = p.GetText()
		}
		msg := chat.Message{Role: m.Role, Content: chat.JoinParts(parts), NoContent: m.ContentNull, Name: m.Name,
			ToolCallID: m.ToolCallId, Reasoning: m.ReasoningContent}
		for _, tc := range m.ToolCalls {
			msg.ToolCalls = append(msg.ToolCalls, chat.ToolCall{ID: tc.Id, Name: tc.Name, Arguments: tc.Arguments})
		}
		conv.Messages = append(conv.Messages, msg)
	}
	names := map[string]bool{}
	for _, t := range req.Tools {
		if t.Name == "" {
			return conv, invalid("a tool has no name")
		}
		tool := chat.Tool{Name: t.Name, Description: t.Description}
		if t.Parameters != "" {
			tool.Parameters = json.RawMessage(t.Parameters)
		}
		conv.Tools, names[t.Name] = append(conv.Tools, tool), true
	}
	if req.ToolChoice == pb.ToolChoice_TOOL_CHOICE_FUNCTION && !names[req.ToolChoiceFunction] {
		return conv, invalid("tool_choice names the function %q, which is not among the tools", req.ToolChoiceFunction)
	}
	conv.Vars = map[string]json.RawMessage{}
	if req.ReasoningEffort != "" {
		conv.Vars["reasoning_effort"], _ = json.Marshal(req.ReasoningEffort)
	}
	if req.EnableThinking != nil {
		conv.Vars["enable_thinking"], _ = json.Marshal(*req.EnableThinking)
	}
	for k, v := range req.ChatTemplateKwargs {
		conv.Vars[k] = json.RawMessage(v)
	}
	return conv, nil
}

// admitted is a validated, tokenized request: one genRequest per choice
// to generate (the ones a resume leaves), to submit in order (a choice
// that forks the others carries them in forks instead).
type admitted struct {
	choices   []*genRequest
	index     []uint32 // each choice's index
	submit    []*genRequest
	promptLen int
	template  string
	parse     replyParsing
}

// admit validates and tokenizes a request.
func (c *Coordinator) admit(ctx context.Context, req *pb.GenerateRequest) (*admitted, error) {
	var prompt []int32
	a := &admitted{}
	n := 0
	for _, set := range []bool{req.Prompt != "", len(req.PromptTokens) > 0, len(req.Messages) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, invalid("give exactly one of prompt, prompt_tokens and messages")
	}
	what := "prompt"
	switch {
	case req.Prompt != "":
		prompt = c.tok.Encode(req.Prompt, true, false)
	case len(req.PromptTokens) > 0:
		for i, t := range req.PromptTokens {
			if t < 0 || int(t) >= c.model.Vocab {
				return nil, invalid("prompt token %d at position %d is outside the vocabulary of %d", t, i, c.model.Vocab)
			}
		}
		prompt = req.PromptTokens
	default:
		if c.tmpl == nil {
			return nil, status.Error(codes.FailedPrecondition, chat.ErrNoTemplate.Error())
		}
		conv, err := Conversation(req)
		if err != nil {
			return nil, err
		}
		text, err := c.tmpl.Render(conv)
		if errors.Is(err, chat.ErrLimit) {
			c.log.Warn("the chat template ran past its budget; request refused", "request", req.RequestId, "err", err)
		}
		if err != nil {
			return nil, invalid("%v", err)
		}
		prompt = c.tok.Encode(text, true, true)
		if len(prompt) > 1 && prompt[0] == c.tok.BOS && prompt[1] == c.tok.BOS {
			prompt = prompt[1:] // the template wrote BOS itself
		}
		a.template, what = c.tmpl.Name, "messages"
		a.parse = c.parsing(req, text)
	}
	if len(prompt) == 0 {
		return nil, invalid("the prompt is empty")
	}
	a.promptLen = len(prompt)
	ctxLen := c.model.Context
	if len(prompt) >= ctxLen {
		return nil, invalid("the prompt is %d tokens; it must be shorter than the context of %d tokens", len(prompt), ctxLen)
	}
	if req.MaxTokens > 0 && len(prompt)+int(req.MaxTokens) > ctxLen {
		// OpenAI's words.
		return nil, invalid("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the %s, %d in the completion). Please reduce the length of the %s or completion.",
			ctxLen, len(prompt)+int(req.MaxTokens), len(prompt), what, req.MaxTokens, what)
	}
	if len(req.Stop) > maxStops {
		return nil, invalid("%d stop strings (limit %d)", len(req.Stop), maxStops)
	}
	for _, s := range req.Stop {
		if len(s) > maxStopLen {
			return nil, invalid("stop string of %d bytes (limit %d)", len(s), maxStopLen)
		}
	}
	choices := max(1, int(req.N))
	if choices > maxChoices {
		return nil, invalid("n = %d (limit %d)", choices, maxChoices)
	}
	constrained, err := c.constraintOf(req)
	if err != nil {
		return nil, err
	}
	// The choices to generate: all, or those a resume names, each after
	// the tokens it had.
	resumed := map[uint32][]int32{}
	for _, rc := range req.Resumed {
		if int(rc.Index) >= choices {
			return nil, invalid("resumed choice %d of %d", rc.Index, choices)
		}
		if _, dup := resumed[rc.Index]; dup {
			return nil, invalid("choice %d resumed twice", rc.Index)
		}
		for i, t := range rc.Tokens {
			if t < 0 || int(t) >= c.model.Vocab {
				return nil, invalid("resume token %d at %d is outside the vocabulary of %d", t, i, c.model.Vocab)
			}
		}
		resumed[rc.Index] = rc.Tokens
		a.index = append(a.index, rc.Index)
	}
	if len(req.Resumed) == 0 {
		for i := range choices {
			a.index = append(a.index, uint32(i))
		}
	}
	for _, i := range a.index {
		r, err := c.choice(ctx, req, prompt, resumed[i], i)
		if err != nil {
			return nil, err
		}
		if constrained != nil {
			if r.constraint, err = newConstraint(constrained, c.grammars.vocabOf(c.tok, c.model.Vocab), resumed[i]); err != nil {
				return nil, err
			}
		}
		r.parse = a.parse
		a.choices = append(a.choices, r)
	}
	if len(req.Resumed) == 0 {
		// Fresh choices share one prefill: the first computes the prompt,
		// the others fork it.
		a.choices[0].forks = a.choices[1:]
		a.submit = a.choices[:1]
	} else {
		a.submit = a.choices
	}
	return a, nil
}

// choice makes the genRequest of choice i: the prompt and the tokens it
// had (resume), and its sampler.
func (c *Coordinator) choice(ctx context.Context, req *pb.GenerateRequest, prompt, resume []int32, i uint32) (*genRequest, error) {
	sp := req.Sampling
	if sp == nil {
		sp = &pb.SamplingParams{}
	}
	p := sampling.Params{Temperature: sp.Temperature, TopK: int(sp.TopK), TopP: sp.TopP, MinP: sp.MinP,
		RepeatPenalty: sp.RepetitionPenalty, PresencePenalty: sp.PresencePenalty, FrequencyPenalty: sp.FrequencyPenalty,
		PenaltyLastN: 64, Seed: sp.Seed + uint64(i)*0x9E3779B97F4A7C15, Logprobs: int(req.TopLogprobs), TokenLogprob: req.Logprobs}
	if p.TopP == 0 {
		p.TopP = 1
	}
	if p.RepeatPenalty == 0 {
		p.RepeatPenalty = 1
	}
	if len(sp.LogitBias) > 0 {
		p.LogitBias = map[int32]float32{}
		for t, b := range sp.LogitBias {
			p.LogitBias[t] = b
		}
	}
	s, err := sampling.New(p, c.model.Vocab)
	if err != nil {
		return nil, invalid("%v", err)
	}
	full := append(slices.Clone(prompt), resume...)
	ctxLen := c.model.Context
	if len(full) >= ctxLen {
		return nil, invalid("choice %d resumed at %d tokens: nothing is left of the context of %d", i, len(full), ctxLen)
	}
	for _, t := range full {
		s.Accept(t)
	}
	s.Skip(len(resume))
	maxTokens, reserve := ctxLen-len(full), 0
	if req.MaxTokens > 0 {
		left := int(req.MaxTokens) - len(resume)
		if left < 1 {
			return nil, invalid("choice %d resumed with %d tokens, max_tokens %d: nothing is left to generate", i, len(resume), req.MaxTokens)
		}
		maxTokens = min(maxTokens, left)
		reserve = len(full) + maxTokens
	}
	return &genRequest{ctx: ctx, prompt: full, promptLen: len(prompt), resumed: resume, sampler: s,
		topLogprobs: int(req.TopLogprobs), maxTokens: maxTokens, reserve: reserve, stop: req.Stop, routing: req.ReturnRouting, noCache: req.NoPromptCache,
		events: newEventQueue()}, nil
}

// choiceEvent is an event of one choice, as the choices' streams merge.
type choiceEvent struct {
	index uint32
	genEvent
	last bool // its stream ended after it
}

// Generate streams the completions of one request: each message carries
// its choice's index.
func (c *Coordinator) Generate(req *pb.GenerateRequest, stream pb.CoordinatorService_GenerateServer) error {
	ctx := stream.Context()
	a, err := c.admit(ctx, req)
	if err != nil {
		return err
	}
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	c.metrics.inFlight.Inc()
	defer c.metrics.inFlight.Dec()
	c.requests.Add(1)
	c.promptTokens.Add(int64(a.promptLen))
	c.metrics.tokens.WithLabelValues("prompt").Add(float64(a.promptLen))
	for _, r := range a.submit {
		select {
		case c.sched.submit <- r:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	// The choices' events, merged. Each forwarder ends with its choice,
	// or with the RPC (the scheduler then fails the choice, never waiting
	// on its events).
	merged := make(chan choiceEvent)
	for k, r := range a.choices {
		go func() {
			for {
				ev, ok := r.events.pop(ctx)
				if !ok {
					break
				}
				select {
				case merged <- choiceEvent{index: a.index[k], genEvent: ev}:
				case <-ctx.Done():
					return
				}
			}
			select {
			case merged <- choiceEvent{index: a.index[k], last: true}:
			case <-ctx.Done():
			}
		}()
	}
	usage := map[uint32]*pb.Usage{}
	seen := map[uint32]bool{} // choices whose first message went
	first := true
	for open := len(a.choices); open > 0; {
		var ev choiceEvent
		select {
		case ev = <-merged:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
		if ev.last {
			open--
			continue
		}
		u := usage[ev.index]
		if u == nil {
			u = &pb.Usage{PromptTokens: uint32(a.promptLen)}
			usage[ev.index] = u
		}
		u.CachedTokens = max(u.CachedTokens, uint32(ev.cached))
		if ev.err != nil {
			if errors.Is(ev.err, errUnavailable) || errors.Is(ev.err, errQueueTimeout) {
				return status.Error(codes.Unavailable, ev.err.Error())
			}
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			if errors.Is(ev.err, errTooLarge) {
				return status.Error(codes.OutOfRange, ev.err.Error())
			}
			return status.Errorf(codes.Internal, "generate: %v", ev.err)
		}
		msg := &pb.GenerateResponse{Index: ev.index, FinishReason: ev.finish}
		msg.Deltas = ev.deltas
		if first {
			msg.ChatTemplate, first = a.template, false
		}
		if !seen[ev.index] {
			msg.PromptUsage, seen[ev.index] = &pb.Usage{PromptTokens: u.PromptTokens, CachedTokens: u.CachedTokens}, true
		}
		if ev.sampled {
			u.CompletionTokens++
			c.generated.Add(1)
			t := &pb.Token{Id: ev.token.Token, Logprob: ev.token.Logprob, Piece: c.tok.Piece(ev.token.Token)}
			for _, a := range ev.token.Top {
				t.Top = append(t.Top, &pb.TokenLogprob{Token: a.Token, Logprob: a.Logprob, Piece: c.tok.Piece(a.Token)})
			}
			t.Routing = toU32(ev.routing)
			msg.Tokens = []*pb.Token{t}
		}
		if ev.promptRouting != nil {
			msg.PromptRouting, msg.ExpertsPerToken = toU32(ev.promptRouting), uint32(c.model.ExpertsUsed)
		}
		if ev.finish != pb.FinishReason_FINISH_REASON_UNSPECIFIED {
			if ev.eos {
				u.CompletionTokens++ // the end-of-sequence token counts as generated
			}
			msg.Usage, msg.StopSequence = u, ev.stopSequence
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

func toU32(x []int32) []uint32 {
	if x == nil {
		return nil
	}
	out := make([]uint32, len(x))
	for i, v := range x {
		out[i] = uint32(v)
	}
	return out
}

// Stats reports load, counters and the routing counts of a window.
func (c *Coordinator) Stats(ctx context.Context, req *pb.StatsRequest) (*pb.StatsResponse, error) {
	if req.WindowSeconds > 300 {
		return nil, invalid("window of %d s: at most 300 (or 0 for since start)", req.WindowSeconds)
	}
	r := &pb.StatsResponse{CoordinatorId: c.cfg.ID, InFlight: uint32(c.inFlight.Load()), RequestsTotal: uint64(c.requests.Load()),
		TokensGeneratedTotal: uint64(c.generated.Load()), PromptTokensTotal: uint64(c.promptTokens.Load()),
		UptimeSeconds: time.Since(c.stats.Since()).Seconds()}
	r.SetCounts(c.stats.Window(time.Duration(req.WindowSeconds) * time.Second))
	if st := c.sched.stats.Load(); st != nil {
		r.KvCache = &pb.KVCacheStats{BlocksTotal: uint64(st.Blocks), BlocksUsed: uint64(st.Used), BlocksCached: uint64(st.Cached),
			BlockBytes: uint64(c.model.KV.BlockBytes()), PrefixLookupTokens: uint64(st.Lookups), PrefixHitTokens: uint64(st.Hits),
			Evictions: uint64(st.Evictions), Queue: uint32(st.Queue), Preemptions: uint64(st.Preemptions)}
	}
	for _, p := range c.stats.Series() {
		r.Series = append(r.Series, &pb.SeriesPoint{Unix: p.Unix, Generated: p.Generated})
	}
	return r, nil
}
