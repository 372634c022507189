// @ts-check
/**
 * The wire tensor format: `{"shape", "dtype": "float32"|"float16", "data": base64 little-endian C order}`.
 * Decoded into Float32Array; float16 is expanded through a 65536-entry table (no library).
 */

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

const HALF_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let i = 0; i < 65536; i++) t[i] = halfToFloat(i);
  return t;
})();

/** @param {string} b64 */
function base64Bytes(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

/**
 * Decode a wire tensor.
 * @param {WireTensor} t
 * @returns {Tensor}
 */
export function decodeTensor(t) {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const bytes = base64Bytes(t.data);
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
    for (let i = 0; i < n; i++) out[i] = HALF_TABLE[u16[i]];
  } else {
    const dv = new DataView(bytes.buffer);
    for (let i = 0; i < n; i++) out[i] = HALF_TABLE[dv.getUint16(i * 2, true)];
  }
  return { shape: t.shape, data: out };
}
