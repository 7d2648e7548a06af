import fs from 'fs';
import { createRequire } from 'module';
const require = createRequire(import.meta.url);
const gpt = require('./gpt-3-encoder-1.1.4/package/index.js');
const llama = (await import('./llama-tokenizer-js-1.2.2/package/llama-tokenizer.js')).default;
const mistral = (await import('./mistral-tokenizer-js-1.0.0/package/mistral-tokenizer.js')).default;
const out = './';
const texts = [
  "Hello world, experts!", "grabbed", " grabbed", "           grabbed", "\n", " \n", "\ttabs\t\t\t\tout here",
  "ax\n####\nboo", "镇", "🦙", "🦙Ꙋ", "Ꙋ🦙", "The list type is a mutable sequence.",
  "def f(x):\n    return x * 2\n", "It's 2026 and we've 123456 tokens; don't panic!", "naïve café — ½ ✓",
  "  leading and trailing spaces  ", "UPPER lower MiXeD 3.14159", "line1\r\nline2\n\n\nline3",
  "The llama (/ˈlɑːmə/; 🦙Spanish pronunciation: [ˈʎama]) (Lama glama) is a domesticated South American camelid.",
];
function dump(name, tok) {
  const vocab = tok.vocabById;
  fs.writeFileSync(out + name + '-vocab.txt', vocab.join('\n'));
  const merges = [...tok.merges.entries()].sort((a, b) => a[1] - b[1]).map(e => e[0]);
  fs.writeFileSync(out + name + '-merges.txt', merges.join('\n'));
  const cases = texts.map(t => ({ text: t, tokens: tok.encode(t, false, true) }));
  fs.writeFileSync(out + name + '-cases.json', JSON.stringify(cases, null, 1));
}
dump('llama', llama);
dump('mistral', mistral);
const cases = texts.map(t => ({ text: t, tokens: gpt.encode(t) }));
fs.writeFileSync(out + 'gpt2-cases.json', JSON.stringify(cases, null, 1));
console.log('ok');
