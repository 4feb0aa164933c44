import { constants } from 'node:fs';

// Direct I/O (O_DIRECT) for writing archives to a local destination. Measured on this
// project's test machine (a VM, ext4), writing and fsyncing 2 GB through the page cache took
// 2-6 s of kernel CPU, and 0.1-0.5 s with O_DIRECT; and an archive written around the cache
// does not evict the web server's hot files for bytes nobody reads back. (Reading media the
// same way was measured too: no CPU saved, slower without the kernel's read-ahead.) The
// price: buffers, offsets and lengths must be aligned to the device's logical block
// (DIRECT_ALIGN covers 512 and 4096), and some filesystems refuse O_DIRECT (EINVAL), so
// its users fall back to plain I/O.

export const DIRECT_ALIGN = 4096;
export const O_DIRECT: number = constants.O_DIRECT ?? 0;

/** The 64 KiB unit WebAssembly memory comes in. */
const WASM_PAGE = 65536;

interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
// es2024's lib has no WebAssembly types; Memory is all that is needed.
const Memory = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => WasmMemory } }).WebAssembly.Memory;

const aligned = new WeakSet<ArrayBufferLike>();

/**
 * A buffer whose first byte is on a page boundary. Node's own buffers come from malloc (16-byte
 * alignment); WebAssembly memory is mapped by whole pages, so its start is page-aligned.
 */
export function alignedBuffer(size: number): Buffer {
  const pages = Math.max(1, Math.ceil(size / WASM_PAGE));
  let mem: WasmMemory;
  try {
    mem = new Memory({ initial: pages, maximum: pages });
  } catch {
    // Address space refused (a ulimit -v): a plain buffer, which its users write without O_DIRECT.
    return Buffer.allocUnsafe(size);
  }
  aligned.add(mem.buffer);
  return Buffer.from(mem.buffer, 0, size);
}

/** Whether buf starts on a DIRECT_ALIGN boundary of memory that alignedBuffer made. */
export function isAlignedBuffer(buf: Buffer): boolean {
  return aligned.has(buf.buffer) && buf.byteOffset % DIRECT_ALIGN === 0;
}

/** n rounded up to a multiple of DIRECT_ALIGN. */
export function alignUp(n: number): number {
  return Math.ceil(n / DIRECT_ALIGN) * DIRECT_ALIGN;
}

/**
 * Whether err says the filesystem or device refused direct I/O (rather than a real I/O error):
 * EINVAL from an open with O_DIRECT or from a direct write.
 */
export function refusedDirect(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'EINVAL';
}
