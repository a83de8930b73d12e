// Float64 reference for shaders/embedding.wgsl.

/** out[t, :] = table[ids[t], :] for table [vocab, hidden]; zeros where ids[t] >= vocab. */
export function embeddingRef(table: ArrayLike<number>, ids: ArrayLike<number>, vocab: number, hidden: number): Float64Array {
  const out = new Float64Array(ids.length * hidden);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (id >= vocab) continue;
    for (let j = 0; j < hidden; j++) out[t * hidden + j] = table[id * hidden + j];
  }
  return out;
}
