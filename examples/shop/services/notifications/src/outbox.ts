// The outbox: one JSON line per message appended to outbox.jsonl in the data folder. Each
// message is a single append write, so lines from several replicas do not interleave; a
// torn last line (a crash mid-write) is skipped when reading.
import { appendFile, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";

export interface Message {
  id: string;
  from: string;
  to: string;
  subject: string;
  body: string;
  createdAt: string;
}

export interface Outbox {
  append(message: Message): Promise<void>;
  /** The newest `limit` messages, newest first. */
  latest(limit: number): Promise<Message[]>;
}

export function createOutbox(options: { dataDir: string }): Outbox {
  const file = join(options.dataDir, "outbox.jsonl");
  return {
    async append(message) {
      await mkdir(options.dataDir, { recursive: true });
      await appendFile(file, JSON.stringify(message) + "\n");
    },
    async latest(limit) {
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw err;
      }
      const messages: Message[] = [];
      const lines = text.split("\n");
      for (let i = lines.length - 1; i >= 0 && messages.length < limit; i--) {
        const line = lines[i];
        if (!line) continue;
        try {
          messages.push(JSON.parse(line) as Message);
        } catch {
          // A torn line from a crash mid-append; the rest of the outbox is still good.
        }
      }
      return messages;
    },
  };
}
