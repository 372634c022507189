// @ts-check
/**
 * The wire tensor formats (app/encoding.py), decoded into Float32Array; float16 is expanded through a
 * 65536-entry table (no library).
 * - JSON: each tensor `{"shape", "dtype": "float32"|"float16", "data": base64 little-endian C order}`.
 * - Binary (`application/vnd.cnnvis.tensors`): magic "CNV1", a uint32 LE header length n, n bytes of
 *   JSON header (the JSON answer with each tensor as `{shape, dtype, offset, length}`), then the raw
 *   arrays at offsets from the body's first byte, multiples of 8: float32 becomes a view, not a copy.
 */

/** The binary form's media type (ask for it with `Accept`). */
export const BINARY_MEDIA = 'application/vnd.cnnvis.tensors';

/** @typedef {{shape: number[], dtype: string, data: string}} WireTensor */
/** @typedef {{shape: number[], data: Float32Array}} Tensor */

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * One IEEE 754 half-precision value as a number.
 * @param {number} h 16-bit pattern
 */
export function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/**
 * The 65536-entry float16 table, made on the first float16 tensor (the page's first load asks for
 * float32 only) and from the bit patterns: `halfToFloat` per entry took ~20 ms, this ~7 ms, with the
 * same values (tests/web/test_modules.py).
 * @type {{table: Float32Array | null}}
 */
const HALF = { table: null };

function halfTable() {
  if (HALF.table) return HALF.table;
  const f = new Float32Array(65536);
  const u = new Uint32Array(f.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) f[h] = (sign ? -frac : frac) / 16777216; // zeros and subnormals: frac x 2^-24, exact
    else u[h] = sign | (exp === 31 ? 0x7f800000 : (exp + 112) << 23) | (frac << 13); // rebias 15 -> 127
  }
  HALF.table = f;
  return f;
}

/** @param {string} b64 */
function base64Bytes(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

/**
 * Decode a wire tensor; a tensor already decoded (from the binary form) is returned as it is, so
 * callers need not know which form arrived.
 * @param {WireTensor | Tensor} t
 * @returns {Tensor}
 */
export function decodeTensor(t) {
  if (t.data instanceof Float32Array) return /** @type {Tensor} */ (t);
  const n = t.shape.reduce((a, b) => a * b, 1);
  const bytes = base64Bytes(/** @type {string} */ (t.data));
  const width = t.dtype === 'float16' ? 2 : t.dtype === 'float32' ? 4 : 0;
  if (!width) throw new Error(`unsupported tensor dtype ${t.dtype}`);
  if (bytes.length !== n * width) throw new Error(`tensor of shape [${t.shape}] needs ${n * width} bytes, got ${bytes.length}`);
  const out = new Float32Array(n);
  if (width === 4) {
    if (LITTLE_ENDIAN) out.set(new Float32Array(bytes.buffer, 0, n));
    else {
      const dv = new DataView(bytes.buffer);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
    }
  } else if (LITTLE_ENDIAN) {
    const u16 = new Uint16Array(bytes.buffer, 0, n);
    const table = halfTable();
    for (let i = 0; i < n; i++) out[i] = table[u16[i]];
  } else {
    const dv = new DataView(bytes.buffer);
    const table = halfTable();
    for (let i = 0; i < n; i++) out[i] = table[dv.getUint16(i * 2, true)];
  }
  return { shape: t.shape, data: out };
}

/**
 * The array a binary-form descriptor points at: a Float32Array view on `buffer` for float32 (no copy),
 * a new Float32Array for float16.
 * @param {ArrayBuffer} buffer
 * @param {{shape: number[], dtype: string, offset: number, length: number}} d
 * @returns {Tensor}
 */
function tensorAt(buffer, d) {
  const n = d.shape.reduce((a, b) => a * b, 1);
  const width = d.dtype === 'float16' ? 2 : d.dtype === 'float32' ? 4 : 0;
  if (!width) throw new Error(`unsupported tensor dtype ${d.dtype}`);
  if (d.length !== n * width || d.offset % 8 || d.offset + d.length > buffer.byteLength) {
    throw new Error(`tensor of shape [${d.shape}] does not fit the body (offset ${d.offset}, ${d.length} bytes)`);
  }
  if (!LITTLE_ENDIAN) {
    const dv = new DataView(buffer, d.offset, d.length);
    const out = new Float32Array(n);
    const table = width === 2 ? halfTable() : null;
    for (let i = 0; i < n; i++) out[i] = table ? table[dv.getUint16(i * 2, true)] : dv.getFloat32(i * 4, true);
    return { shape: d.shape, data: out };
  }
  if (width === 4) return { shape: d.shape, data: new Float32Array(buffer, d.offset, n) };
  const u16 = new Uint16Array(buffer, d.offset, n);
  const out = new Float32Array(n);
  const table = halfTable();
  for (let i = 0; i < n; i++) out[i] = table[u16[i]];
  return { shape: d.shape, data: out };
}

/**
 * Decode a body in the binary form: its JSON header, with each tensor replaced by a decoded Tensor.
 * @param {ArrayBuffer} buffer the whole body (a fetch's `arrayBuffer()`, a WebSocket binary frame)
 * @returns {any}
 */
export function decodeBinary(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 8 || String.fromCharCode(bytes[0], bytes[1], bytes[2], bytes[3]) !== 'CNV1') {
    throw new Error('not a cnnvis tensor body (the magic bytes are wrong)');
  }
  const n = new DataView(buffer).getUint32(4, true);
  if (8 + n > bytes.length) throw new Error('the header runs past the end of the body');
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  /** @param {any} node @returns {any} */
  const walk = (node) => {
    if (Array.isArray(node)) return node.map(walk);
    if (!node || typeof node !== 'object') return node;
    const keys = Object.keys(node);
    if (keys.length === 4 && ['shape', 'dtype', 'offset', 'length'].every((k) => k in node)) return tensorAt(buffer, node);
    return Object.fromEntries(keys.map((k) => [k, walk(node[k])]));
  };
  return walk(header);
}
