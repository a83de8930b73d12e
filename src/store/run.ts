// A training run as the UI shows it: status and the metrics the trainer worker reports each step.
// Training is not wired yet: the state is typed so the Train and Export tabs read it today.
import { create } from 'zustand';

export interface StepMetrics {
  step: number;
  loss: number;
  learning_rate: number;
  grad_norm: number;
  tokensPerSecond: number;
  /** GPU memory in use, bytes. */
  memory: number;
  /** Seconds left, estimated. */
  eta: number;
}

interface RunState {
  status: 'idle' | 'running' | 'paused' | 'done' | 'error';
  step: number;
  totalSteps: number;
  metrics: StepMetrics[];
  /** A trained LoRA adapter exists in the trainer worker (what Export needs). */
  hasAdapter: boolean;
  error: string | null;
}

export const useRunStore = create<RunState>()(() => ({
  status: 'idle',
  step: 0,
  totalSteps: 0,
  metrics: [],
  hasAdapter: false,
  error: null,
}));
