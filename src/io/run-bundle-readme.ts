// README.md of a run bundle: what is in it, the exact commands, the settings, how the Python side
// gets the studio's tokens, and the Axolotl keys the bundle relies on.

import { AXOLOTL_FILE, DDP_CONFIG_FILE, FSDP_CONFIG_FILE, HF_OPTIMIZER, HF_SCHEDULER, type BundleRunFacts } from './run-bundle-configs.ts';

export interface ReadmeFacts extends BundleRunFacts {
  datasetName: string;
  trainLines: number;
  trainRows: number;
  trainedTokens: number;
  validationLines: number | null;
  /** Steps behind the bundled adapter, and the steps of the studio's run. */
  adapterStep: number | null;
  totalSteps: number;
  /** The studio's losses, for comparison (a few). */
  losses: readonly { step: number; loss: number }[];
  templateId: string;
  eosRename: { from: string; to: string } | null;
  prependsBos: boolean;
  bosToken: string | null;
  date: string | null;
}

const num = (x: number): string => (Number.isInteger(x) ? String(x) : x >= 1e-3 ? String(Number(x.toPrecision(6))) : x.toExponential(2));
const code = (s: string): string => `\`${s.replace(/`/g, "'")}\``;

/** The top-level Axolotl keys the bundle writes, and what each relies on (the README's list). */
export const AXOLOTL_KEY_NOTES: readonly (readonly [readonly string[], string])[] = [
  [['base_model', 'tokenizer_config'], 'the base model; the bundle\'s tokenizer/ folder when it has one'],
  [['adapter', 'load_in_4bit'], '`qlora` with a 4-bit base (bitsandbytes) when the studio trained over NF4, else `lora`'],
  [['lora_model_dir'], 'starts from the studio\'s adapter (adapter/), when the bundle has one'],
  [['lora_r', 'lora_alpha', 'lora_dropout', 'lora_target_modules', 'peft_use_rslora'], 'the LoRA settings (Axolotl takes an integer alpha)'],
  [['chat_template', 'chat_template_jinja'], '`jinja` with the template text the studio rendered (Axolotl 0.8 or later)'],
  [['eot_tokens'], 'the text that ends an assistant turn, trained with the turn (`train_on_eos: turn`)'],
  [['special_tokens'], 'the pad token, when the tokenizer names one'],
  [
    ['datasets', 'test_datasets'],
    'the JSONL files: `type: chat_template` with `field_messages: messages`, `message_property_mappings`, `roles_to_train` and `train_on_eos` (`type: completion`, `field: text` for plain text)',
  ],
  [['train_on_inputs'], 'false: the loss covers the assistant turns only'],
  [['sequence_len', 'sample_packing', 'eval_sample_packing', 'pad_to_sequence_len'], 'the rows: their length, and packing'],
  [['flash_attention'], 'packing keeps documents apart through flash-attn\'s variable-length attention (flash-attn installed)'],
  [['micro_batch_size', 'gradient_accumulation_steps'], 'per GPU in Axolotl (train.py\'s are for all GPUs together)'],
  [['num_epochs', 'max_steps', 'learning_rate', 'lr_scheduler', 'warmup_steps', 'warmup_ratio'], 'the schedule, by transformers\' scheduler names'],
  [['optimizer', 'weight_decay', 'max_grad_norm', 'seed'], 'transformers\' optimizer names (`adamw_bnb_8bit`, `adamw_torch`)'],
  [['val_set_size', 'eval_steps', 'gradient_checkpointing', 'bf16', 'logging_steps', 'dataset_prepared_path', 'output_dir'], 'evaluation, memory and output'],
];

export function bundleReadme(f: ReadmeFacts): string {
  const ddp = `accelerate launch --config_file ${DDP_CONFIG_FILE}`;
  const steps = f.maxSteps !== null ? `${f.maxSteps} steps` : `${num(f.epochs)} epoch${f.epochs === 1 ? '' : 's'} (${f.totalSteps} steps)`;
  const warmup = f.warmupSteps !== null ? `${f.warmupSteps} step${f.warmupSteps === 1 ? '' : 's'}` : `${num(f.warmupRatio ?? 0)} of the steps`;
  const settings: [string, string, string, string][] = [
    ['LoRA rank', String(f.loraR), 'LORA_R', 'lora_r'],
    ['LoRA alpha', num(f.loraAlpha), 'LORA_ALPHA', 'lora_alpha'],
    ['rsLoRA (alpha / sqrt(r))', String(f.useRslora), 'USE_RSLORA', 'peft_use_rslora'],
    ['target modules', f.targetModules.join(', '), 'TARGET_MODULES', 'lora_target_modules'],
    ['LoRA dropout', num(f.loraDropout), 'LORA_DROPOUT', 'lora_dropout'],
    ['learning rate', num(f.learningRate), 'LEARNING_RATE', 'learning_rate'],
    ['schedule', `${f.lrScheduler} (${HF_SCHEDULER[f.lrScheduler]})`, 'LR_SCHEDULER', 'lr_scheduler'],
    ['warmup', warmup, 'WARMUP_STEPS / WARMUP_RATIO', 'warmup_steps / warmup_ratio'],
    ['rows per micro-batch', String(f.batchSize), 'BATCH_SIZE', 'micro_batch_size'],
    ['gradient accumulation', String(f.gradAccum), 'GRAD_ACCUM', 'gradient_accumulation_steps'],
    ['length', steps, 'EPOCHS / MAX_STEPS', 'num_epochs / max_steps'],
    ['optimizer', `${f.optimizer} (${HF_OPTIMIZER[f.optimizer]})`, 'OPTIMIZER', 'optimizer'],
    ['weight decay', num(f.weightDecay), 'WEIGHT_DECAY', 'weight_decay'],
    ['max grad norm', num(f.maxGradNorm), 'MAX_GRAD_NORM', 'max_grad_norm'],
    ['max length (tokens)', String(f.maxSeqLength), 'MAX_SEQ_LENGTH', 'sequence_len'],
    ['packing (attention per document)', String(f.packing), 'PACKING', 'sample_packing'],
    ['loss on responses only', String(f.trainOnResponsesOnly), 'TRAIN_ON_RESPONSES_ONLY', 'train_on_inputs (negated)'],
    ['seed', String(f.seed), 'SEED', 'seed'],
    ['base weights', f.quantization === 'nf4' ? 'NF4 4-bit (QLoRA)' : '16/32-bit', 'QUANTIZATION', 'load_in_4bit'],
  ];
  const resumeCommand = f.adapterStep !== null ? [`# continue the studio's run from its adapter (step ${f.adapterStep} of ${f.totalSteps}): the same rows and schedule, from step ${f.adapterStep + 1}`, `${ddp} --num_processes 2 train.py --resume-adapter`] : [];
  const lines = [
    `# Run bundle: ${f.modelId} + LoRA on ${f.datasetName}`,
    '',
    `Written by WebTune Studio${f.date ? ` on ${f.date}` : ''}. It trains the studio's LoRA run again, or on, on GPUs: ` +
      '`train.py` uses transformers, PEFT and accelerate and nothing of the studio; `axolotl.yaml` holds the same settings for Axolotl.',
    '',
    '## Files',
    '',
    '| file | what |',
    '|---|---|',
    '| `train.py` | the training script; its first lines are the studio run\'s settings |',
    '| `studio_data.py` | the studio\'s tokenization and packing, redone in Python (train.py imports it) |',
    '| `tokenization.json`, `chat_template.jinja` | how the studio tokenized: the template text it rendered, BOS/EOS/pad, end of turn |',
    `| \`data/train.jsonl\` | the ${f.trainLines} ${f.dataKind === 'chat' ? 'conversations' : 'texts'} the studio trained on, in its order (${f.trainRows} rows, ${f.trainedTokens} trained tokens) |`,
    ...(f.validationLines !== null ? [`| \`data/validation.jsonl\` | the ${f.validationLines} held-out records (eval loss) |`] : []),
    '| `data/rows.json` | which records share each packed row, and a hash of the studio\'s rows |',
    ...(f.hasTokenizer ? ['| `tokenizer/` | the tokenizer the studio used |'] : []),
    ...(f.hasAdapter ? [`| \`adapter/\` | the studio's PEFT adapter after ${f.adapterStep} of ${f.totalSteps} steps |`] : []),
    `| \`${DDP_CONFIG_FILE}\` | accelerate: one process per GPU, each with the whole model (DDP) |`,
    `| \`${FSDP_CONFIG_FILE}\` | accelerate: the model sharded over the GPUs (FSDP), for models that do not fit one |`,
    `| \`${AXOLOTL_FILE}\` | the same settings in Axolotl's keys |`,
    '',
    '## Run',
    '',
    `Python with torch, transformers, peft and accelerate (pip install torch transformers peft accelerate)${f.quantization === 'nf4' || f.optimizer === 'adamw_8bit' ? ', and bitsandbytes for the 4-bit base and 8-bit AdamW' : ''}. From this folder:`,
    '',
    '```sh',
    '# two GPUs (DDP)',
    `${ddp} --num_processes 2 train.py`,
    '# one GPU',
    'accelerate launch --num_processes 1 train.py',
    '# any number N of GPUs on one machine',
    `${ddp} --num_processes N train.py`,
    '# the base model from a local folder instead of the Hub (no network needed)',
    `${ddp} --num_processes 2 train.py --model /path/to/model`,
    ...resumeCommand,
    '# a model that does not fit one GPU: sharded over 8 GPUs (FSDP), bf16',
    `accelerate launch --config_file ${FSDP_CONFIG_FILE} --num_processes 8 train.py --dtype bfloat16`,
    '# a few steps, to compare the losses with the studio\'s',
    `${ddp} --num_processes 2 train.py --max-steps 3`,
    '# Axolotl',
    `axolotl train ${AXOLOTL_FILE}`,
    '```',
    '',
    'Each step prints one JSON line (`{"step": 1, "loss": ..., "lr": ..., "grad_norm": ..., "trained_tokens": ...}`), ' +
      'after lines about the data (`"event": "data"`, with `"same_tokens"`) and the run (`"event": "start"`). ' +
      'The adapter is saved in `output/` (`--output-dir`); `--log-file FILE` also keeps the step lines. `python train.py --help` lists every flag.',
    '',
    ...(f.losses.length > 0
      ? ['The studio\'s losses:', '', '| step | loss |', '|---|---|', ...f.losses.map((l) => `| ${l.step} | ${num(l.loss)} |`), '']
      : []),
    '## Settings',
    '',
    '| setting | value | train.py | Axolotl |',
    '|---|---|---|---|',
    ...settings.map(([what, value, py, ax]) => `| ${what} | ${value} | ${code(py)} | ${code(ax)} |`),
    '',
    '## Several GPUs',
    '',
    `A step is ${f.batchSize} x ${f.gradAccum} rows for all GPUs together, as in the studio: each of N processes takes every N-th row of the step, ` +
      'in micro-batches of up to BATCH_SIZE rows, and the loss is the mean over the trained tokens of the whole step. ' +
      'So any N gives the studio\'s losses and gradients; to use more GPUs for more data per step, raise `--grad-accum` (or `--batch-size`).',
    '',
    '## The studio\'s tokens',
    '',
    'train.py tokenizes the JSONL the way the studio did, step by step (`studio_data.py`):',
    '',
    `1. The chat template is \`chat_template.jinja\`: the text the studio rendered (template "${f.templateId}"), rendered with Jinja set up as transformers and @huggingface/jinja set it up (trim_blocks, lstrip_blocks), with \`bos_token\` and \`eos_token\` from \`tokenization.json\`.` +
      (f.eosRename
        ? ` It is Unsloth's ChatML with its EOS mapping: the tokenizer has no ${code(f.eosRename.to)} token, so the EOS token ${code(f.eosRename.from)} stands where ChatML says ${code(f.eosRename.to)} (the same ids Unsloth's renamed tokenizer gives); \`tokenization.json\` keeps the plain ChatML text as \`export_chat_template\`.`
        : ''),
    '2. The rendered text is encoded once, with `add_special_tokens=False`: special-token texts in it (such as the end-of-turn marker) become their single ids, as the tokenizer\'s added tokens, and nothing is added around it.' +
      (f.prependsBos ? ` Then the BOS ${code(f.bosToken ?? '')} is put first, as the tokenizer adds it on a plain encode and the template does not write one.` : ' No BOS is added (the template writes it, or the tokenizer adds none).'),
    `3. ${f.trainOnResponsesOnly ? 'Only the assistant turns count in the loss: each turn\'s content through its end-of-turn text' : 'Every token counts in the loss'} (${code(f.endOfTurn)}). The spans are found by rendering the conversation turn by turn and mapped to tokens by their bytes (byte-level BPE) or by tokenizing the pieces between them.`,
    `4. Records longer than ${f.maxSeqLength} tokens are cut there (or dropped, as tokenization.json says). ` +
      (f.packing ? 'Documents are packed into rows as the studio packed them (`data/rows.json`): each document attends to itself only, and its position ids restart at 0.' : 'Each record gets a row of its own, padded.'),
    '',
    'Before training, train.py hashes its rows and compares with the studio\'s hash: `"same_tokens": true` means every id and every loss-mask bit is the studio\'s. ' +
      'On a difference it stops and says where (use the bundle\'s `tokenizer/`; `--allow-token-mismatch` trains anyway). ' +
      'With another `data/train.jsonl` (say, the whole dataset) it tokenizes the same way and packs first-fit after a seeded shuffle: then there is no studio hash to compare with.',
    '',
    '## What differs from the studio',
    '',
    '- The LoRA init draws other random numbers (B starts at zero in both, so a fresh run\'s first loss is the base model\'s and matches; later steps drift apart). `--resume-adapter` starts from the studio\'s weights instead.',
    '- A resumed run starts AdamW afresh (the studio\'s optimizer state is not in the bundle); dropout masks differ.',
    `- ${f.quantization === 'nf4' ? 'The studio\'s NF4 base is bitsandbytes\' NF4 (double quantization): `--quantization nf4` gives the same 4-bit weights; `--quantization none` trains over the 16-bit weights instead.' : 'The studio held the base in 16/32 bits; `--dtype` picks the weights\' dtype (float32 computes as the studio did).'}`,
    '',
    '## Axolotl',
    '',
    `\`${AXOLOTL_FILE}\` relies on these keys:`,
    '',
    ...AXOLOTL_KEY_NOTES.map(([keys, why]) => `- ${keys.map(code).join(', ')}: ${why}`),
    '',
    'Axolotl finds the trained spans with its own turn-by-turn tokenization and packs with its own sampler, so its tokens can differ slightly from the studio\'s; train.py gives the studio\'s exactly.',
    '',
  ];
  return lines.join('\n');
}
