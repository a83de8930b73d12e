import { formatBytes } from '../../util/format.ts';
import { GGUF_EXPORT_TYPES, RECOMMENDED_GGUF_TYPE, type GgufExportType } from '../../client/export-offer.ts';

/** What each type gives up, in a few words (llama.cpp's own descriptions, roughly). */
const QUALITY: Record<GgufExportType, string> = {
  f16: 'no loss; as large as the merged model',
  bf16: 'no loss; bf16 needs a recent llama.cpp',
  q8_0: 'practically no loss',
  q6_k: 'very small loss',
  q5_k_m: 'small loss',
  q4_k_m: 'good quality at about a quarter of f16',
  q3_k_m: 'noticeable loss',
  q2_k: 'large loss: for very small memory only',
  q4_0: 'older 4-bit format, for tools without k-quants',
};

interface Props {
  value: GgufExportType;
  sizes: Partial<Record<GgufExportType, number>> | null;
  disabled: boolean;
  onChange: (t: GgufExportType) => void;
}

/** The GGUF types as a table of radio rows: name, estimated size, what it costs in quality. */
export function GgufTypePicker({ value, sizes, disabled, onChange }: Props) {
  return (
    <table className="table gguf-types" data-testid="gguf-types">
      <thead>
        <tr>
          <th scope="col">Type</th>
          <th scope="col" className="num">
            Size
          </th>
          <th scope="col">Quality</th>
        </tr>
      </thead>
      <tbody>
        {GGUF_EXPORT_TYPES.map((t) => {
          const size = sizes?.[t];
          return (
            <tr key={t} className={t === value ? 'selected' : undefined}>
              <td>
                <label>
                  <input
                    type="radio"
                    name="gguf-type"
                    value={t}
                    data-testid={`gguf-type-${t}`}
                    checked={t === value}
                    disabled={disabled}
                    onChange={() => onChange(t)}
                  />{' '}
                  <code>{t.toUpperCase()}</code>
                  {t === RECOMMENDED_GGUF_TYPE && <span className="badge badge-ok">recommended</span>}
                </label>
              </td>
              <td className="num" data-testid={`gguf-size-${t}`} data-bytes={size ?? ''}>
                {size !== undefined ? formatBytes(size) : '—'}
              </td>
              <td className="muted small">{QUALITY[t]}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
