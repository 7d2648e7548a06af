package grammar

// formats are the string formats FromJSONSchema supports, as the contents
// of the JSON string, each exactly (date) or a subset that validates
// (the rest: no leap seconds, upper-case T and Z only, simple e-mail
// addresses).
var formats = map[string]*expr{
	"date":      dateExpr,
	"time":      timeExpr,
	"date-time": seq(dateExpr, lit("T"), timeExpr),
	"uuid":      seq(repeat(hexDigit, 8, 8), lit("-"), repeat(hexDigit, 4, 4), lit("-"), repeat(hexDigit, 4, 4), lit("-"), repeat(hexDigit, 4, 4), lit("-"), repeat(hexDigit, 12, 12)),
	"email":     emailExpr,
}

var (
	// dateExpr is RFC 3339's full-date with the days each month has:
	// February 29 only in leap years (divisible by 4, and by 400 if a
	// century).
	dateExpr = alt(
		seq(repeat(digit, 4, 4), lit("-"), alt(
			seq(alt(seq(lit("0"), chars("13578")), seq(lit("1"), chars("02"))), lit("-"), alt(seq(lit("0"), digit1), seq(chars("12"), digit), seq(lit("3"), chars("01")))),
			seq(alt(seq(lit("0"), chars("469")), lit("11")), lit("-"), alt(seq(lit("0"), digit1), seq(chars("12"), digit), lit("30"))),
			seq(lit("02-"), alt(seq(lit("0"), digit1), seq(lit("1"), digit), seq(lit("2"), digitClass('0', '8')))),
		)),
		seq(alt(seq(digit, digit, divisibleBy4), seq(alt(lit("00"), divisibleBy4), lit("00"))), lit("-02-29")),
	)
	// divisibleBy4 is the two-digit multiples of 4 other than 00.
	divisibleBy4 = alt(seq(lit("0"), chars("48")), seq(chars("2468"), chars("048")), seq(chars("13579"), chars("26")))
	twoDigits59  = seq(digitClass('0', '5'), digit)
	hour         = alt(seq(chars("01"), digit), seq(lit("2"), digitClass('0', '3')))
	// timeExpr is RFC 3339's full-time: seconds up to 59, an optional
	// fraction, and Z or a numeric offset.
	timeExpr = seq(hour, lit(":"), twoDigits59, lit(":"), twoDigits59, opt(seq(lit("."), repeat(digit, 1, 9))),
		alt(lit("Z"), seq(chars("+-"), hour, lit(":"), twoDigits59)))
	// emailExpr is a dot-atom local part (letters, digits and _+-) of at
	// most 64 characters at a domain of one to three labels and a
	// top-level domain of letters.
	emailAtom = repeat(class(runeRange{'0', '9'}, runeRange{'A', 'Z'}, runeRange{'a', 'z'}, runeRange{'_', '_'}, runeRange{'+', '+'}, runeRange{'-', '-'}), 1, 20)
	alnum     = class(runeRange{'0', '9'}, runeRange{'A', 'Z'}, runeRange{'a', 'z'})
	label     = seq(alnum, opt(seq(repeat(alt(alnum, lit("-")), 0, 30), alnum)))
	emailExpr = seq(emailAtom, repeat(seq(lit("."), emailAtom), 0, 2), lit("@"),
		repeat(seq(label, lit(".")), 1, 3), repeat(class(runeRange{'A', 'Z'}, runeRange{'a', 'z'}), 2, 12))
)
