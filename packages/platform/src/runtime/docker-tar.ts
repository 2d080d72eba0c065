// A minimal tar (ustar + pax long names) writer for what the docker driver sends the engine:
// the base image's root file system (files taken from host paths, renamed) and build contexts.
// Written here rather than taken from tar-fs because the entries are chosen one by one, from anywhere.
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";

/** One entry of a tar stream; paths are relative ("usr/bin/node"), without a leading slash. */
export type TarEntry =
  | { type: "file"; path: string; mode: number; size: number; mtime?: number; /** Host file to read, or the bytes. */ from: string | Buffer }
  | { type: "dir"; path: string; mode: number; mtime?: number }
  | { type: "symlink"; path: string; target: string; mtime?: number };

const BLOCK = 512;

function octal(value: number, width: number): string {
  // width - 1 digits and a NUL, as tar readers expect.
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function header(o: { path: string; mode: number; size: number; mtime: number; typeflag: string; linkname: string }): Buffer {
  const buf = Buffer.alloc(BLOCK);
  buf.write(o.path.slice(0, 100), 0, 100, "utf8");
  buf.write(octal(o.mode & 0o7777, 8), 100, "ascii");
  buf.write(octal(0, 8), 108, "ascii");
  buf.write(octal(0, 8), 116, "ascii");
  buf.write(octal(o.size, 12), 124, "ascii");
  buf.write(octal(Math.floor(o.mtime), 12), 136, "ascii");
  buf.write("        ", 148, "ascii");
  buf.write(o.typeflag, 156, "ascii");
  buf.write(o.linkname.slice(0, 100), 157, 100, "utf8");
  buf.write("ustar\0", 257, "ascii");
  buf.write("00", 263, "ascii");
  let sum = 0;
  for (const byte of buf) sum += byte;
  buf.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return buf;
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

/** A pax record "<len> key=value\n", where len counts the whole record including its own digits. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

/** Header blocks of one entry: a pax header first when its path or link target does not fit ustar. */
function headersOf(entry: TarEntry, size: number, mtime: number): Buffer[] {
  const typeflag = entry.type === "file" ? "0" : entry.type === "dir" ? "5" : "2";
  const path = entry.type === "dir" && !entry.path.endsWith("/") ? `${entry.path}/` : entry.path;
  const linkname = entry.type === "symlink" ? entry.target : "";
  const mode = entry.type === "symlink" ? 0o777 : entry.mode;
  const blocks: Buffer[] = [];
  if (Buffer.byteLength(path) > 100 || Buffer.byteLength(linkname) > 100) {
    const pax = Buffer.from(paxRecord("path", path) + (linkname === "" ? "" : paxRecord("linkpath", linkname)));
    blocks.push(header({ path: "PaxHeader", mode: 0o644, size: pax.length, mtime, typeflag: "x", linkname: "" }), pax, padding(pax.length));
  }
  blocks.push(header({ path, mode, size, mtime, typeflag, linkname }));
  return blocks;
}

async function* tarChunks(entries: Iterable<TarEntry> | AsyncIterable<TarEntry>): AsyncGenerator<Buffer> {
  for await (const entry of entries) {
    const mtime = entry.mtime ?? 0;
    const size = entry.type === "file" ? entry.size : 0;
    for (const block of headersOf(entry, size, mtime)) yield block;
    if (entry.type !== "file") continue;
    let written = 0;
    if (Buffer.isBuffer(entry.from)) {
      yield entry.from;
      written = entry.from.length;
    } else {
      for await (const chunk of createReadStream(entry.from)) {
        const buf = chunk as Buffer;
        // A file that grew since it was listed is cut at the size in its header.
        const take = Math.min(buf.length, size - written);
        if (take > 0) yield buf.subarray(0, take);
        written += take;
      }
    }
    if (written !== size) throw new Error(`${entry.type === "file" && typeof entry.from === "string" ? entry.from : entry.path} changed size while being packed (${written} of ${size} bytes)`);
    yield padding(size);
  }
  yield Buffer.alloc(BLOCK * 2);
}

/** A tar stream of the entries, in order. */
export function packTar(entries: Iterable<TarEntry> | AsyncIterable<TarEntry>): Readable {
  return Readable.from(tarChunks(entries), { objectMode: false });
}
