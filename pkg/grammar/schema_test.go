package grammar

import (
	"errors"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// validator compiles schema with an independent JSON Schema implementation
// (santhosh-tekuri/jsonschema, draft 2020-12, formats asserted).
func validator(t testing.TB, schema string) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatalf("schema %s: %v", schema, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("mem://schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("mem://schema.json")
	if err != nil {
		t.Fatalf("schema %s: %v", schema, err)
	}
	return sch
}

// validates reports whether instance is JSON that sch allows.
func validates(sch *jsonschema.Schema, instance string) error {
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(instance))
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

// keywordCases hold, for every supported keyword, instances the grammar
// must write (valid), instances no valid output may be (invalid: the
// validator must reject them too), and instances the schema allows that
// the grammar leaves out by policy (subset: key order, extra properties,
// whitespace, number forms).
var keywordCases = []struct {
	name, schema           string
	valid, invalid, subset []string
}{
	{"type string", `{"type":"string"}`,
		[]string{`""`, `"abc"`, `"a\"b\\c\n\u00e9\/"`, `"日本語 😀"`}, []string{`1`, `"a`, `"\x"`, "\"a\x01\""}, []string{`"\ud800"`}},
	{"type integer", `{"type":"integer"}`,
		[]string{`0`, `-0`, `42`, `-1234567890123456`}, []string{`1.5`, `"1"`, `01`, `+1`, `true`}, []string{`1.0`, `1e3`}},
	{"type number", `{"type":"number"}`,
		[]string{`0`, `-1.5`, `3.25e10`, `1E-3`, `0.0001`}, []string{`.5`, `1.`, `-`, `1e`, `NaN`, `"1"`}, []string{`1.12345678901234567`}},
	{"type boolean", `{"type":"boolean"}`, []string{`true`, `false`}, []string{`0`, `"true"`, `null`, `True`}, nil},
	{"type null", `{"type":"null"}`, []string{`null`}, []string{`0`, `"null"`, `false`}, nil},
	{"type list", `{"type":["string","null"]}`, []string{`"x"`, `null`}, []string{`1`, `true`}, nil},
	{"type list number and integer", `{"type":["integer","number"]}`, []string{`1`, `1.5`}, []string{`"1"`}, nil},
	{"enum", `{"enum":["red","green",1,null,{"a":[1,2]}]}`,
		[]string{`"red"`, `"green"`, `1`, `null`, `{"a":[1,2]}`}, []string{`"blue"`, `2`, `{"a":[1]}`}, []string{`{"a": [1, 2]}`}},
	{"enum narrowed by type", `{"type":"string","enum":["a",1,"b"]}`, []string{`"a"`, `"b"`}, []string{`1`}, nil},
	{"enum narrowed by maxLength", `{"type":"string","maxLength":1,"enum":["a","bb"]}`, []string{`"a"`}, []string{`"bb"`}, nil},
	{"const", `{"const":"fixed"}`, []string{`"fixed"`}, []string{`"other"`, `null`}, nil},
	{"const with escapes", `{"const":"a\"b</c>\u2028"}`, []string{`"a\"b</c>\u2028"`}, []string{`"a\"b</c>"`}, nil},
	{"object required and optional", `{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}}},"required":["name","age"],"additionalProperties":false}`,
		[]string{`{"name":"Ada","age":36}`, `{"name":"Ada","age":36,"tags":[]}`, `{"name":"Ada","age":36,"tags":["x","y"]}`, `{ "name": "Ada", "age": 36 }`},
		[]string{`{"name":"Ada"}`, `{"age":36}`, `{"name":"Ada","age":"36"}`, `{"name":"Ada","age":36,"x":1}`, `{"name":"Ada","age":36,"tags":[1]}`},
		[]string{`{"age":36,"name":"Ada"}`, "{\n  \"name\": \"Ada\",\n  \"age\": 36\n}"}},
	{"object all optional", `{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"},"c":{"type":"integer"}},"additionalProperties":false}`,
		[]string{`{}`, `{"a":1}`, `{"b":2}`, `{"c":3}`, `{"a":1,"c":3}`, `{"a":1,"b":2,"c":3}`}, []string{`{"d":1}`, `{"a":"1"}`}, []string{`{"c":3,"a":1}`, `{"a":1,"a":1}`}},
	{"required beyond properties", `{"type":"object","properties":{"a":{"type":"integer"}},"required":["a","b"]}`,
		[]string{`{"a":1,"b":"anything"}`, `{"a":1,"b":[1,{"x":null}]}`}, []string{`{"a":1}`, `{"b":1}`}, []string{`{"a":1,"b":2,"c":3}`}},
	{"additionalProperties absent", `{"type":"object","properties":{"a":{"type":"boolean"}}}`, []string{`{}`, `{"a":true}`}, []string{`{"a":1}`}, []string{`{"a":true,"z":1}`}},
	{"additionalProperties true", `{"type":"object","properties":{"a":{"type":"boolean"}},"additionalProperties":true}`, []string{`{"a":true}`}, []string{`{"a":1}`}, []string{`{"z":1}`}},
	{"additionalProperties false alone", `{"type":"object","additionalProperties":false}`, []string{`{}`, `{ }`}, []string{`{"a":1}`}, nil},
	{"additionalProperties schema alone", `{"type":"object","additionalProperties":{"type":"integer"}}`,
		[]string{`{}`, `{"x":1,"y":-2}`, `{"":0}`}, []string{`{"x":"1"}`}, nil},
	{"any object", `{"type":"object"}`, []string{`{}`, `{"a":[1,{"b":null}],"c":"d"}`}, []string{`[]`, `{"a"}`, `{"a":1,}`}, nil},
	{"array", `{"type":"array","items":{"type":"integer"}}`, []string{`[]`, `[1]`, `[1,2,3]`, `[ 1, 2 ]`}, []string{`[1,]`, `["1"]`, `[,]`}, nil},
	{"array bounds", `{"type":"array","items":{"type":"boolean"},"minItems":2,"maxItems":3}`,
		[]string{`[true,false]`, `[true,true,true]`}, []string{`[]`, `[true]`, `[true,true,true,true]`}, nil},
	{"array minItems", `{"type":"array","minItems":1}`, []string{`[1]`, `["a",null,{}]`}, []string{`[]`}, nil},
	{"array items false", `{"type":"array","items":false}`, []string{`[]`}, []string{`[1]`}, nil},
	{"array of any", `{"type":"array"}`, []string{`[]`, `[1,"a",[],{}]`}, []string{`{}`}, nil},
	{"string length", `{"type":"string","minLength":2,"maxLength":3}`,
		[]string{`"ab"`, `"abc"`, `"日本"`, `"\n\u0041"`}, []string{`"a"`, `"abcd"`, `""`}, nil},
	{"pattern anchored", `{"type":"string","pattern":"^[a-z]{2,3}-\\d+$"}`, []string{`"ab-1"`, `"abc-0123"`}, []string{`"a-1"`, `"ab-"`, `"AB-1"`, `"abcd-1"`}, nil},
	{"pattern unanchored", `{"type":"string","pattern":"a(b|cd)?e"}`, []string{`"ae"`, `"xxabe"`, `"acdeyy"`}, []string{`"ad"`, `"abde"`}, nil},
	{"pattern classes and escapes", `{"pattern":"^[^\\s\"]+\\.\\w*[.]?$"}`, []string{`"a.b_1"`, `"é.."`, `"x."`}, []string{`"a b."`, `"\".x"`, `"ab"`}, nil},
	{"pattern alternation anchors", `{"pattern":"^ab|cd$"}`, []string{`"abzz"`, `"zzcd"`, `"ab"`}, []string{`"zabz"`, `"cdz"`}, nil},
	{"pattern quote and backslash", `{"pattern":"^\"\\\\$"}`, []string{`"\"\\"`}, []string{`"\\"`}, nil},
	{"format date", `{"type":"string","format":"date"}`,
		[]string{`"2024-02-29"`, `"2000-02-29"`, `"2023-12-31"`, `"1999-04-30"`}, []string{`"2023-02-29"`, `"1900-02-29"`, `"2023-04-31"`, `"2023-13-01"`, `"2023-1-01"`}, nil},
	{"format time", `{"type":"string","format":"time"}`,
		[]string{`"23:59:59Z"`, `"00:00:00.123+05:30"`, `"12:30:00-08:00"`}, []string{`"24:00:00Z"`, `"12:60:00Z"`, `"12:00:00"`, `"12:00Z"`}, []string{`"23:59:60Z"`, `"12:00:00z"`}},
	{"format date-time", `{"type":"string","format":"date-time"}`,
		[]string{`"2024-01-15T08:30:00Z"`, `"2024-02-29T23:59:59.5+01:00"`}, []string{`"2024-01-15 08:30:00Z"`, `"2024-01-32T08:30:00Z"`}, []string{`"2024-01-15t08:30:00Z"`}},
	{"format uuid", `{"type":"string","format":"uuid"}`,
		[]string{`"123e4567-e89b-12d3-a456-426614174000"`, `"00000000-0000-0000-0000-00000000000F"`}, []string{`"123e4567e89b12d3a456426614174000"`, `"123e4567-e89b-12d3-a456-42661417400g"`}, nil},
	{"format email", `{"type":"string","format":"email"}`,
		[]string{`"joe@example.com"`, `"first.last+tag@mail.example-site.org"`}, []string{`"joe"`, `"joe@exa mple.com"`, `"joe@-example.com"`, `"jo..e@example.com"`}, []string{`"joe@localhost"`}},
	{"integer bounds", `{"type":"integer","minimum":-15,"maximum":130}`,
		[]string{`-15`, `-9`, `0`, `7`, `99`, `100`, `129`, `130`}, []string{`-16`, `131`, `200`, `-100`, `1000`}, nil},
	{"integer exclusive bounds", `{"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":10}`, []string{`1`, `9`}, []string{`0`, `10`, `-1`}, nil},
	{"integer fractional bounds", `{"type":"integer","minimum":1.5,"maximum":7.9}`, []string{`2`, `7`}, []string{`1`, `8`}, nil},
	{"integer one bound", `{"type":"integer","minimum":1000}`, []string{`1000`, `99999`, `1000000000000000`}, []string{`999`, `0`, `-1000`}, nil},
	{"integer upper bound only", `{"type":"integer","maximum":-5}`, []string{`-5`, `-6`, `-1000`}, []string{`-4`, `0`, `5`}, nil},
	{"integer draft 4 exclusive", `{"$schema":"http://json-schema.org/draft-04/schema#","type":"integer","minimum":5,"exclusiveMinimum":true,"maximum":8}`, []string{`6`, `8`}, []string{`5`, `9`}, nil},
	{"number bounds", `{"type":"number","minimum":-1.5,"maximum":2.25}`,
		[]string{`-1.5`, `-1.49`, `-1`, `0`, `0.001`, `2`, `2.25`, `2.2500`, `1.999`}, []string{`-1.51`, `2.26`, `2.2501`, `3`, `-2`}, []string{`1e0`}},
	{"number exclusive bounds", `{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1}`,
		[]string{`0.5`, `0.0001`, `0.999`}, []string{`0`, `0.0`, `1`, `1.0`, `-0.5`}, nil},
	{"number narrow bounds", `{"type":"number","minimum":0.25,"maximum":0.75}`, []string{`0.25`, `0.5`, `0.75`, `0.7499`}, []string{`0.2`, `0.76`, `0`, `1`}, nil},
	{"number minimum only", `{"type":"number","minimum":2.5}`, []string{`2.5`, `2.51`, `3`, `1000.5`}, []string{`2.49`, `2`, `-3`}, nil},
	{"$ref and $defs", `{"$defs":{"pos":{"type":"integer","minimum":1}},"type":"object","properties":{"a":{"$ref":"#/$defs/pos"},"b":{"$ref":"#/$defs/pos"}},"required":["a"],"additionalProperties":false}`,
		[]string{`{"a":1}`, `{"a":2,"b":3}`}, []string{`{"a":0}`, `{"b":1}`}, nil},
	{"$ref definitions", `{"definitions":{"s":{"type":"string"}},"$ref":"#/definitions/s"}`, []string{`"x"`}, []string{`1`}, nil},
	{"recursive $ref", `{"type":"object","properties":{"name":{"type":"string"},"children":{"type":"array","items":{"$ref":"#"}}},"required":["name"],"additionalProperties":false}`,
		[]string{`{"name":"a"}`, `{"name":"a","children":[{"name":"b","children":[{"name":"c"}]}]}`}, []string{`{"name":"a","children":[{}]}`}, nil},
	{"anyOf", `{"anyOf":[{"type":"integer","maximum":0},{"type":"string","maxLength":2}]}`, []string{`-3`, `0`, `"ab"`}, []string{`1`, `"abc"`, `null`}, nil},
	{"allOf of one", `{"allOf":[{"type":"boolean"}],"description":"wrapped"}`, []string{`true`}, []string{`1`}, nil},
	{"true schema", `true`, []string{`1`, `"a"`, `[{"b":null}]`}, []string{`tru`}, nil},
	{"empty schema", `{}`, []string{`{}`, `-1.5e3`}, []string{`{`}, nil},
	{"annotations ignored", `{"title":"T","description":"D","default":1,"examples":[1],"$comment":"c","x-vendor":{"a":1},"type":"integer"}`, []string{`1`}, []string{`"1"`}, nil},
	{"keywords of another type ignored", `{"type":"integer","minLength":5,"items":{"type":"string"}}`, []string{`1`}, []string{`"abcdef"`}, nil},
	{"types inferred", `{"properties":{"a":{"const":1}},"required":["a"],"additionalProperties":false}`, []string{`{"a":1}`}, []string{`{"a":2}`}, []string{`5`}},
}

func TestJSONSchemaKeywords(t *testing.T) {
	for _, c := range keywordCases {
		t.Run(c.name, func(t *testing.T) {
			g, err := FromJSONSchema([]byte(c.schema), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			v := validator(t, c.schema)
			for _, s := range c.valid {
				if err := validates(v, s); err != nil {
					t.Errorf("test case %s is not valid: %v", s, err)
				}
				if !g.Match([]byte(s)) {
					t.Errorf("grammar rejects valid %s", s)
				}
			}
			for _, s := range c.invalid {
				if validates(v, s) == nil {
					t.Errorf("test case %s is valid", s)
				}
				if g.Match([]byte(s)) {
					t.Errorf("grammar accepts invalid %s", s)
				}
			}
			for _, s := range c.subset {
				if err := validates(v, s); err != nil {
					t.Errorf("test case %s is not valid: %v", s, err)
				}
				if g.Match([]byte(s)) {
					t.Errorf("grammar accepts %s, which its policy leaves out", s)
				}
			}
		})
	}
}

func TestJSONSchemaUnsupported(t *testing.T) {
	cases := []struct{ schema, names string }{
		{`{"oneOf":[{"type":"string"}]}`, `"oneOf"`},
		{`{"not":{"type":"string"}}`, `"not"`},
		{`{"type":"object","properties":{"a":{"if":{},"then":{}}}}`, `"if" at #/properties/a`},
		{`{"type":"object","patternProperties":{"^x":{}}}`, `"patternProperties"`},
		{`{"type":"array","uniqueItems":true}`, `"uniqueItems"`},
		{`{"type":"array","prefixItems":[{}]}`, `"prefixItems"`},
		{`{"type":"integer","multipleOf":3}`, `"multipleOf"`},
		{`{"type":"object","minProperties":1}`, `"minProperties"`},
		{`{"type":"string","format":"uri"}`, `format "uri"`},
		{`{"$ref":"https://example.com/s.json"}`, `$ref "https://example.com/s.json"`},
		{`{"$ref":"#anchor"}`, `$ref "#anchor"`},
		{`{"$defs":{"a":{"type":"string"}},"$ref":"#/$defs/a","maxLength":3}`, `$ref beside ["maxLength"]`},
		{`{"anyOf":[{"type":"string"}],"minLength":2}`, `anyOf beside ["minLength"]`},
		{`{"allOf":[{"type":"string"},{"minLength":1}]}`, `allOf of other than one`},
		{`{"type":"string","pattern":"(a)\\1"}`, `backreferences`},
		{`{"type":"string","pattern":"^(?=a)"}`, `lookaround`},
		{`{"type":"string","pattern":"a\\b"}`, `\b`},
		{`{"type":"string","pattern":"a^b"}`, `^ other than at the start`},
		{`{"type":"string","pattern":"^a","maxLength":3}`, `pattern beside minLength or maxLength`},
		{`{"type":"string","format":"date","minLength":3}`, `format beside`},
		{`{"type":"number","minimum":0.1e-50}`, `more than 40 digits`},
	}
	for _, c := range cases {
		_, err := FromJSONSchema([]byte(c.schema), Limits{})
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), c.names) {
			t.Errorf("FromJSONSchema(%s) = %v, want ErrUnsupported naming %s", c.schema, err, c.names)
		}
	}
}

func TestJSONSchemaInvalid(t *testing.T) {
	cases := []struct {
		schema string
		want   error
	}{
		{`{"type":"string"`, ErrSyntax},
		{`{"type":"strin"}`, ErrInvalid},
		{`{"type":"integer","minimum":5,"maximum":4}`, ErrInvalid},
		{`{"type":"integer","minimum":1.2,"maximum":1.8}`, ErrInvalid},
		{`{"type":"number","exclusiveMinimum":1,"maximum":1}`, ErrInvalid},
		{`{"type":"array","minItems":3,"maxItems":2}`, ErrInvalid},
		{`{"type":"string","minLength":3,"maxLength":2}`, ErrInvalid},
		{`{"enum":[1,2],"type":"string"}`, ErrInvalid},
		{`{"type":"object","properties":{"a":false},"required":["a"]}`, ErrInvalid},
		{`{"type":"object","required":["a"],"additionalProperties":false}`, ErrInvalid},
		{`{"$ref":"#/$defs/missing"}`, ErrInvalid},
		{`{"$ref":"#"}`, ErrInvalid},
		{`false`, ErrInvalid},
		{`{"type":"string","minLength":-1}`, ErrInvalid},
		{`{"properties":{"a":{}},"properties":{}}`, ErrSyntax},
		{`{"type":"string","pattern":"[z-a]"}`, ErrSyntax},
		{strings.Repeat(`{"items":`, 100) + `{}` + strings.Repeat(`}`, 100), ErrLimit},
		{`{"type":"string","minLength":2000000}`, ErrLimit},
	}
	for _, c := range cases {
		_, err := FromJSONSchema([]byte(c.schema), Limits{})
		if !errors.Is(err, c.want) {
			t.Errorf("FromJSONSchema(%.80s) = %v, want %v", c.schema, err, c.want)
		}
	}
	if _, err := FromJSONSchema([]byte(`{"type":"string"}`), Limits{SourceBytes: 4}); !errors.Is(err, ErrLimit) {
		t.Errorf("17-byte schema under a 4-byte limit: %v, want ErrLimit", err)
	}
}

func TestJSONObject(t *testing.T) {
	g := JSONObject()
	for _, s := range []string{`{}`, `{"a":{"b":[1,2.5,-3e2,"x",true,false,null]}}`, `{ "k": "v" }`} {
		if !g.Match([]byte(s)) {
			t.Errorf("JSON mode rejects %s", s)
		}
	}
	for _, s := range []string{`[]`, `"a"`, `{"a":}`, `{"a":1`, `{'a':1}`, ` {}`, `{}` + " ", "{\n  \"k\": \"v\"\n}"} {
		if g.Match([]byte(s)) {
			t.Errorf("JSON mode accepts %q", s)
		}
	}
}
