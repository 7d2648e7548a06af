package jinja_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-llm/switchyard/internal/jinja"
)

// hostile are templates that would hang the process, exhaust its memory
// or overflow its stack without a budget; each must stop with the named
// limit.
var hostile = []struct {
	name, src, limit string
}{
	{"nested loops", `{% set r = range(100000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}`, "steps"},
	{"long loop writing", `{% set r = range(100000) %}{% for i in r %}{% for j in r %}{% if j % 1000 == 0 %}x{% endif %}{% endfor %}{% endfor %}`, "steps"},
	{"range of 1e9", `{% for i in range(1000000000) %}{% endfor %}`, "bytes"},
	{"string repeated 1e9 times", `{{ "x" * 1000000000 }}`, "bytes"},
	{"string doubled", `{% set ns = namespace(s="ab") %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}`, "bytes"},
	{"list doubled", `{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}`, "bytes"},
	{"replace blow-up", `{{ ("a" * 100000) | replace("a", "a" * 100000) }}`, "bytes"},
	{"replace method blow-up", `{{ ("a" * 100000).replace("a", "a" * 100000) }}`, "bytes"},
	{"join with a huge separator", `{{ range(100000) | join("x" * 100000) }}`, "bytes"},
	{"indent blow-up", `{{ ("a\n" * 100000) | indent(100000) }}`, "bytes"},
	{"split into runes", `{{ ("x" * 10000000).split("") | length }}`, "bytes"},
	{"appending for ever", `{% set l = [] %}{% for i in range(100000000) %}{% set _ = l.append(i) %}{% endfor %}`, "bytes"},
	{"macro recursion", `{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}`, "depth"},
	{"mutual recursion", `{% macro a(n) %}{{ b(n) }}{% endmacro %}{% macro b(n) %}{{ a(n) }}{% endmacro %}{{ a(0) }}`, "depth"},
	{"caller recursion", `{% macro f() %}{% call f() %}{% endcall %}{% endmacro %}{{ f() }}`, "depth"},
	{"list holding itself, printed", `{% set l = [] %}{% set _ = l.append(l) %}{{ l }}`, "value depth"},
	{"list holding itself, compared", `{% set l = [] %}{% set _ = l.append(l) %}{{ l == l }}`, "value depth"},
	{"list holding itself, as JSON", `{% set l = [] %}{% set _ = l.append(l) %}{{ l | tojson }}`, "value depth"},
	{"list holding itself, searched", `{% set l = [] %}{% set _ = l.append(l) %}{{ l in l }}`, "value depth"},
	{"shared halves printed", `{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l }}`, "bytes"},
	{"shared halves compared", `{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l == ns.l }}`, "steps"},
}

func TestHostileTemplates(t *testing.T) {
	// A tenth of the defaults, to be quick; TestLimitsAreExact shows
	// each limit is the one given.
	limits := jinja.Limits{Steps: jinja.DefaultLimits.Steps / 10, Bytes: jinja.DefaultLimits.Bytes / 10, Depth: jinja.DefaultLimits.Depth / 10}
	for _, c := range hostile {
		t.Run(c.name, func(t *testing.T) {
			tmpl, err := jinja.Compile(c.src)
			if err != nil {
				t.Fatal(err)
			}
			out, err := tmpl.RenderOptions(nil, jinja.Options{Limits: limits})
			var le *jinja.LimitError
			if !errors.As(err, &le) || !errors.Is(err, jinja.ErrLimit) {
				t.Fatalf("got %q, %v; want a LimitError", trunc(out), err)
			}
			if le.Limit != c.limit {
				t.Errorf("stopped by the %s limit (%v), want %s", le.Limit, err, c.limit)
			}
		})
	}
}

func trunc(s string) string { return s[:min(len(s), 80)] }

// TestLimitsAreExact checks each limit at its edge: what fits renders, one
// more fails, and the message names the limit and its value.
func TestLimitsAreExact(t *testing.T) {
	cases := []struct {
		name     string
		src      string
		limits   jinja.Limits
		ok, fail map[string]jinja.Value
		msg      string
	}{
		{
			name: "depth", limits: jinja.Limits{Depth: 10},
			src: `{% macro f(n) %}{% if n > 1 %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(n) }}`,
			ok:  map[string]jinja.Value{"n": jinja.NewInt(10)}, fail: map[string]jinja.Value{"n": jinja.NewInt(11)},
			msg: "the template nested macro calls past its limit of 10",
		},
		{
			name: "bytes", limits: jinja.Limits{Bytes: 1000},
			src: `{{ "x" * n }}`,
			ok:  map[string]jinja.Value{"n": jinja.NewInt(500)}, fail: map[string]jinja.Value{"n": jinja.NewInt(501)},
			// 500 bytes built by *, then 500 written: 1000 in all.
			msg: "the template built more than its limit of 1000 bytes",
		},
		{
			// A for statement and its iterable are 2 steps, then each
			// item an iteration (4), an output statement and its
			// expression: 2 + 6n.
			name: "steps", limits: jinja.Limits{Steps: 62},
			src: `{% for i in l %}{{ i }}{% endfor %}`,
			ok:  map[string]jinja.Value{"l": list(10)}, fail: map[string]jinja.Value{"l": list(11)},
			msg: "the template ran past its limit of 62 steps",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmpl, err := jinja.Compile(c.src)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tmpl.RenderOptions(c.ok, jinja.Options{Limits: c.limits}); err != nil {
				t.Errorf("within the limit: %v", err)
			}
			_, err = tmpl.RenderOptions(c.fail, jinja.Options{Limits: c.limits})
			if err == nil || err.Error() != c.msg {
				t.Errorf("past the limit: got %v, want %q", err, c.msg)
			}
		})
	}
}

func list(n int) jinja.Value {
	items := make([]jinja.Value, n)
	for i := range items {
		items[i] = jinja.NewInt(int64(i))
	}
	return jinja.NewList(items)
}

// TestNestingRefusedAtCompile: nesting in the source is bounded before
// anything runs, since the parser and the interpreter recurse per level.
func TestNestingRefusedAtCompile(t *testing.T) {
	deep := func(open, mid, close string, n int) string {
		return strings.Repeat(open, n) + mid + strings.Repeat(close, n)
	}
	ok := []string{
		"{{ " + deep("(", "1", ")", jinja.MaxNesting/2) + " }}",
		deep("{% if x %}", "y", "{% endif %}", jinja.MaxNesting-1),
	}
	for _, src := range ok {
		if _, err := jinja.Compile(src); err != nil {
			t.Errorf("%.40s…: %v", src, err)
		}
	}
	refused := []string{
		"{{ " + deep("(", "1", ")", 100000) + " }}",
		"{{ " + deep("[", "1", "]", 100000) + " }}",
		"{{ " + strings.Repeat("not ", 100000) + "x }}",
		"{{ " + strings.Repeat("-", 100000) + "1 }}",
		deep("{% if x %}", "y", "{% endif %}", 100000),
		deep("{% for x in y %}", "y", "{% endfor %}", 100000),
	}
	for _, src := range refused {
		_, err := jinja.Compile(src)
		if err == nil || !strings.Contains(err.Error(), "deeper than 128 levels") {
			t.Errorf("%.40s…: got %v, want the nesting limit", src, err)
		}
	}
}

// TestClock: strftime_now formats Options.Now.
func TestClock(t *testing.T) {
	tmpl, err := jinja.Compile(`{{ strftime_now("%Y-%m-%d") }} {{ strftime_now("%d %b %Y") }}`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.RenderOptions(nil, jinja.Options{Now: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)})
	if want := "2026-01-02 02 Jan 2026"; got != want || err != nil {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
}

// TestJSONAsPython: tojson and fromjson behave as the tojson transformers
// installs (json.dumps with ensure_ascii=False) and json.loads. The wanted
// strings are Python 3's output for the same value.
func TestJSONAsPython(t *testing.T) {
	v, err := jinja.ParseJSON([]byte(`{"b": 1, "a": [1.0, 2.5, 1e16, 1e-5, 3], "c": "<tag> & \"q\" \u2028 \u0001 é", "d": {}, "e": []}`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ src, want string }{
		{`{{ v | tojson }}`, "{\"b\": 1, \"a\": [1.0, 2.5, 1e+16, 1e-05, 3], \"c\": \"<tag> & \\\"q\\\" \u2028 \\u0001 é\", \"d\": {}, \"e\": []}"},
		{`{{ v | tojson(indent=2) }}`, "{\n  \"b\": 1,\n  \"a\": [\n    1.0,\n    2.5,\n    1e+16,\n    1e-05,\n    3\n  ],\n  \"c\": \"<tag> & \\\"q\\\" \u2028 \\u0001 é\",\n  \"d\": {},\n  \"e\": []\n}"},
		{`{{ v | tojson(separators=(",", ":")) }}`, "{\"b\":1,\"a\":[1.0,2.5,1e+16,1e-05,3],\"c\":\"<tag> & \\\"q\\\" \u2028 \\u0001 é\",\"d\":{},\"e\":[]}"},
		{`{{ v.a[0] }} {{ v.a[4] }} {{ (v | tojson | fromjson).b + 1 }}`, "1.0 3 2"},
	}
	for _, c := range cases {
		tmpl, err := jinja.Compile(c.src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tmpl.RenderValues(map[string]jinja.Value{"v": v})
		if got != c.want || err != nil {
			t.Errorf("%s:\ngot  %q, %v\nwant %q", c.src, got, err, c.want)
		}
	}
	for _, bad := range []string{`{"a": 1} 2`, `{"a": `, strings.Repeat("[", jinja.MaxValueDepth+2) + strings.Repeat("]", jinja.MaxValueDepth+2)} {
		if _, err := jinja.ParseJSON([]byte(bad)); err == nil {
			t.Errorf("ParseJSON(%.20q…) = nil error", bad)
		}
	}
}

// FuzzRender compiles and renders any source under a small budget: it
// must return, with an output or an error, and never panic or overflow
// the stack. Seeded with upstream's released templates and the hostile
// ones.
func FuzzRender(f *testing.F) {
	files, _ := filepath.Glob("testdata/templates/*.jinja")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	for _, c := range hostile {
		f.Add(c.src)
	}
	data := map[string]jinja.Value{"messages": jinja.FromGoValue([]any{
		map[string]any{"role": "system", "content": "Be brief."},
		map[string]any{"role": "user", "content": "Hi"},
	}), "add_generation_prompt": jinja.NewBool(true)}
	limits := jinja.Limits{Steps: 200_000, Bytes: 1 << 20, Depth: 50}
	f.Fuzz(func(t *testing.T, src string) {
		tmpl, err := jinja.Compile(src)
		if err != nil {
			return
		}
		out, err := tmpl.RenderOptions(data, jinja.Options{Limits: limits})
		if err == nil && int64(len(out)) > limits.Bytes {
			t.Errorf("rendered %d bytes past the limit of %d", len(out), limits.Bytes)
		}
	})
}
