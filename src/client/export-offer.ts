// What the page knows of exports without asking the trainer worker: the GGUF types offered, the
// recommended one, the base file name. Pure facts of src/io/export-job.ts, re-exported here so the
// UI and its stores reach the layers below only through src/client (DESIGN.md, Layers).
export { exportBaseName, GGUF_EXPORT_TYPES, isGgufExportType, RECOMMENDED_GGUF_TYPE } from '../io/export-job.ts';
export type { ExportCardFacts, ExportKind, GgufExportType } from '../io/export-job.ts';
