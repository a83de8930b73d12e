// The two batch channels of a training run: the data worker serves a prepared dataset's splits on
// one end of each, the trainer worker reads the other (TrainBatchPorts).
import type { TrainBatchPorts } from './api.ts';
import { data } from './data.ts';

/** Opens the train and validation splits of prepared dataset `fingerprint` for a run. */
export async function openTrainBatches(fingerprint: string): Promise<TrainBatchPorts> {
  const train = new MessageChannel();
  const validation = new MessageChannel();
  try {
    await Promise.all([data.serveBatches(fingerprint, 'train', train.port1), data.serveBatches(fingerprint, 'validation', validation.port1)]);
  } catch (e) {
    train.port2.close();
    validation.port2.close();
    throw e;
  }
  return { train: train.port2, validation: validation.port2 };
}
