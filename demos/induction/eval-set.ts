/**
 * The fixture's evaluation set, regenerated bit for bit: `tests/fixtures/make/make_fixtures.py`
 * draws it with `torch.Generator().manual_seed(99)` and `torch.randint(1, 512, (64, 20))`, then
 * builds BOS + x + x. PyTorch's CPU generator is the standard 32-bit Mersenne Twister (MT19937)
 * seeded with `init_genrand(seed)`, and `randint(low, high)` on CPU takes one 32-bit draw per
 * element, in row-major order, as `low + draw % (high - low)`.
 */

/** MT19937, 32-bit output, seeded like `std::mt19937(seed)`. */
export function mt19937(seed: number): () => number {
  const mt = new Uint32Array(624);
  let index = 624;
  mt[0] = seed >>> 0;
  for (let i = 1; i < 624; i++) {
    const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
    // 1812433253 * prev + i, mod 2^32 (split to stay exact in doubles)
    mt[i] = (((((prev & 0xffff0000) >>> 16) * 1812433253) << 16) + (prev & 0x0000ffff) * 1812433253 + i) >>> 0;
  }
  const twist = () => {
    for (let i = 0; i < 624; i++) {
      const y = (mt[i] & 0x80000000) | (mt[(i + 1) % 624] & 0x7fffffff);
      mt[i] = mt[(i + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    index = 0;
  };
  return () => {
    if (index >= 624) twist();
    let y = mt[index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  };
}

/** Half length and count of the fixture's evaluation sequences. */
export const HALF = 20;
export const COUNT = 64;

/** The fixture's 64 sequences: BOS (0), 20 random tokens in 1..511, the same 20 again (41 tokens). */
export function evalSequences(count = COUNT, half = HALF, vocab = 512, seed = 99): number[][] {
  const next = mt19937(seed);
  const rows: number[][] = [];
  for (let b = 0; b < count; b++) {
    const x = Array.from({ length: half }, () => 1 + (next() % (vocab - 1)));
    rows.push([0, ...x, ...x]);
  }
  return rows;
}
