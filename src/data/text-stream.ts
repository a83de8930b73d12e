// Byte stream -> text chunks. UTF-8 sequences split across chunks are joined by the decoder;
// a leading byte-order mark is dropped.

export async function* decodeUtf8(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8'); // ignoreBOM=false: a leading BOM is consumed
  const reader = stream.getReader();
  let first = true;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      const text = done ? decoder.decode() : decoder.decode(value, { stream: true });
      if (text.length > 0) {
        // Belt and braces: drop U+FEFF if a decoder ever passes it through.
        yield first && text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
        first = false;
      }
      if (done) return;
    }
  } finally {
    reader.releaseLock();
  }
}

/** A stream over an in-memory byte array, cut into chunks of `chunkSize` (tests, small inputs). */
export function bytesToStream(bytes: Uint8Array, chunkSize = 64 * 1024): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      const end = Math.min(bytes.length, offset + chunkSize);
      controller.enqueue(bytes.slice(offset, end));
      offset = end;
    },
  });
}
