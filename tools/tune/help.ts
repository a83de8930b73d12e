// `--help`: one line per flag, made from the same tables the parser reads.
import { RUN_FLAGS } from './args.ts';
import { DATA_FLAGS, DATA_KEYS, dataDefault, dataFlagName } from './data-flags.ts';
import { describeKind, type ValueKind } from './flag-values.ts';
import { TRAIN_FLAGS, TRAIN_KEYS, trainDefault, trainFlagName } from './train-flags.ts';

function valueWord(kind: ValueKind): string {
  switch (kind.type) {
    case 'bool':
      return '';
    case 'enum':
      return kind.values.join('|');
    case 'list':
      return 'NAMES';
    case 'int':
      return 'N';
    default:
      return 'X';
  }
}

function line(flag: string, value: string, help: string): string {
  const left = `  ${flag}${value ? ` ${value}` : ''}`;
  return left.length < 34 ? `${left.padEnd(34)}${help}` : `${left}  ${help}`;
}

export function helpText(): string {
  const out = [
    'npm run tune -- --model ID|DIR|demo --data FILE|ID|demo --out DIR [flags]',
    '  Fine-tunes a LoRA adapter on WebGPU (Dawn) as the studio does: one JSON line per step on stdout,',
    '  progress and a summary line too; messages for people on stderr (npm run --silent tune keeps',
    "  npm's own banner out of stdout).",
    'npm run tune -- --model ID|DIR|demo --adapter DIR --export LIST --out DIR',
    '  Exports a saved PEFT adapter without training.',
    '',
    'Run:',
  ];
  for (const [flag, f] of Object.entries(RUN_FLAGS)) out.push(line(flag, f.value ?? '', f.help));
  out.push('', 'Data preparation (the Data tab):');
  for (const k of DATA_KEYS) {
    const f = DATA_FLAGS[k];
    const d = dataDefault(k);
    const value = k === 'templateSource' ? 'FILE' : valueWord(f.kind);
    out.push(line(dataFlagName(k), value, `${f.help}${d !== null ? ` (default ${d})` : ''}`));
  }
  out.push('', 'Training (the Train tab; --config FILE sets them too):');
  for (const k of TRAIN_KEYS) {
    const f = TRAIN_FLAGS[k];
    const d = trainDefault(k);
    // Numbers say their range; enums and lists show their values in place of the value word already.
    const range = f.kind.type === 'int' || f.kind.type === 'number' ? `; ${describeKind(f.kind)}` : '';
    out.push(line(trainFlagName(k), valueWord(f.kind), `${f.help}${d !== null ? ` (default ${d})` : ''}${range}`));
  }
  out.push('', 'True/false flags take --flag, --no-flag or --flag=false. Exit codes: 2 bad arguments or input, 1 the run failed,',
    '130 stopped by Ctrl-C (after the step in progress, with a checkpoint: --resume continues).');
  return out.join('\n');
}
