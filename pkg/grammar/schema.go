package grammar

import (
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"strings"
)

// FromJSONSchema compiles a JSON Schema (draft 2020-12, with the draft 4–7
// spellings of the same keywords) into the grammar of the JSON it allows.
//
// Supported: type (one or a list); enum and const (any JSON values, kept
// only where the rest of the schema allows them); object with properties,
// required and additionalProperties; array with items, minItems and
// maxItems; string with minLength, maxLength, pattern or format (date,
// time, date-time, uuid, email); pattern is an ECMA-262 subset: literals,
// ., classes with ranges and negation, \d \w \s and their negations,
// escapes, groups, |, * + ? {n} {n,} {n,m} (lazy or not), ^ and $ only at
// the ends of an alternative, and no backreferences, lookaround, \b or
// \p; number and integer with minimum, maximum,
// exclusiveMinimum and exclusiveMaximum (numbers or, as in draft 4,
// booleans); boolean; null; $ref to "#" or a JSON pointer within the
// schema ($defs, definitions, or anywhere), recursion included; anyOf;
// allOf of one schema; true and {} (any JSON value). Annotations (title,
// description, default, examples, $schema, $id, $comment, …) and keywords
// JSON Schema does not define are ignored. Every other keyword (oneOf,
// not, if, patternProperties, uniqueItems: true, multipleOf, …), another
// format, a remote $ref, or a $ref, anyOf or enum that keywords beside it
// would narrow, is an error wrapping ErrUnsupported that names it.
//
// What the grammar writes, a subset of what the schema allows:
//   - properties in the order the schema lists them (those only in
//     required after them), required ones always, optional ones or not;
//     no other properties, whatever additionalProperties says, unless the
//     object has no properties at all: then additionalProperties: false
//     is {}, a schema is a map of such values, and true or absent is any
//     object;
//   - whitespace only after { [ , : and after a member or an element, each
//     time nothing or one space: the compact JSON OpenAI's structured
//     outputs write, so a model spends no tokens on indentation (a model
//     untrained for JSON spent up to a fifth of its answer on it, and ran
//     out of max_tokens); none at the ends;
//   - numbers with at most 16 digits before the point, 16 after and 3 in
//     the exponent (more where a bound needs them), integers without
//     fraction or exponent, bounded numbers without an exponent, each
//     bound enforced exactly; strings of characters written raw (other than
//     " \ and controls, which are escaped) or escaped, \u escapes of
//     surrogates excluded so that each escape is one character.
func FromJSONSchema(schema []byte, lim Limits) (*Grammar, error) {
	lim = lim.withDefaults()
	if len(schema) > lim.SourceBytes {
		return nil, fmt.Errorf("%w: schema of %d bytes, more than %d", ErrLimit, len(schema), lim.SourceBytes)
	}
	doc, err := parseJSON(schema, 4*lim.Nesting)
	if err != nil {
		return nil, fmt.Errorf("json schema: %w", err)
	}
	return compileSchema(doc, doc, lim)
}

// JSONObject is JSON mode: any JSON object, formatted as FromJSONSchema
// describes.
func JSONObject() *Grammar {
	g, err := FromJSONSchema([]byte(`{"type":"object"}`), Limits{})
	if err != nil {
		panic(err) // a fixed schema
	}
	return g
}

// The rules every schema grammar may use, by name.
var jsonRules = map[string]*expr{
	"ws":      opt(lit(" ")),
	"char":    alt(class(negate(normRanges([]runeRange{{0, 0x1F}, {'"', '"'}, {'\\', '\\'}}))...), seq(lit(`\`), alt(chars(`"\/bfnrt`), seq(lit("u"), jsonHex4)))),
	"string":  seq(lit(`"`), star(ref("char")), lit(`"`)),
	"number":  seq(opt(lit("-")), jsonUint, opt(seq(lit("."), digits(1, maxFracDigits))), opt(seq(chars("eE"), opt(chars("+-")), repeat(digit, 1, maxExpDigits)))),
	"integer": seq(opt(lit("-")), jsonUint),
	"value":   alt(ref("object"), ref("array"), ref("string"), ref("number"), lit("true"), lit("false"), lit("null")),
	"object":  seq(lit("{"), ref("ws"), opt(seq(ref("member"), star(seq(lit(","), ref("ws"), ref("member"))))), lit("}")),
	"member":  seq(ref("string"), ref("ws"), lit(":"), ref("ws"), ref("value"), ref("ws")),
	"array":   seq(lit("["), ref("ws"), opt(seq(ref("value"), ref("ws"), star(seq(lit(","), ref("ws"), ref("value"), ref("ws"))))), lit("]")),
}

var (
	hexDigit = class(runeRange{'0', '9'}, runeRange{'A', 'F'}, runeRange{'a', 'f'})
	// jsonHex4 is the four hex digits of a \u escape, surrogates excluded.
	jsonHex4 = alt(
		seq(class(runeRange{'0', '9'}, runeRange{'A', 'C'}, runeRange{'a', 'c'}, runeRange{'E', 'F'}, runeRange{'e', 'f'}), hexDigit, hexDigit, hexDigit),
		seq(chars("Dd"), class(runeRange{'0', '7'}), hexDigit, hexDigit))
	jsonUint = alt(lit("0"), seq(digit1, repeat(digit, 0, maxIntDigits-1)))
)

// Keywords that constrain instances in ways this package does not
// express.
var unsupportedKeywords = []string{
	"not", "oneOf", "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies",
	"patternProperties", "propertyNames", "minProperties", "maxProperties", "unevaluatedProperties",
	"unevaluatedItems", "prefixItems", "additionalItems", "contains", "minContains", "maxContains",
	"multipleOf", "$dynamicRef", "$recursiveRef",
}

// Keywords that only annotate, or hold subschemas for $ref: they never
// narrow an instance.
var annotationKeywords = []string{
	"$schema", "$id", "$comment", "$anchor", "$dynamicAnchor", "$recursiveAnchor", "$vocabulary",
	"$defs", "definitions", "title", "description", "default", "examples", "deprecated",
	"readOnly", "writeOnly", "contentEncoding", "contentMediaType", "contentSchema",
}

type schemaCompiler struct {
	doc   *jval
	lim   Limits
	rules []rule
	used  map[string]bool   // rule names taken
	refs  map[string]string // JSON pointer → rule name
	depth int
}

func compileSchema(doc, s *jval, lim Limits) (*Grammar, error) {
	c := &schemaCompiler{doc: doc, lim: lim, used: map[string]bool{"root": true}, refs: map[string]string{}}
	for name := range jsonRules {
		c.used[name] = true
	}
	if s == doc {
		c.refs["#"] = "root"
	}
	c.rules = []rule{{name: "root"}}
	x, err := c.schema(s, "#")
	if err != nil {
		return nil, err
	}
	c.rules[0].body = x
	// Add the shared rules the grammar refers to (and those they refer to).
	for i := 0; i < len(c.rules); i++ {
		walkRefs(c.rules[i].body, func(name string) {
			if body, ok := jsonRules[name]; ok && !slices.ContainsFunc(c.rules, func(r rule) bool { return r.name == name }) {
				c.rules = append(c.rules, rule{name: name, body: body})
			}
		})
	}
	g, err := newGrammar(c.rules, lim)
	if err != nil {
		return nil, fmt.Errorf("json schema: %w", err)
	}
	return g, nil
}

func walkRefs(x *expr, f func(string)) {
	if x.kind == exRef {
		f(x.name)
	}
	for _, k := range x.kids {
		walkRefs(k, f)
	}
}

// name returns a rule name not yet used, made from hint.
func (c *schemaCompiler) name(hint string) string {
	var sb strings.Builder
	for i := 0; i < len(hint) && sb.Len() < 40; i++ {
		if isNameByte(hint[i]) {
			sb.WriteByte(hint[i])
		} else if sb.Len() > 0 && !strings.HasSuffix(sb.String(), "-") {
			sb.WriteByte('-')
		}
	}
	base := strings.Trim(sb.String(), "-")
	if base == "" {
		base = "s"
	}
	name := base
	for i := 2; c.used[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	c.used[name] = true
	return name
}

// define adds a rule for x and returns a reference to it.
func (c *schemaCompiler) define(hint string, x *expr) *expr {
	name := c.name(hint)
	c.rules = append(c.rules, rule{name: name, body: x})
	return ref(name)
}

func unsupported(path, format string, args ...any) error {
	return fmt.Errorf("%w: %s at %s", ErrUnsupported, fmt.Sprintf(format, args...), path)
}

func invalid(path, format string, args ...any) error {
	return fmt.Errorf("%w: json schema at %s: %s", ErrInvalid, path, fmt.Sprintf(format, args...))
}

// assertions lists s's keywords that narrow an instance, but for those in
// except.
func assertions(s *jval, except ...string) []string {
	var out []string
	for _, k := range s.keys {
		if !slices.Contains(annotationKeywords, k) && !slices.Contains(except, k) && isKeyword(k) {
			out = append(out, k)
		}
	}
	return out
}

// isKeyword reports whether k is a JSON Schema keyword this package knows
// (others are ignored, as JSON Schema ignores unknown keywords).
func isKeyword(k string) bool {
	switch k {
	case "type", "enum", "const", "properties", "required", "additionalProperties", "items",
		"minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern", "format",
		"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "$ref", "anyOf", "allOf":
		return true
	}
	return slices.Contains(unsupportedKeywords, k)
}

func (c *schemaCompiler) schema(s *jval, path string) (*expr, error) {
	if c.depth++; c.depth > c.lim.Nesting {
		return nil, fmt.Errorf("%w: subschemas nested deeper than %d at %s", ErrLimit, c.lim.Nesting, path)
	}
	defer func() { c.depth-- }()
	switch s.kind {
	case jBool:
		if !s.b {
			return nil, invalid(path, "schema false allows nothing")
		}
		return ref("value"), nil
	case jObject:
	default:
		return nil, invalid(path, "a schema is an object or a boolean, not a %s", s.kind)
	}
	for _, k := range s.keys {
		if slices.Contains(unsupportedKeywords, k) {
			return nil, unsupported(path, "keyword %q", k)
		}
	}
	if u := s.get("uniqueItems"); u != nil && !(u.kind == jBool && !u.b) {
		return nil, unsupported(path, `keyword "uniqueItems"`)
	}
	if r := s.get("$ref"); r != nil {
		if rest := assertions(s, "$ref"); len(rest) > 0 {
			return nil, unsupported(path, "$ref beside %q", rest)
		}
		if r.kind != jString {
			return nil, invalid(path, "$ref is not a string")
		}
		return c.ref(r.text, path)
	}
	if a := s.get("allOf"); a != nil {
		if a.kind != jArray || len(a.arr) != 1 {
			return nil, unsupported(path, "allOf of other than one schema")
		}
		if rest := assertions(s, "allOf"); len(rest) > 0 {
			return nil, unsupported(path, "allOf beside %q", rest)
		}
		return c.schema(a.arr[0], path+"/allOf/0")
	}
	if a := s.get("anyOf"); a != nil {
		if a.kind != jArray || len(a.arr) == 0 {
			return nil, invalid(path, "anyOf is not a non-empty array")
		}
		if rest := assertions(s, "anyOf"); len(rest) > 0 {
			return nil, unsupported(path, "anyOf beside %q", rest)
		}
		var alts []*expr
		for i, sub := range a.arr {
			x, err := c.schema(sub, fmt.Sprintf("%s/anyOf/%d", path, i))
			if err != nil {
				return nil, err
			}
			alts = append(alts, x)
		}
		return alt(alts...), nil
	}
	if s.get("enum") != nil || s.get("const") != nil {
		return c.enum(s, path)
	}
	types, err := schemaTypes(s, path)
	if err != nil {
		return nil, err
	}
	var alts []*expr
	for _, t := range types {
		var x *expr
		switch t {
		case "object":
			x, err = c.object(s, path)
		case "array":
			x, err = c.array(s, path)
		case "string":
			x, err = c.string(s, path)
		case "number", "integer":
			x, err = c.number(s, path, t == "integer")
		case "boolean":
			x = alt(lit("true"), lit("false"))
		case "null":
			x = lit("null")
		case "any":
			x = ref("value")
		default:
			return nil, invalid(path, "unknown type %q", t)
		}
		if err != nil {
			return nil, err
		}
		alts = append(alts, x)
	}
	return alt(alts...), nil
}

// schemaTypes is the type keyword's types or, without it, the types the
// schema's keywords are about ("any" if none).
func schemaTypes(s *jval, path string) ([]string, error) {
	if t := s.get("type"); t != nil {
		switch t.kind {
		case jString:
			return []string{t.text}, nil
		case jArray:
			var out []string
			for _, x := range t.arr {
				if x.kind != jString {
					return nil, invalid(path, "type lists a %s", x.kind)
				}
				out = append(out, x.text)
			}
			if slices.Contains(out, "number") { // number covers integer
				out = slices.DeleteFunc(out, func(s string) bool { return s == "integer" })
			}
			if len(out) == 0 {
				return nil, invalid(path, "type is an empty list")
			}
			return out, nil
		}
		return nil, invalid(path, "type is a %s", t.kind)
	}
	var out []string
	has := func(keys ...string) bool {
		return slices.ContainsFunc(keys, func(k string) bool { return s.get(k) != nil })
	}
	if has("properties", "required", "additionalProperties") {
		out = append(out, "object")
	}
	if has("items", "minItems", "maxItems") {
		out = append(out, "array")
	}
	if has("minLength", "maxLength", "pattern", "format") {
		out = append(out, "string")
	}
	if has("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") {
		out = append(out, "number")
	}
	if len(out) == 0 {
		out = []string{"any"}
	}
	return out, nil
}

func (c *schemaCompiler) ref(ptr, path string) (*expr, error) {
	if name, ok := c.refs[ptr]; ok {
		return ref(name), nil
	}
	frag, ok := strings.CutPrefix(ptr, "#")
	if !ok || (frag != "" && !strings.HasPrefix(frag, "/")) {
		return nil, unsupported(path, "$ref %q (only # and JSON pointers within the schema)", ptr)
	}
	target := c.doc
	if frag != "" {
		for _, tok := range strings.Split(frag[1:], "/") {
			tok, err := url.PathUnescape(tok)
			if err != nil {
				return nil, invalid(path, "$ref %q: %v", ptr, err)
			}
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			switch target.kind {
			case jObject:
				target = target.get(tok)
			case jArray:
				var i int
				if _, err := fmt.Sscanf(tok, "%d", &i); err != nil || i < 0 || i >= len(target.arr) {
					target = nil
				} else {
					target = target.arr[i]
				}
			default:
				target = nil
			}
			if target == nil {
				return nil, invalid(path, "$ref %q does not resolve", ptr)
			}
		}
	}
	name := c.name(frag)
	c.refs[ptr] = name
	at := len(c.rules)
	c.rules = append(c.rules, rule{name: name})
	x, err := c.schema(target, ptr)
	if err != nil {
		return nil, err
	}
	c.rules[at].body = x
	return ref(name), nil
}

// enum is the values of enum or const that the rest of the schema allows.
func (c *schemaCompiler) enum(s *jval, path string) (*expr, error) {
	var values []*jval
	if e := s.get("enum"); e != nil {
		if e.kind != jArray {
			return nil, invalid(path, "enum is not an array")
		}
		values = e.arr
	}
	if k := s.get("const"); k != nil {
		if s.get("enum") != nil {
			return nil, unsupported(path, "enum beside const")
		}
		values = []*jval{k}
	}
	rest := &jval{kind: jObject}
	for i, k := range s.keys {
		if k != "enum" && k != "const" {
			rest.keys, rest.vals = append(rest.keys, k), append(rest.vals, s.vals[i])
		}
	}
	var allowed *Grammar
	if len(assertions(rest)) > 0 {
		var err error
		if allowed, err = compileSchema(c.doc, rest, c.lim); err != nil {
			return nil, err
		}
	}
	var alts []*expr
	for _, v := range values {
		text := v.compact()
		if allowed == nil || allowed.Match([]byte(text)) {
			alts = append(alts, lit(text))
		}
	}
	if len(alts) == 0 {
		return nil, invalid(path, "no value of enum or const satisfies the rest of the schema")
	}
	return alt(alts...), nil
}

func (c *schemaCompiler) object(s *jval, path string) (*expr, error) {
	ws := ref("ws")
	props := s.get("properties")
	if props != nil && props.kind != jObject {
		return nil, invalid(path, "properties is not an object")
	}
	var keys []string
	var schemas []*jval
	if props != nil {
		keys, schemas = slices.Clone(props.keys), slices.Clone(props.vals)
	}
	required := map[string]bool{}
	if r := s.get("required"); r != nil {
		if r.kind != jArray {
			return nil, invalid(path, "required is not an array")
		}
		for _, k := range r.arr {
			if k.kind != jString {
				return nil, invalid(path, "required lists a %s", k.kind)
			}
			required[k.text] = true
			if !slices.Contains(keys, k.text) {
				keys = append(keys, k.text)
				schemas = append(schemas, nil)
			}
		}
	}
	ap := s.get("additionalProperties")
	if ap != nil && ap.kind != jBool && ap.kind != jObject {
		return nil, invalid(path, "additionalProperties is a %s", ap.kind)
	}
	apFalse := ap != nil && ap.kind == jBool && !ap.b
	if len(keys) == 0 {
		switch {
		case apFalse:
			return seq(lit("{"), ws, lit("}")), nil
		case ap != nil && ap.kind == jObject:
			v, err := c.schema(ap, path+"/additionalProperties")
			if err != nil {
				return nil, err
			}
			kv := c.define(path+"-kv", seq(ref("string"), ws, lit(":"), ws, v, ws))
			return seq(lit("{"), ws, opt(seq(kv, star(seq(lit(","), ws, kv)))), lit("}")), nil
		}
		return ref("object"), nil
	}
	// Each member is a rule; first and rest are the members from i on when
	// none has been written yet and when one has (so each starts with a
	// comma).
	n := len(keys)
	kvs := make([]*expr, n)
	for i, k := range keys {
		sub := schemas[i]
		at := path + "/properties/" + k
		if sub == nil { // only in required
			switch {
			case apFalse:
				return nil, invalid(path, "required property %q is not in properties and additionalProperties is false", k)
			case ap != nil && ap.kind == jObject:
				sub, at = ap, path+"/additionalProperties"
			default:
				sub = &jval{kind: jBool, b: true}
			}
		}
		if sub.kind == jBool && !sub.b {
			if required[k] {
				return nil, invalid(path, "required property %q has schema false", k)
			}
			kvs[i] = nil // never written
			continue
		}
		v, err := c.schema(sub, at)
		if err != nil {
			return nil, err
		}
		kvs[i] = c.define(path+"-"+k+"-kv", seq(lit(quote(k)), ws, lit(":"), ws, v, ws))
	}
	first, rest := seq(), seq()
	for i := n - 1; i >= 0; i-- {
		if kvs[i] == nil {
			continue
		}
		withComma := seq(lit(","), ws, kvs[i], rest)
		alone := seq(kvs[i], rest)
		if required[keys[i]] {
			first, rest = alone, withComma
		} else {
			first, rest = alt(alone, first), alt(withComma, rest)
		}
		if i > 0 { // rest is referenced twice (by both of i-1's); first once
			rest = c.define(path+"-rest", rest)
		}
	}
	return seq(lit("{"), ws, first, lit("}")), nil
}

func (c *schemaCompiler) array(s *jval, path string) (*expr, error) {
	ws := ref("ws")
	lo, _, err := count(s, "minItems", path)
	if err != nil {
		return nil, err
	}
	hi, bounded, err := count(s, "maxItems", path)
	if err != nil {
		return nil, err
	}
	if !bounded {
		hi = -1
	}
	item := ref("value")
	if it := s.get("items"); it != nil {
		if it.kind == jBool && !it.b {
			hi = 0
		} else if it.kind == jArray {
			return nil, unsupported(path, "items as an array (draft 4 tuples)")
		} else if item, err = c.schema(it, path+"/items"); err != nil {
			return nil, err
		}
	}
	if hi >= 0 && lo > hi {
		return nil, invalid(path, "minItems %d is above maxItems %d", lo, hi)
	}
	if hi == 0 {
		return seq(lit("["), ws, lit("]")), nil
	}
	el := c.define(path+"-item", seq(item, ws))
	more := -1
	if hi > 0 {
		more = hi - 1
	}
	list := seq(el, repeat(seq(lit(","), ws, el), max(lo-1, 0), more))
	if lo == 0 {
		list = opt(list)
	}
	return seq(lit("["), ws, list, lit("]")), nil
}

// count reads a non-negative integer keyword.
func count(s *jval, key, path string) (int, bool, error) {
	v := s.get(key)
	if v == nil {
		return 0, false, nil
	}
	r, ok := new(big.Rat).SetString(v.text)
	if v.kind != jNumber || !ok || !r.IsInt() || r.Sign() < 0 || r.Num().BitLen() > 31 {
		return 0, false, invalid(path, "%s is not a non-negative integer", key)
	}
	return int(r.Num().Int64()), true, nil
}

func (c *schemaCompiler) string(s *jval, path string) (*expr, error) {
	q := lit(`"`)
	lo, hasLo, err := count(s, "minLength", path)
	if err != nil {
		return nil, err
	}
	hi, hasHi, err := count(s, "maxLength", path)
	if err != nil {
		return nil, err
	}
	if f := s.get("format"); f != nil {
		if f.kind != jString {
			return nil, invalid(path, "format is not a string")
		}
		x, ok := formats[f.text]
		if !ok {
			return nil, unsupported(path, "format %q", f.text)
		}
		if s.get("pattern") != nil || hasLo || hasHi {
			return nil, unsupported(path, "format beside pattern, minLength or maxLength")
		}
		return seq(q, x, q), nil
	}
	if p := s.get("pattern"); p != nil {
		if p.kind != jString {
			return nil, invalid(path, "pattern is not a string")
		}
		if hasLo || hasHi {
			return nil, unsupported(path, "pattern beside minLength or maxLength")
		}
		x, err := patternExpr(p.text, c.lim)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return seq(q, x, q), nil
	}
	if !hasLo && !hasHi {
		return ref("string"), nil
	}
	if !hasHi {
		hi = -1
	} else if lo > hi {
		return nil, invalid(path, "minLength %d is above maxLength %d", lo, hi)
	}
	return seq(q, repeat(ref("char"), lo, hi), q), nil
}

func (c *schemaCompiler) number(s *jval, path string, integer bool) (*expr, error) {
	lo, err := numBound(s, "minimum", "exclusiveMinimum", path, func(a, b *big.Rat) bool { return a.Cmp(b) > 0 })
	if err != nil {
		return nil, err
	}
	hi, err := numBound(s, "maximum", "exclusiveMaximum", path, func(a, b *big.Rat) bool { return a.Cmp(b) < 0 })
	if err != nil {
		return nil, err
	}
	if lo == nil && hi == nil {
		if integer {
			return ref("integer"), nil
		}
		return ref("number"), nil
	}
	var x *expr
	if integer {
		l, h := intBounds(lo, hi)
		x = intRange(l, h)
	} else if x, err = numberRange(lo, hi); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if x == nil {
		return nil, invalid(path, "no number is within the bounds")
	}
	return x, nil
}

// numBound reads one side's bound: the inclusive keyword, the exclusive
// one (a number, or in draft 4 a boolean that makes the inclusive one
// exclusive), and the tighter of the two by tighter.
func numBound(s *jval, incl, excl, path string, tighter func(a, b *big.Rat) bool) (*bound, error) {
	num := func(key string) (*big.Rat, error) {
		v := s.get(key)
		if v == nil || v.kind == jBool {
			return nil, nil
		}
		r, ok := new(big.Rat).SetString(v.text)
		if v.kind != jNumber || !ok {
			return nil, invalid(path, "%s is not a number", key)
		}
		if _, err := toDecimal(r); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, key, err)
		}
		return r, nil
	}
	in, err := num(incl)
	if err != nil {
		return nil, err
	}
	ex, err := num(excl)
	if err != nil {
		return nil, err
	}
	var b *bound
	if in != nil {
		b = &bound{v: in}
		if e := s.get(excl); e != nil && e.kind == jBool && e.b {
			b.strict = true
		}
	}
	if ex != nil && (b == nil || tighter(ex, b.v) || ex.Cmp(b.v) == 0) {
		b = &bound{v: ex, strict: true}
	}
	return b, nil
}
