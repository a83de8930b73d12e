// What the runner prints: JSON lines on stdout for programs (type 'step' | 'progress' | 'summary'),
// sentences on stderr for people. Progress lines are thinned to one a second per stage, plus every
// phase change, so a long download does not flood a log.
import type { StepMetrics } from '../../src/engine/train/loop.ts';

export type ProgressStage = 'load' | 'prepare' | 'export' | 'bundle' | 'upload';

export interface Output {
  step(m: StepMetrics): void;
  progress(stage: ProgressStage, p: { phase: string } & Record<string, unknown>): void;
  summary(s: Record<string, unknown>): void;
  /** A sentence for people (stderr). */
  say(message: string): void;
}

const PROGRESS_INTERVAL_MS = 1000;

export function consoleOutput(write: (line: string) => void = (l) => process.stdout.write(l), tell: (line: string) => void = (l) => process.stderr.write(l)): Output {
  const last = new Map<string, { phase: string; at: number }>();
  const json = (x: Record<string, unknown>): void => write(`${JSON.stringify(x)}\n`);
  return {
    step: (m) => json({ type: 'step', ...m }),
    progress(stage, p) {
      const key = `${stage}:${(p as { label?: string }).label ?? ''}`;
      const prev = last.get(key);
      const now = performance.now();
      if (prev && prev.phase === p.phase && now - prev.at < PROGRESS_INTERVAL_MS) return;
      last.set(key, { phase: p.phase, at: now });
      json({ type: 'progress', stage, ...p });
    },
    summary: (s) => json({ type: 'summary', ...s }),
    say: (message) => tell(`${message}\n`),
  };
}
