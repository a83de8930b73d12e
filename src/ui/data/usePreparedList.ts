import { useEffect } from 'react';
import { useDatasetStore } from '../../store/dataset.ts';

/** Loads the prepared datasets from the worker once, when a view that shows them mounts. */
export function usePreparedList(): void {
  useEffect(() => {
    const s = useDatasetStore.getState();
    if (s.prepared.status === 'idle') void s.loadPrepared();
  }, []);
}
