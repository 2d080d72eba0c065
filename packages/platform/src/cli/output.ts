// Human output for the CLI: colors only on a TTY, aligned tables, durations.
import pc from "picocolors";

export const color = pc.createColors(Boolean(process.stdout.isTTY) && process.env.NO_COLOR === undefined);

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => stripAnsi(r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat(Math.max(0, (widths[i] ?? 0) - stripAnsi(c).length))))
      .join("  ")
      .trimEnd();
  return [color.bold(line(headers)), ...rows.map(line)].join("\n");
}

function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, "");
}

export function ms(n: number): string {
  return n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(1)} s`;
}
