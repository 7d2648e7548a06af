package jinja

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Template is a compiled Jinja template ready for rendering.
type Template struct {
	nodes []node
	src   string
}

// Compile parses a Jinja template source string and returns a compiled
// template that can be rendered multiple times with different data.
// Statements and expressions may nest at most MaxNesting levels deep.
func Compile(source string) (*Template, error) {
	segs, err := scan(source)
	if err != nil {
		return nil, fmt.Errorf("jinja scan: %w", err)
	}

	nodes, err := parseTemplate(segs)
	if err != nil {
		return nil, fmt.Errorf("jinja parse: %w", err)
	}

	return &Template{nodes: nodes, src: source}, nil
}

// Render executes the template with the provided data and returns the
// rendered string, under DefaultLimits. Each call creates an isolated
// scope so templates are safe to render concurrently after compilation.
func (t *Template) Render(data map[string]any) (string, error) {
	// Convert Go data to Value types.
	vals := make(map[string]Value, len(data))
	for k, v := range data {
		vals[k] = FromGoValue(v)
	}

	return render(t.nodes, vals, Options{})
}

// RenderValues is like Render but accepts pre-converted Value data.
func (t *Template) RenderValues(data map[string]Value) (string, error) {
	return render(t.nodes, data, Options{})
}

// RenderOptions renders pre-converted Value data under opts: its limits
// and its clock.
func (t *Template) RenderOptions(data map[string]Value, opts Options) (string, error) {
	return render(t.nodes, data, opts)
}

// =============================================================================
// The render budget
// =============================================================================

// Limits bound one render, so that a template from an untrusted source
// cannot hang or exhaust the process. A zero field means the field of
// DefaultLimits.
type Limits struct {
	// Steps bounds the work: statements executed, expressions evaluated,
	// and the items of the lists handed to filters and functions.
	Steps int64
	// Bytes bounds the bytes of text and lists the render builds, all
	// together: the output, the text of macro calls and set blocks, every
	// string an operator or filter makes, and 24 bytes for each list item.
	Bytes int64
	// Depth bounds how deeply macro calls (and caller() blocks) nest.
	Depth int
}

// DefaultLimits are far above what released chat templates need (1,024
// messages with tool calls through gpt-oss's template, the costliest,
// take 2.5 million steps and build about 100 kB; none nests macro calls
// more than a few deep), and low enough that a hostile template is
// stopped within a few seconds and tens of megabytes.
var DefaultLimits = Limits{Steps: 30_000_000, Bytes: 64 << 20, Depth: 200}

// Limits a template cannot raise, checked at Compile and in the
// interpreter's own recursion over values.
const (
	// MaxNesting bounds how deeply a template's statements and
	// expressions nest in its source.
	MaxNesting = 128
	// MaxValueDepth bounds how deeply a value (lists in lists, dicts in
	// dicts) is walked when printed, compared or encoded as JSON; a list
	// that holds itself is one that would be walked for ever.
	MaxValueDepth = 512
)

// ErrLimit is wrapped by every LimitError.
var ErrLimit = errors.New("template exceeded its render budget")

// LimitError reports a render stopped by a limit.
type LimitError struct {
	// Limit names it: "steps", "bytes", "depth" (Limits), or "value
	// depth" (MaxValueDepth).
	Limit string
	Max   int64
}

func (e *LimitError) Error() string {
	switch e.Limit {
	case "steps":
		return fmt.Sprintf("the template ran past its limit of %d steps", e.Max)
	case "bytes":
		return fmt.Sprintf("the template built more than its limit of %d bytes", e.Max)
	case "depth":
		return fmt.Sprintf("the template nested macro calls past its limit of %d", e.Max)
	}
	return fmt.Sprintf("the template built a value nested past the limit of %d levels", e.Max)
}

// Unwrap makes errors.Is(err, ErrLimit) true.
func (e *LimitError) Unwrap() error { return ErrLimit }

// Options of one render.
type Options struct {
	Limits Limits
	// Now is the time strftime_now formats; the zero value means the time
	// of the call.
	Now time.Time
}

// run is the state one render shares between its evaluators (the
// template's, and those of its macro calls and blocks).
type run struct {
	lim          Limits
	steps, bytes int64
	depth        int
	now          time.Time
}

func newRun(opts Options) *run {
	lim := opts.Limits
	if lim.Steps <= 0 {
		lim.Steps = DefaultLimits.Steps
	}
	if lim.Bytes <= 0 {
		lim.Bytes = DefaultLimits.Bytes
	}
	if lim.Depth <= 0 {
		lim.Depth = DefaultLimits.Depth
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	return &run{lim: lim, now: now}
}

// step charges n steps.
func (r *run) step(n int64) error {
	r.steps += n
	if r.steps > r.lim.Steps {
		return &LimitError{Limit: "steps", Max: r.lim.Steps}
	}
	return nil
}

// grow charges n bytes, before they are built where their size is known
// up front.
func (r *run) grow(n int64) error {
	if n < 0 || r.bytes+n > r.lim.Bytes {
		return &LimitError{Limit: "bytes", Max: r.lim.Bytes}
	}
	r.bytes += n
	return nil
}

// growValue charges what v holds: its bytes if a string, 24 bytes an
// item if a list.
func (r *run) growValue(v Value) error {
	switch v.kind {
	case KindString:
		return r.grow(int64(len(v.AsString())))
	case KindList:
		return r.grow(listBytes(v.AsList().Len()))
	}
	return nil
}

// listBytes is what a list of n items is charged.
func listBytes(n int) int64 { return 24 * int64(n) }

// enter records a macro or caller() call; leave undoes it.
func (r *run) enter() error {
	r.depth++
	if r.depth > r.lim.Depth {
		return &LimitError{Limit: "depth", Max: int64(r.lim.Depth)}
	}
	return nil
}

func (r *run) leave() { r.depth-- }

// =============================================================================

// render executes the AST with the given data and returns the result. A
// panic inside (a LimitError raised where no error can be returned, or
// a fault of the interpreter on odd input) becomes the error: a template
// must not take the process down.
func render(nodes []node, data map[string]Value, opts Options) (out string, err error) {
	e := evaluator{
		output: strings.Builder{},
		r:      newRun(opts),
	}

	defer func() {
		if p := recover(); p != nil {
			if le, ok := p.(*LimitError); ok {
				out, err = "", le
				return
			}
			out, err = "", fmt.Errorf("the template interpreter failed: %v", p)
		}
	}()

	// Use the cached builtins scope directly. The scope is initialized
	// once at package init and is only read after that (lookupFilter,
	// chained get() through parent links, passed to nested evaluators).
	// No code path writes to e.builtins, so sharing the cached scope
	// across renders is safe and avoids cloning ~20 entries per render.
	e.builtins = cachedBuiltins

	// Create user data scope on top of builtins.
	e.scope = newScope(e.builtins)
	for k, v := range data {
		e.scope.set(k, v)
	}

	if err := e.execNodes(nodes); err != nil {
		return "", err
	}

	return e.output.String(), nil
}
