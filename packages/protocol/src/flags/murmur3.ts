// MurmurHash3 x86 32-bit over the UTF-8 bytes of a string: the hash flagd's `fractional` buckets by.
// Encodes on the fly (no Buffer/TextEncoder allocation) so a bucketing call stays allocation-free.

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/**
 * MurmurHash3 (x86, 32-bit) of `text` encoded as UTF-8, as an unsigned integer.
 * Lone surrogates are encoded as U+FFFD, as TextEncoder and Go do.
 *
 * @example
 * murmur3_32("hello"); // 0x248bfa47
 */
export function murmur3_32(text: string, seed = 0): number {
  let h = seed | 0;
  let k = 0; // bytes of the current 4-byte block, little-endian
  let shift = 0; // bit offset of the next byte within k
  let length = 0; // bytes consumed

  const n = text.length;
  let i = 0;
  // Fast path: whole blocks of four ASCII characters (one byte each).
  for (; i + 4 <= n; i += 4) {
    const c0 = text.charCodeAt(i);
    const c1 = text.charCodeAt(i + 1);
    const c2 = text.charCodeAt(i + 2);
    const c3 = text.charCodeAt(i + 3);
    if ((c0 | c1 | c2 | c3) >= 0x80) break;
    h = mixBlock(h, c0 | (c1 << 8) | (c2 << 16) | (c3 << 24));
    length += 4;
  }
  for (; i < n; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      k |= c << shift;
      shift += 8;
      length++;
      if (shift === 32) {
        h = mixBlock(h, k);
        k = 0;
        shift = 0;
      }
      continue;
    }
    let bytes: number; // up to 4 UTF-8 bytes packed little-endian, count in `count`
    let count: number;
    if (c < 0x800) {
      bytes = (0xc0 | (c >> 6)) | ((0x80 | (c & 0x3f)) << 8);
      count = 2;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < n ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        i++;
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        bytes = (0xf0 | (c >> 18)) | ((0x80 | ((c >> 12) & 0x3f)) << 8) | ((0x80 | ((c >> 6) & 0x3f)) << 16) | ((0x80 | (c & 0x3f)) << 24);
        count = 4;
      } else {
        bytes = 0xef | (0xbf << 8) | (0xbd << 16); // U+FFFD
        count = 3;
      }
    } else {
      bytes = (0xe0 | (c >> 12)) | ((0x80 | ((c >> 6) & 0x3f)) << 8) | ((0x80 | (c & 0x3f)) << 16);
      count = 3;
    }
    for (let b = 0; b < count; b++) {
      k |= ((bytes >>> (8 * b)) & 0xff) << shift;
      shift += 8;
      length++;
      if (shift === 32) {
        h = mixBlock(h, k);
        k = 0;
        shift = 0;
      }
    }
  }

  if (shift !== 0) {
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function mixBlock(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}
