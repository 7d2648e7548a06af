#!/usr/bin/python3
"""Writes the tokenizer test corpus and the pre-tokenizer goldens.

corpus.json: a few thousand strings made deterministically (seeded) from
pools of code, CJK, emoji, digit runs, whitespace runs, contractions,
special-token text and other scripts, all NFC (llama.cpp does not normalize
and the tests must not depend on it). "strings" is used by every test;
"splitter_only" holds strings on which the reference engines disagree among
themselves (JavaScript's \\s lacks U+0085 and has U+FEFF; transformers.js
writes (?i:'s) as '[sS], so "'\u017f" is no contraction there), used only
against the regular expressions.

splits.json.gz: for every tokenizer.ggml.pre value, the pieces its regular
expressions cut each string into, run by the `regex` module (Debian's
python3-regex), which has lookahead. Each value's expressions are applied in
turn, each to every piece the one before left, keeping matches and the text
between them as pieces (Hugging Face's "Isolated" split, llama.cpp's
unicode_regex_split). Pieces are stored as lengths in code points.

The expressions are written here from llama.cpp's src/llama-vocab.cpp and,
where llama.cpp uses an approximation or custom code, from the models' own
tokenizer.json or tokenization code. The mapping of values to expressions
is typed here independently of pkg/tokenizer, whose test checks both lists
name the same values.

Run: apt-get install python3-regex; /usr/bin/python3 pretok.py
"""

import gzip
import json
import random
import unicodedata

import regex

# --- the regular expressions -------------------------------------------------

CONTRACTIONS_CI = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
# llama.cpp's form of GPT-2's expression (no trailing \s+; what is left
# between matches becomes a piece all the same).
GPT2_LLAMACPP = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"

PATTERNS = {
    # tokenizer.json of GPT-2 (ByteLevel pre-tokenizer's expression)
    "gpt2": [r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"],
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2_LLAMACPP, r"\p{N}+", r"[0-9][0-9][0-9]"],
    "llama3": [CONTRACTIONS_CI + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "qwen2": [CONTRACTIONS_CI + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "qwen35": [CONTRACTIONS_CI + r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "deepseek-llm": [
        "[\r\n]",
        "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1f7dᾀ-ᾴᾶ-ᾼ\u1fbeῂ-ῄῆ-ῌῐ-\u1fd3ῖ-\u1fdbῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212a-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
        "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
        "\\s+$",
        "[一-龥ࠀ-一가-퟿]+",
        "\\p{N}+",
    ],
    "deepseek-coder": ["[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"],
    "deepseek-v3": [
        "\\p{N}{1,3}",
        "[一-龥぀-ゟ゠-ヿ]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    ],
    # tokenizer.json of gpt-oss / Llama 4 (llama.cpp rewrites the case classes)
    "gpt-4o": [
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+" + CONTRACTIONS_CI + "?"
        r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*" + CONTRACTIONS_CI + "?"
        r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    ],
    # tokenizer.json of Mistral NeMo (llama.cpp's comment gives it too)
    "tekken": [
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
        r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
        r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    ],
    # tokenization_kimi.py; [X&&[^\p{Han}]] written as (?!\p{Han})X
    "kimi-k2": [
        r"[\p{Han}]+"
        r"|[^\r\n\p{L}\p{N}]?(?:(?!\p{Han})[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}])*(?:(?!\p{Han})[\p{Ll}\p{Lm}\p{Lo}\p{M}])+" + CONTRACTIONS_CI + "?"
        r"|[^\r\n\p{L}\p{N}]?(?:(?!\p{Han})[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}])+(?:(?!\p{Han})[\p{Ll}\p{Lm}\p{Lo}\p{M}])*" + CONTRACTIONS_CI + "?"
        r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    ],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", GPT2_LLAMACPP, r"[0-9][0-9][0-9]"],
    "starcoder": [r"\p{N}", GPT2_LLAMACPP],
}

# tokenizer.ggml.pre values and their expressions, grouped as
# llama_vocab::impl::load groups them.
PRE = {}
for ids, names in [
    ("default", ["default"]),
    ("gpt2", ["gpt-2", "phi-2", "mpt", "olmo"]),
    ("llama3", ["llama-bpe", "llama3", "llama-v3", "falcon3", "dbrx", "smaug-bpe", "glm4", "chatglm-bpe"]),
    ("qwen2", ["qwen2", "deepseek-r1-qwen", "megrez", "stablelm2", "hunyuan"]),
    ("qwen35", ["qwen35"]),
    ("deepseek-llm", ["deepseek-llm"]),
    ("deepseek-coder", ["deepseek-coder"]),
    ("deepseek-v3", ["deepseek-v3", "hunyuan-dense", "joyai-llm"]),
    ("gpt-4o", ["gpt-4o", "llama4", "minimax-m2", "kanana2"]),
    ("kimi-k2", ["kimi-k2"]),
    ("falcon", ["falcon"]),
    ("starcoder", ["starcoder", "refact", "smollm", "codeshell", "command-r", "exaone", "minerva-7b", "mellum2"]),
    ("tekken", ["tekken"]),
]:
    for n in names:
        PRE[n] = ids


def split(text, exprs):
    pieces = [text]
    for e in exprs:
        r = regex.compile(e)
        out = []
        for p in pieces:
            pos = 0
            for m in r.finditer(p):
                if m.start() > pos:
                    out.append(p[pos:m.start()])
                if m.end() > m.start():
                    out.append(m.group())
                pos = m.end()
            if pos < len(p):
                out.append(p[pos:])
        pieces = out
    assert "".join(pieces) == text
    return pieces


# --- the corpus ---------------------------------------------------------------

rng = random.Random(20260522)

FIXED = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\n\n\n", "\t\n", "Hello world", " Hello world",
    "Hello World", "HELLO WORLD", " this is 🦙.cpp", "w048 7tuijk dsdfhu", "нещо на Български",
    "កាន់តែពិសេសអាចខលចេញ", "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ (only emoji that has its own token)",
    "Hello", " Hello", "  Hello", "   Hello", "    Hello", "    Hello\n    Hello", " (", "\n =", "' era",
    "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～", "!!!!!!", "3", "33", "333", "3333", "33333",
    "333333", "3333333", "33333333", "333333333", "Cửa Việt", " discards", "ied 4 ½ months", "Führer",
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀",
    "The llama (/ˈlɑːmə/; 🦙Spanish pronunciation: [ˈʎama]) (Lama glama) is a domesticated South American camelid.",
    "HelloWorld", "helloWorld", "HTTPServer", "iPhone", "McDonald's", "ÉcoleÉcole", "ǅemal ǈubica", "ʰello",
    "日本語のテキスト、そして漢字。", "中文，標點！", "한국어 텍스트입니다.", "İstanbul'da", "Straße",
    "don't", "DON'T", "we've", "WE'VE", "I'm", "I'M", "they're", "THEY'RE", "it'll", "IT'LL", "she'd",
    "'s", "''s", "'", "''", "rock'n'roll", "O'Neil's", "x'S", "a'Ll", "'ve'", "don’t",
    "a/b//c", "x/\n/y", "!!\n/\nx", "path/to/file.go\n", "http://example.com/a?b=c&d=e#f",
    "\r\n", "a\r\nb", "a\rb", "  \r\n  ", "tab\tsep\tvalues\n1\t2\t3\n",
    "\u00a0", "a\u00a0b", "a\u3000b", "a\u2003\u2003b", "a\u2028b", "a\u2029b", "\u000b\u000c",
    "\x00", "a\x00b", "\x1b[31mred\x1b[0m", "\x7f", "\x1f\x1e", "\ue000\uf8ff",
    "e\u0301", "\u0301", "\u0301abc", "ab\u0301c", "नमस्ते", "สวัสดี", "👍🏽", "🇫🇷🇩🇪", "1️⃣", "❤️", "👨‍👩‍👧‍👦",
    "人々は〇〇で", "㐀㐁𠀀𠀁abc", "⺀⺁⼀ radicals", "〡〢〣 Hangzhou", "x々y", "Straße中文Ab", "ÀB中Éc",
]

CODE = [
    "def {f}({a}, {b}):\n{i}return {a} * {n} + {b}\n",
    "func {F}({a} int) error {{\n{i}if {a} > {n} {{\n{i}{i}return fmt.Errorf(\"{f}: %d\", {a})\n{i}}}\n{i}return nil\n}}\n",
    "for (int {a} = 0; {a} < {n}; ++{a}) {{ {b}[{a}] += {a}*{a}; }}",
    "const {f} = ({a}) => {a}.map(x => x ** {n}).filter(Boolean);",
    "{i}# {F}: TODO(user) fix {a}\n{i}{a} = [{n}, {n}, {n}]\r\n",
    "SELECT {a}, COUNT(*) FROM {f} WHERE {b} >= {n} GROUP BY {a};",
    "if [ -f \"${a}\" ]; then\n{i}echo \"{f}\" >> /tmp/{b}.log 2>&1\nfi",
    "<div class=\"{f}\">{F}&nbsp;{n}</div>",
    "{{\"{a}\": {n}, \"{b}\": [\"{f}\", null, true]}}",
    "#include <{f}.h>\n{i}std::vector<int> {a}{{{n}}};",
    "{a}:={b}+{n}//{F}\n",
    "x={n};y=x<<{n}|0x{n}FF;z=~y&{n}",
]
IDENTS = ["x", "y", "i", "idx", "value", "buf", "tokenIDs", "_private", "snake_case_name", "camelCaseName",
          "HTTPHandler", "n2", "α", "données", "变量", "item_42"]
INDENTS = ["", " ", "  ", "    ", "\t", "\t\t", "        "]

CHINESE = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴"
HIRAGANA = [chr(c) for c in range(0x3041, 0x3097)]
KATAKANA = [chr(c) for c in range(0x30A1, 0x30FB)] + ["ー"]
HANGUL = [chr(0xAC00 + k) for k in range(0, 11172, 37)]
CJK_PUNCT = list("，。、「」『』！？：；（）【】《》〈〉・…—～　") + ["１２３", "ＡＢＣ", "ａｂｃ"]
EMOJI = ["🦙", "🚀", "😁", "😶‍🌫️", "✅", "👍", "👍🏽", "👩🏾‍💻", "🇯🇵", "🇺🇸", "1️⃣", "#️⃣", "❤️", "♥", "☺️",
         "👨‍👩‍👧‍👦", "🏳️‍🌈", "🤖", "🔥", "💯", "🙈🙉🙊", "⭐", "©", "®", "™", "→", "∑", "≈", "∞", "✓", "½", "¾"]
SCRIPTS = ["Καλημέρα κόσμε", "Привет, мир", "Ёлка и ёж", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया",
           "हिन्दी में लिखा", "সুপ্রভাত", "தமிழ் எழுத்து", "สวัสดีชาวโลก", "ภาษาไทย", "Tiếng Việt có dấu",
           "Ça va très bien", "Ärger über Öl", "ĳssel", "Łódź", "Crème brûlée", "ǅungla", "ＦＵＬＬ ｗｉｄｔｈ",
           "ᎠᏍᎦᏯ", "Ⅻ Ⅳ ⅷ", "ⓐⓑⓒ", "ℌℑℜ", "ﬁﬂ", "µs", "ΩK", "ǲ", "Ǆ ǅ ǆ", "ǈ", "ʰʲ", "ªº"]
WORDS = ["the", "The", "THE", "a", "model", "Model", "experts", "MoE", "router", "top-k", "token", "tokens",
         "GPU", "gpu", "x86_64", "UTF-8", "e.g.", "i.e.", "etc.", "Mr.", "naïve", "café", "coöperate",
         "résumé", "São", "Paulo", "hello", "world", "foo", "bar", "baz", "JSON", "iOS", "eBay", "macOS",
         "snake_case", "kebab-case", "CamelCase", "ALLCAPS", "lowercase", "MiXeD", "über", "Über", "ÜBER"]
CONTRACTED = ["don't", "Don't", "DON'T", "can't", "won't", "I'm", "I'M", "i'm", "you're", "YOU'RE", "we've",
              "We'Ve", "they'll", "THEY'LL", "she'd", "SHE'D", "it's", "IT'S", "It'S", "the dog's", "James'",
              "'til", "'90s", "o'clock", "y'all", "ma'am", "rock 'n' roll", "'s'", "''ll", "'''", "x'd",
              "l'homme", "dell'arte", "aren’t"]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>",
            "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|reserved_special_token_3|>",
            "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
            "<｜tool▁calls▁begin｜>", "<｜fim▁hole｜>", "<think>", "</think>", "<tool_call>", "</tool_call>",
            "<|fim_prefix|>", "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>",
            "<|call|>", "<|constrain|>", "<|startoftext|>", "<|endofprompt|>", "<|vision_pad|>"]
SPECIAL_TEMPLATES = [
    "<|im_start|>{role}\n{text}<|im_end|>\n",
    "<|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>",
    "<｜begin▁of▁sentence｜><｜User｜>{text}<｜Assistant｜><think>\n{text}\n</think>",
    "<|start|>{role}<|channel|>final<|message|>{text}<|return|>",
    "<|startoftext|>{text}<|endoftext|>",
    "<tool_call>\n{{\"name\": \"{text}\"}}\n</tool_call>",
    "<|fim_prefix|>{text}<|fim_suffix|>{text}<|fim_middle|>",
]
ROLES = ["user", "assistant", "system", "tool"]
WS = [" ", "  ", "   ", "    ", "\t", "\n", "\n\n", " \n", "\n ", "\r\n", "\t\t", " \t ", "\u00a0", "\u3000",
      "\u2003", "\u2009", "\u202f", "\u2028", "\u000b", "\u000c", "\n\n\n\n", "        "]
DIGIT_PARTS = ["0", "7", "42", "123", "1234", "12345", "123456", "1234567", "12345678", "123456789",
               "1234567890123", "3.14159", "1,000,000", "1 000 000", "2026-05-22", "12:34:56", "0x1F", "1e-9",
               "-42", "+7", "１２３４", "٣٤٥٦", "४२", "²³", "₁₂", "½", "Ⅻ", "①②③", "v1.2.3", "abc123def",
               "123abc", "a1b2c3", "10%", "$5.99", "€20", "#1", "No.7", "2^10", "1/2", "3×4"]


def pick(pool):
    return pool[rng.randrange(len(pool))]


def code():
    names = {k: pick(IDENTS) for k in "abf"}
    return pick(CODE).format(a=names["a"], b=names["b"], f=names["f"], F=names["f"].capitalize(),
                             n=rng.randrange(0, 100000), i=pick(INDENTS[1:]))


def cjk():
    out = []
    for _ in range(rng.randrange(1, 8)):
        k = rng.randrange(7)
        if k == 0:
            out.append("".join(rng.choice(CHINESE) for _ in range(rng.randrange(1, 7))))
        elif k == 1:
            out.append("".join(rng.choice(HIRAGANA) for _ in range(rng.randrange(1, 6))))
        elif k == 2:
            out.append("".join(rng.choice(KATAKANA) for _ in range(rng.randrange(1, 6))))
        elif k == 3:
            out.append("".join(rng.choice(HANGUL) for _ in range(rng.randrange(1, 5))))
        elif k == 4:
            out.append(pick(CJK_PUNCT))
        elif k == 5:
            out.append(pick(WORDS) if rng.random() < 0.7 else pick(DIGIT_PARTS))
        else:
            out.append(pick(WS[:6]))
    return "".join(out)


def sep():
    return pick(WS) if rng.random() < 0.3 else (" " if rng.random() < 0.8 else "")


def from_pool(pool, n):
    return "".join(pick(pool) + sep() for _ in range(n)).rstrip(" ") if rng.random() < 0.7 else \
        "".join(pick(pool) + sep() for _ in range(n))


def emoji():
    return from_pool(EMOJI + WORDS, rng.randrange(1, 7))


def digits():
    parts = []
    for _ in range(rng.randrange(1, 6)):
        if rng.random() < 0.5:
            parts.append("".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 16))))
        else:
            parts.append(pick(DIGIT_PARTS))
        parts.append(pick([" ", "", "", ", ", ".", "-", "\n", "  ", pick(WORDS)]))
    return "".join(parts)


def whitespace():
    parts = []
    for _ in range(rng.randrange(1, 6)):
        parts.append("".join(pick(WS) for _ in range(rng.randrange(1, 4))))
        if rng.random() < 0.7:
            parts.append(pick(WORDS + CONTRACTED + DIGIT_PARTS + EMOJI + ["!", "?", "...", "—", "/"]))
    return "".join(parts)


def contractions():
    return from_pool(CONTRACTED + WORDS + ["!", ",", "."], rng.randrange(1, 6))


def specials():
    if rng.random() < 0.6:
        t = pick(SPECIAL_TEMPLATES)
        return t.format(role=pick(ROLES), text=from_pool(WORDS + CONTRACTED + EMOJI, rng.randrange(1, 5)))
    s = pick(SPECIALS)
    k = rng.randrange(5)
    if k == 0:
        return " " + s + " "
    if k == 1:
        return s[: rng.randrange(1, len(s))]  # a broken one
    if k == 2:
        return s + s
    if k == 3:
        return "<" + s + ">"
    return pick(WORDS) + s + pick(WORDS)


def scripts():
    return from_pool(SCRIPTS + WORDS, rng.randrange(1, 5))


def mixed():
    gens = [code, cjk, emoji, digits, whitespace, contractions, specials, scripts]
    return "".join(pick(gens)() + pick(["", " ", "\n", "\t", ". "]) for _ in range(rng.randrange(2, 5)))


GENERATORS = [(code, 250), (cjk, 300), (emoji, 200), (digits, 300), (whitespace, 300), (contractions, 250),
              (specials, 300), (scripts, 200), (mixed, 300)]

# Whitespace JavaScript's \s disagrees on, and a contraction only full
# (?i:) folding knows: for the splitter test alone.
SPLITTER_ONLY = ["a\u0085b", "a \u0085 b", "\u0085", "x\ufeffy", "\ufeff", "it'\u017f", "IT'\u017f x",
                 "a\u0085\n b", "  \u0085  x"]


def corpus():
    seen, out = set(), []

    def add(s):
        s = unicodedata.normalize("NFC", s)
        if s not in seen:
            seen.add(s)
            out.append(s)

    for s in FIXED:
        add(s)
    for gen, n in GENERATORS:
        for _ in range(n):
            add(gen())
    return out


def main():
    strings = corpus()
    for s in strings:
        assert not any(c in s for c in SPLITTER_ONLY_CHARS), repr(s)
    with open("corpus.json", "w", encoding="utf-8") as f:
        json.dump({"note": "generated by pretok.py", "strings": strings, "splitter_only": SPLITTER_ONLY},
                  f, ensure_ascii=False, indent=0)
        f.write("\n")
    texts = strings + SPLITTER_ONLY
    golden = {
        "note": "generated by pretok.py with the regex module %s" % regex.__version__,
        "pre": PRE,
        "patterns": {k: {"regex": v, "splits": [[len(p) for p in split(t, v)] for t in texts]}
                     for k, v in PATTERNS.items()},
    }
    with gzip.GzipFile("splits.json.gz", "wb", mtime=0) as f:
        f.write(json.dumps(golden, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    print(len(strings), "strings,", len(SPLITTER_ONLY), "splitter-only,", len(PATTERNS), "patterns,",
          len(PRE), "pre values")


SPLITTER_ONLY_CHARS = ["\u0085", "\ufeff", "\u017f"]

if __name__ == "__main__":
    main()
