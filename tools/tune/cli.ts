// `npm run tune -- …`: the headless runner's entry (built into dist-tune/tune.js by run.mjs).
// Exit codes: 0 done, 1 the run failed, 2 bad arguments or input, 130 stopped by Ctrl-C (after the
// current step, with a checkpoint). Every failure is one line on stderr.
import '../../tests/setup/node-globals.ts'; // first: Float16Array before webgpu-utils loads
import { parseArgs } from './args.ts';
import { UsageError } from './flag-values.ts';
import { helpText } from './help.ts';
import { consoleOutput } from './output.ts';
import { runTune } from './run.ts';
import { DataError } from '../../src/data/errors.ts';
import { ExportError } from '../../src/io/export-job-errors.ts';
import { HubError } from '../../src/io/hub.ts';
import { HubUploadError, type HubUploadErrorKind } from '../../src/io/hub-upload.ts';
import { RunBundleError } from '../../src/io/run-bundle.ts';
import { BundleDataError } from '../../src/io/run-bundle-data.ts';
import { PeftError } from '../../src/io/peft.ts';
import { ModelLoadError } from '../../src/engine/loader.ts';
import { ModelConfigError, UnsupportedModelError } from '../../src/engine/arch.ts';

/** Errors that mean "the input is wrong", as opposed to "something broke". */
const INPUT_ERRORS = [UsageError, DataError, HubError, PeftError, ModelLoadError, ModelConfigError, UnsupportedModelError, RunBundleError, BundleDataError];
/** Upload failures the person fixes (token, repo name, rights, size); the rest are the Hub's or the network's. */
const UPLOAD_INPUT: ReadonlySet<HubUploadErrorKind> = new Set(['no-token', 'invalid-token', 'read-only-token', 'bad-name', 'not-yours', 'missing-repo', 'too-large', 'quota']);

function oneLine(e: unknown): string {
  let text = e instanceof Error ? e.message || e.name : String(e);
  // The Hub client words its advice for the studio's token field; here the token is $HF_TOKEN.
  if (e instanceof HubError) text = text.replace(/paste (a|a valid) token/g, 'put $1 token').replace(/the Model tab \(Hugging Face token\)/g, 'the HF_TOKEN environment variable');
  if (e instanceof HubUploadError) text = text.replace(/Paste a current token/g, 'Set HF_TOKEN to a current token');
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

async function main(argv: string[]): Promise<number> {
  const out = consoleOutput();
  const stop = new AbortController();
  let interrupts = 0;
  process.on('SIGINT', () => {
    // First Ctrl-C: finish the step and checkpoint; the second one quits at once.
    if (++interrupts > 1) process.exit(130);
    out.say('Stopping after this step (Ctrl-C again to quit now)…');
    stop.abort(new DOMException('Stopped by Ctrl-C.', 'AbortError'));
  });
  try {
    const args = parseArgs(argv);
    if (args.help) {
      process.stdout.write(`${helpText()}\n`);
      return 0;
    }
    const { summary, exitCode } = await runTune(args, out, stop.signal);
    out.summary(summary);
    return exitCode;
  } catch (e) {
    const input = INPUT_ERRORS.some((cls) => e instanceof cls) || (e instanceof ExportError && e.reason !== 'failed') || (e instanceof HubUploadError && UPLOAD_INPUT.has(e.kind));
    process.stderr.write(`tune: ${oneLine(e)}\n`);
    if (process.env.TUNE_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
    return stop.signal.aborted ? 130 : input ? 2 : 1;
  }
}

// Dawn and the worker pool can keep the event loop alive: leave once the work is done.
main(process.argv.slice(2)).then((code) => process.exit(code));
