// The bundle's Python, checked here without torch: both files compile, and studio_data.py, run by
// python3 on the bundle's JSONL, renders, tokenizes, masks and packs exactly the rows the studio
// stored (its hash agrees), for the demo tokenizer with ChatML and for Llama 3.1's with its own
// template and with Unsloth's ChatML EOS mapping. python3 has no tokenizer library here, so it
// gets a stand-in whose encode() answers with transformers.js's ids for the texts it asks for
// (asked again until none is missing); every other step is studio_data.py's own.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PrepareOptions } from '../src/data/prepare-options.ts';
import type { LoadedTokenizer } from '../src/data/tokenizer-load.ts';
import { DEFAULT_TRAIN_SETTINGS } from '../src/engine/train/loop.ts';
import { planRunBundle } from '../src/io/run-bundle.ts';
import { writeRunBundle } from '../src/io/run-bundle-node.ts';
import { DEMO_DATA, demoTokenizer, prepareBundleData, PREPARE } from '../tools/reference/run_bundle_check.ts';
import { llamaTokenizer } from './fixtures/data/demo.ts';

// The demo's first 120 records: every kind of conversation it has, at a test's speed.
const DEMO_HEAD = new TextEncoder().encode(`${readFileSync(DEMO_DATA, 'utf8').split('\n').slice(0, 120).join('\n')}\n`);
const HAS_PYTHON = spawnSync('python3', ['-c', 'import jinja2'], { stdio: 'ignore' }).status === 0;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A bundle (no adapter, no training) of the demo JSONL prepared with `tok` and `prepare`. */
async function bundleFor(tok: LoadedTokenizer, prepare: PrepareOptions): Promise<string> {
  const { manifest, template, data } = await prepareBundleData(tok, DEMO_HEAD, prepare);
  const plan = await planRunBundle(
    {
      modelId: tok.id,
      baseQuantization: 'nf4',
      settings: { ...DEFAULT_TRAIN_SETTINGS, batchSize: 2, gradAccum: 2 },
      prepare: manifest.options,
      template,
      tokenizer: { info: tok.info, files: tok.files },
      data,
      datasetName: 'demo',
    },
    'folder',
  );
  const dir = mkdtempSync(join(tmpdir(), 'run-bundle-py-'));
  dirs.push(dir);
  return (await writeRunBundle(plan, dir)).path;
}

// python3 side: studio_data.py with a stand-in tokenizer over ids computed here.
const HARNESS = String.raw`
import json, sys
bundle, known_path, vocab_path, split, force_pieces = sys.argv[1:6]
sys.path.insert(0, bundle)
import studio_data
known = json.load(open(known_path, encoding="utf-8"))
vocab = json.load(open(vocab_path, encoding="utf-8"))
missing = set()

class Added:
    def __init__(self, content, special):
        self.content, self.special = content, special

class StandIn:
    added_tokens_decoder = {t["id"]: Added(t["content"], t["special"]) for t in vocab["added"]}
    def __call__(self, text, add_special_tokens=True):
        assert add_special_tokens is False
        if text not in known:
            missing.add(text)
            return {"input_ids": [0]}
        return {"input_ids": list(known[text])}
    def get_vocab(self):
        return vocab["vocab"]

if force_pieces == "1":
    studio_data.Tokens._byte_lengths = lambda self: None
settings = studio_data.load_settings(bundle)
rows, report = studio_data.load_rows(bundle + "/data", split, StandIn(), settings, 0)
print(json.dumps({"missing": sorted(missing), "report": report}))
`;

interface PyReport {
  split: string;
  documents: number;
  skipped: Record<string, number>;
  byte_level: boolean;
  packing: string;
  same_tokens: boolean | null;
  first_difference?: string;
  rows: number;
}

/** Runs studio_data.load_rows on the bundle until the stand-in tokenizer knows every text asked. */
function pythonRows(bundle: string, tok: LoadedTokenizer, split: 'train' | 'validation', forcePieces = false): PyReport {
  const work = mkdtempSync(join(tmpdir(), 'run-bundle-harness-'));
  dirs.push(work);
  const json = JSON.parse(readFileSync(join(bundle, 'tokenizer', 'tokenizer.json'), 'utf8').toString()) as { model: { vocab: Record<string, number> }; added_tokens: { id: number; content: string; special: boolean }[] };
  const vocab = { ...json.model.vocab };
  for (const t of json.added_tokens) vocab[t.content] = t.id;
  writeFileSync(join(work, 'vocab.json'), JSON.stringify({ vocab, added: json.added_tokens }));
  writeFileSync(join(work, 'harness.py'), HARNESS);
  const known: Record<string, number[]> = {};
  for (let round = 0; round < 6; round++) {
    writeFileSync(join(work, 'known.json'), JSON.stringify(known));
    const out = execFileSync('python3', [join(work, 'harness.py'), bundle, join(work, 'known.json'), join(work, 'vocab.json'), split, forcePieces ? '1' : '0'], {
      encoding: 'utf8',
      maxBuffer: 1 << 28,
    });
    const { missing, report } = JSON.parse(out) as { missing: string[]; report: PyReport };
    if (missing.length === 0) return report;
    for (const text of missing) known[text] = tok.tokenizer.encode(text, { add_special_tokens: false });
  }
  throw new Error('python kept asking for new texts');
}

describe.skipIf(!HAS_PYTHON)('studio_data.py gives the studio\'s rows', () => {
  let demo: LoadedTokenizer;
  let llama: LoadedTokenizer;
  beforeAll(async () => {
    demo = await demoTokenizer();
    llama = await llamaTokenizer();
  });

  it('compiles train.py and studio_data.py', async () => {
    const bundle = await bundleFor(demo, PREPARE);
    const r = spawnSync('python3', ['-m', 'py_compile', join(bundle, 'train.py'), join(bundle, 'studio_data.py')], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('demo tokenizer, ChatML, packed, responses only: both splits, by bytes and by pieces', async () => {
    const bundle = await bundleFor(demo, PREPARE);
    const rows = JSON.parse(readFileSync(join(bundle, 'data/rows.json'), 'utf8'));
    const train = pythonRows(bundle, demo, 'train');
    expect(train).toMatchObject({ packing: 'studio', same_tokens: true, byte_level: true, skipped: {}, documents: rows.train.records, rows: rows.train.rows });
    expect(pythonRows(bundle, demo, 'validation')).toMatchObject({ packing: 'studio', same_tokens: true, rows: rows.validation.rows });
    expect(pythonRows(bundle, demo, 'train', true)).toMatchObject({ byte_level: false, same_tokens: true });
  });

  it('unpacked, every token trained, and cut at a short max length', async () => {
    const prepare: PrepareOptions = { ...PREPARE, packing: false, trainOnResponsesOnly: false, maxSeqLength: 24, validationFraction: 0 };
    const bundle = await bundleFor(demo, prepare);
    expect(pythonRows(bundle, demo, 'train')).toMatchObject({ packing: 'studio', same_tokens: true });
  });

  it('Llama 3.1 tokenizer: its own template (BOS in the template, trimmed content) and ChatML mapped onto its EOS', async () => {
    const own = await bundleFor(llama, { ...PREPARE, template: 'llama3', validationFraction: 0 });
    expect(JSON.parse(readFileSync(join(own, 'tokenization.json'), 'utf8'))).toMatchObject({ template_adds_bos: true, end_of_turn: '<|eot_id|>' });
    expect(pythonRows(own, llama, 'train')).toMatchObject({ same_tokens: true, byte_level: true });

    const chatml = await bundleFor(llama, { ...PREPARE, template: 'chatml', validationFraction: 0 });
    const t = JSON.parse(readFileSync(join(chatml, 'tokenization.json'), 'utf8'));
    expect(t.eos_rename).toEqual({ from: '<|eot_id|>', to: '<|im_end|>' });
    expect(readFileSync(join(chatml, 'chat_template.jinja'), 'utf8')).toContain('<|eot_id|>');
    expect(t.export_chat_template).toContain('<|im_end|>');
    expect(pythonRows(chatml, llama, 'train')).toMatchObject({ same_tokens: true });
  });

  it('says where the tokens differ when the tokenization settings were tampered with', async () => {
    const bundle = await bundleFor(demo, { ...PREPARE, validationFraction: 0 });
    const path = join(bundle, 'tokenization.json');
    const t = JSON.parse(readFileSync(path, 'utf8'));
    writeFileSync(path, JSON.stringify({ ...t, bos_id: 7 }));
    const r = pythonRows(bundle, demo, 'train');
    expect(r.same_tokens).toBe(false);
    expect(r.first_difference).toBe('row 0, token 0: input_ids is 7 here and 508 in the studio');
  });

  it('packs data it was not given by the studio on its own, and says so', async () => {
    const bundle = await bundleFor(demo, { ...PREPARE, validationFraction: 0 });
    const path = join(bundle, 'data/train.jsonl');
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
    writeFileSync(path, `${[...lines, ...lines.slice(0, 5)].join('\n')}\n`);
    const r = pythonRows(bundle, demo, 'train');
    expect(r).toMatchObject({ packing: 'first-fit', same_tokens: null, documents: lines.length + 5 });
  });
});
