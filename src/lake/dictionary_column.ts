/**
 * A fast path for the lake's dictionary-encoded string columns (device,
 * antenna, app), read as codes into a `StringDictionary`: the column chunk's
 * pages are walked here and each dictionary entry is coded straight from the
 * decompressed page, each row's code written straight into the output
 * `Int32Array`. Through hyparquet the same column costs a `Uint8Array` view
 * per dictionary entry, an array of codes per page and an array per row
 * chunk, which for an hour of 100,000 devices is most of the read and, under
 * `start`'s small young generation, most of its garbage collection.
 *
 * Only the layout the lake writer makes is taken: a required BYTE_ARRAY
 * column, a PLAIN dictionary page, data pages v2 with dictionary indices, no
 * nulls, SNAPPY or no compression. Anything else answers `false` and the
 * caller reads the column through hyparquet.
 */
import { snappyUncompress } from "hyparquet";
import type { ColumnMetaData } from "hyparquet";
import type { StringDictionary } from "./read_file.ts";

/** A cursor over a byte array. */
interface Cursor {
  readonly bytes: Uint8Array;
  at: number;
}

function varint(c: Cursor): number {
  let v = 0;
  let shift = 0;
  for (;;) {
    // A truncated chunk: the caller falls back to hyparquet, which names the file.
    if (c.at >= c.bytes.length) throw new RangeError("varint past the end of the chunk");
    const b = c.bytes[c.at++];
    v += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return v;
    shift += 7;
  }
}

const zigzag = (n: number) => (n % 2 === 0 ? n / 2 : -(n + 1) / 2);

/** The fields of a Thrift compact struct this reader keeps: id → integer or struct. */
type Struct = Map<number, number | boolean | Struct>;

/**
 * Reads a Thrift compact-protocol struct, keeping its integer, boolean and
 * struct fields and skipping the rest (binaries, lists, maps).
 */
function readStruct(c: Cursor): Struct {
  const out: Struct = new Map();
  let id = 0;
  for (;;) {
    const head = c.bytes[c.at++];
    const type = head & 0x0f;
    if (type === 0) return out;
    const delta = head >> 4;
    id = delta ? id + delta : zigzag(varint(c));
    out.set(id, readValue(c, type));
  }
}

function readValue(c: Cursor, type: number): number | boolean | Struct {
  switch (type) {
    case 1:
      return true;
    case 2:
      return false;
    case 3:
      return c.bytes[c.at++];
    case 4:
    case 5:
    case 6:
      return zigzag(varint(c));
    case 7:
      c.at += 8;
      return 0;
    case 8:
      c.at += varint(c);
      return 0;
    case 9:
    case 10: {
      const head = c.bytes[c.at++];
      const size = (head >> 4) === 15 ? varint(c) : head >> 4;
      // Booleans in a list are one byte each.
      const elem = (head & 0x0f) === 1 || (head & 0x0f) === 2 ? 3 : head & 0x0f;
      for (let i = 0; i < size; i++) readValue(c, elem);
      return 0;
    }
    case 11: {
      const size = varint(c);
      if (size === 0) return 0;
      const kinds = c.bytes[c.at++];
      for (let i = 0; i < size; i++) {
        readValue(c, kinds >> 4);
        readValue(c, kinds & 0x0f);
      }
      return 0;
    }
    case 12:
      return readStruct(c);
    default:
      throw new RangeError(`unknown Thrift type ${type}`);
  }
}

const num = (s: Struct | undefined, id: number) => {
  const v = s?.get(id);
  return typeof v === "number" ? v : undefined;
};

const PAGE_DATA_V2 = 3;
const PAGE_DICTIONARY = 2;
/** Parquet encodings: PLAIN, PLAIN_DICTIONARY, RLE_DICTIONARY. */
const PLAIN = 0, PLAIN_DICTIONARY = 2, RLE_DICTIONARY = 8;

/** A page's values, decompressed; undefined for a codec this path does not take. */
function pageValues(
  raw: Uint8Array,
  size: number,
  codec: string,
  compressed: boolean,
): Uint8Array | undefined {
  if (!compressed || codec === "UNCOMPRESSED") return raw;
  if (codec !== "SNAPPY") return undefined;
  const out = new Uint8Array(size);
  snappyUncompress(raw, out);
  return out;
}

/** Codes of a PLAIN dictionary page's `n` byte arrays. */
function dictionaryCodes(page: Uint8Array, n: number, dict: StringDictionary): Int32Array {
  const codes = new Int32Array(n);
  const view = new DataView(page.buffer, page.byteOffset, page.byteLength);
  let at = 0;
  for (let i = 0; i < n; i++) {
    const len = view.getUint32(at, true);
    at += 4;
    codes[i] = dict.codeOfRange(page, at, at + len);
    at += len;
  }
  return codes;
}

/**
 * Writes `n` dictionary indices (RLE/bit-packed hybrid of `width` bits,
 * from `c`) as their codes into `out` from `at`; false when they run short or
 * point past the dictionary.
 */
function writeIndices(
  c: Cursor,
  width: number,
  n: number,
  codes: Int32Array,
  out: Int32Array,
  at: number,
): boolean {
  const bytes = c.bytes;
  // Indices of up to 24 bits keep every step below in 32-bit integers.
  if (width > 24) return false;
  const mask = (1 << width) - 1;
  let seen = 0;
  while (seen < n) {
    if (c.at >= bytes.length) return false;
    const header = varint(c);
    if (header & 1) {
      // Bit-packed: (header >> 1) groups of 8 values, least significant bits first.
      let count = (header >>> 1) * 8;
      let data = 0, bits = 0;
      while (count > 0) {
        while (bits < width) {
          if (c.at >= bytes.length) return false;
          data |= bytes[c.at++] << bits;
          bits += 8;
        }
        const v = data & mask;
        data >>>= width;
        bits -= width;
        count--;
        if (seen < n) {
          if (v >= codes.length) return false;
          out[at + seen++] = codes[v];
        }
      }
    } else {
      const count = header >>> 1;
      let v = 0;
      if (c.at + ((width + 7) >> 3) > bytes.length) return false;
      for (let i = 0; i < (width + 7) >> 3; i++) v |= bytes[c.at++] << (8 * i);
      if (count > n - seen || v >= codes.length) return false;
      out.fill(codes[v], at + seen, at + seen + count);
      seen += count;
    }
  }
  return true;
}

/**
 * Decodes one column chunk (`chunk`: its bytes from its first page, `meta`:
 * its metadata) of `rows` rows as codes of `dict` into `out` from `at`.
 * False when the chunk is not laid out as this path expects (nothing is
 * then known to be written: the caller reads the column again its own way).
 */
export function decodeDictionaryChunk(
  chunk: Uint8Array,
  meta: ColumnMetaData,
  rows: number,
  dict: StringDictionary,
  out: Int32Array,
  at: number,
): boolean {
  if (meta.type !== "BYTE_ARRAY") return false;
  const c: Cursor = { bytes: chunk, at: 0 };
  let codes: Int32Array | undefined;
  let seen = 0;
  while (seen < rows && c.at < chunk.length) {
    const header = readStruct(c);
    const type = num(header, 1);
    const size = num(header, 2) ?? 0;
    const compressedSize = num(header, 3) ?? 0;
    const body = chunk.subarray(c.at, c.at + compressedSize);
    c.at += compressedSize;
    if (type === PAGE_DICTIONARY) {
      const h = header.get(7) as Struct | undefined;
      const enc = num(h, 2);
      if (codes || (enc !== PLAIN && enc !== PLAIN_DICTIONARY)) return false;
      const page = pageValues(body, size, meta.codec, true);
      if (!page) return false;
      codes = dictionaryCodes(page, num(h, 1) ?? 0, dict);
    } else if (type === PAGE_DATA_V2) {
      const h = header.get(8) as Struct | undefined;
      const n = num(h, 1) ?? 0;
      const enc = num(h, 4);
      if (!codes || num(h, 2) !== 0 || (enc !== RLE_DICTIONARY && enc !== PLAIN_DICTIONARY)) {
        return false;
      }
      if (n > rows - seen) return false;
      const levels = (num(h, 5) ?? 0) + (num(h, 6) ?? 0);
      const page = pageValues(
        body.subarray(levels),
        size - levels,
        meta.codec,
        h?.get(7) !== false,
      );
      if (!page) return false;
      if (n === 0) continue;
      const values: Cursor = { bytes: page, at: 1 };
      if (!writeIndices(values, page[0], n, codes, out, at + seen)) return false;
      seen += n;
    } else {
      return false;
    }
  }
  return seen === rows;
}
