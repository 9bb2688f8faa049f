/**
 * Typed arrays for one request's rows, carved from shared slabs as Buffer.allocUnsafe carves
 * Buffers from its pool. V8 keeps a typed array of at most 64 bytes on its heap; a larger one
 * gets a backing store of its own, allocated, tracked as external memory and freed by a
 * finaliser: 1.5 to 2.5 us each here, against 50 ns for a view on a slab. One row of ten
 * float64 features is 80 bytes, so without slabs its matrix alone cost more than all the
 * monitoring of the request.
 *
 * Memory is never handed out twice: a view starts zeroed, as a new array does, and a slab is
 * freed by the garbage collector once no view on it is left.
 */
const SLAB_BYTES = 256 * 1024;
/** Larger arrays are allocated on their own: their cost is spread over many rows, and one of them should not keep a slab alive. */
const LARGEST_CARVED_BYTES = SLAB_BYTES / 16;

let slab = new ArrayBuffer(SLAB_BYTES);
let used = 0;

/** Byte offset in `slab` of `bytes` fresh bytes, aligned to 8 for every element type. */
function carve(bytes: number): number {
  const aligned = (bytes + 7) & ~7;
  if (used + aligned > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    used = 0;
  }
  const offset = used;
  used += aligned;
  return offset;
}

interface TypedArrayType<T> {
  new (length: number): T;
  new (buffer: ArrayBuffer, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

function carved<T>(Type: TypedArrayType<T>, length: number): T {
  const bytes = length * Type.BYTES_PER_ELEMENT;
  if (bytes > LARGEST_CARVED_BYTES) return new Type(length);
  // Carved before `slab` is read: carving may start a new slab.
  const offset = carve(bytes);
  return new Type(slab, offset, length);
}

export const float64Array = (length: number): Float64Array => carved(Float64Array, length);
export const float32Array = (length: number): Float32Array => carved(Float32Array, length);
export const int32Array = (length: number): Int32Array => carved(Int32Array, length);
