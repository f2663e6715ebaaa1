// A GGUF v3 writer: enough of the format to produce llama.cpp models and LoRA adapters.
// Layout: header, metadata key/values, tensor infos, padding, tensor data (each tensor aligned).
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** GGUF metadata value types (gguf.h `gguf_type`). */
export const GgufValueType = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];

/** The ggml tensor types this writer emits (ggml.h `ggml_type`). */
export const GgmlType = { f32: 0, f16: 1 } as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

type ScalarType = Exclude<GgufValueType, typeof GgufValueType.array>;

/** One metadata value, typed explicitly: JS numbers do not say whether they are u32 or f32. */
export type GgufValue =
  | { readonly type: ScalarType; readonly value: number | bigint | boolean | string }
  | { readonly type: typeof GgufValueType.array; readonly itemType: ScalarType; readonly items: readonly (number | string | boolean)[] };

export const gguf = {
  u32: (value: number): GgufValue => ({ type: GgufValueType.uint32, value }),
  i32: (value: number): GgufValue => ({ type: GgufValueType.int32, value }),
  f32: (value: number): GgufValue => ({ type: GgufValueType.float32, value }),
  bool: (value: boolean): GgufValue => ({ type: GgufValueType.bool, value }),
  str: (value: string): GgufValue => ({ type: GgufValueType.string, value }),
  strings: (items: readonly string[]): GgufValue => ({ type: GgufValueType.array, itemType: GgufValueType.string, items }),
  f32s: (items: readonly number[]): GgufValue => ({ type: GgufValueType.array, itemType: GgufValueType.float32, items }),
  i32s: (items: readonly number[]): GgufValue => ({ type: GgufValueType.array, itemType: GgufValueType.int32, items }),
};

export interface GgufTensor {
  readonly name: string;
  /** ggml order: ne[0] is the fastest-varying (row length); a PyTorch [out, in] matrix is [in, out] here. */
  readonly shape: readonly number[];
  readonly type: GgmlType;
  readonly data: Float32Array;
}

export interface GgufFile {
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: readonly GgufTensor[];
  /** @default 32 */
  readonly alignment?: number;
}

/** Grows a byte buffer as values are appended; little-endian throughout, as GGUF requires. */
class ByteSink {
  private buffer: Buffer;
  length = 0;

  constructor(initial: number) {
    this.buffer = Buffer.alloc(initial);
  }

  private reserve(bytes: number): number {
    const needed = this.length + bytes;
    if (needed > this.buffer.length) {
      const next = Buffer.alloc(Math.max(needed, this.buffer.length * 2));
      this.buffer.copy(next, 0, 0, this.length);
      this.buffer = next;
    }
    const at = this.length;
    this.length = needed;
    return at;
  }

  u8(v: number): void {
    this.buffer.writeUInt8(v, this.reserve(1));
  }
  i8(v: number): void {
    this.buffer.writeInt8(v, this.reserve(1));
  }
  u16(v: number): void {
    this.buffer.writeUInt16LE(v, this.reserve(2));
  }
  i16(v: number): void {
    this.buffer.writeInt16LE(v, this.reserve(2));
  }
  u32(v: number): void {
    this.buffer.writeUInt32LE(v, this.reserve(4));
  }
  i32(v: number): void {
    this.buffer.writeInt32LE(v, this.reserve(4));
  }
  f32(v: number): void {
    this.buffer.writeFloatLE(v, this.reserve(4));
  }
  f64(v: number): void {
    this.buffer.writeDoubleLE(v, this.reserve(8));
  }
  u64(v: number | bigint): void {
    this.buffer.writeBigUInt64LE(BigInt(v), this.reserve(8));
  }
  i64(v: number | bigint): void {
    this.buffer.writeBigInt64LE(BigInt(v), this.reserve(8));
  }

  str(v: string): void {
    const bytes = Buffer.from(v, "utf8");
    this.u64(bytes.length);
    bytes.copy(this.buffer, this.reserve(bytes.length));
  }

  bytes(v: Uint8Array): void {
    const at = this.reserve(v.length);
    this.buffer.set(v, at);
  }

  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    this.reserve(pad);
  }

  result(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

function writeScalar(sink: ByteSink, type: ScalarType, value: number | bigint | boolean | string): void {
  switch (type) {
    case GgufValueType.uint8:
      return sink.u8(Number(value));
    case GgufValueType.int8:
      return sink.i8(Number(value));
    case GgufValueType.uint16:
      return sink.u16(Number(value));
    case GgufValueType.int16:
      return sink.i16(Number(value));
    case GgufValueType.uint32:
      return sink.u32(Number(value));
    case GgufValueType.int32:
      return sink.i32(Number(value));
    case GgufValueType.float32:
      return sink.f32(Number(value));
    case GgufValueType.bool:
      return sink.u8(value === true ? 1 : 0);
    case GgufValueType.string:
      return sink.str(String(value));
    case GgufValueType.uint64:
      return sink.u64(typeof value === "bigint" ? value : Number(value));
    case GgufValueType.int64:
      return sink.i64(typeof value === "bigint" ? value : Number(value));
    case GgufValueType.float64:
      return sink.f64(Number(value));
  }
}

function tensorBytes(tensor: GgufTensor): Uint8Array {
  const count = tensor.shape.reduce((a, b) => a * b, 1);
  if (count !== tensor.data.length) {
    throw new Error(`tensor ${tensor.name}: shape [${tensor.shape.join(", ")}] needs ${count} values, got ${tensor.data.length}`);
  }
  if (tensor.type === GgmlType.f32) {
    return new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  }
  const out = new Uint16Array(count);
  for (let i = 0; i < count; i++) out[i] = toFloat16Bits(tensor.data[i] ?? 0);
  return new Uint8Array(out.buffer);
}

/** IEEE 754 binary16 bits for a float, rounding to nearest even; enough for weights in (-65504, 65504). */
export function toFloat16Bits(value: number): number {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0] ?? 0;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15;
  let mantissa = bits & 0x7fffff;
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    mantissa = (mantissa | 0x800000) >> (1 - exponent);
    return sign | ((mantissa + 0x1000) >> 13);
  }
  if (exponent >= 0x1f) return sign | 0x7c00;
  const rounded = mantissa + 0xfff + ((mantissa >> 13) & 1);
  if (rounded & 0x800000) return exponent + 1 >= 0x1f ? sign | 0x7c00 : sign | ((exponent + 1) << 10);
  return sign | (exponent << 10) | (rounded >> 13);
}

/** Serialises a GGUF file to bytes. */
export function encodeGguf(file: GgufFile): Buffer {
  const alignment = file.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const payloads = file.tensors.map(tensorBytes);
  const dataSize = payloads.reduce((sum, p) => sum + p.length + alignment, 0);
  const sink = new ByteSink(64 * 1024 + dataSize);

  sink.u32(GGUF_MAGIC);
  sink.u32(GGUF_VERSION);
  sink.u64(file.tensors.length);
  sink.u64(file.metadata.size);

  for (const [key, entry] of file.metadata) {
    sink.str(key);
    sink.u32(entry.type);
    if (entry.type === GgufValueType.array) {
      sink.u32(entry.itemType);
      sink.u64(entry.items.length);
      for (const item of entry.items) writeScalar(sink, entry.itemType, item);
    } else {
      writeScalar(sink, entry.type, entry.value);
    }
  }

  let offset = 0;
  file.tensors.forEach((tensor, i) => {
    sink.str(tensor.name);
    sink.u32(tensor.shape.length);
    for (const dim of tensor.shape) sink.u64(dim);
    sink.u32(tensor.type);
    sink.u64(offset);
    const size = payloads[i]?.length ?? 0;
    offset += size + ((alignment - (size % alignment)) % alignment);
  });

  sink.padTo(alignment);
  for (const payload of payloads) {
    sink.bytes(payload);
    sink.padTo(alignment);
  }
  return sink.result();
}

/** Writes a GGUF file atomically (temp file, fsync, rename): a crash never leaves half a model. */
export function writeGgufFile(path: string, file: GgufFile): number {
  const bytes = encodeGguf(file);
  const temp = `${path}.${process.pid}.tmp`;
  try {
    const fd = openSync(temp, "w");
    try {
      writeSync(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  return bytes.length;
}
