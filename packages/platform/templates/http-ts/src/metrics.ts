// A counter in the Prometheus text format, served on GET /metrics. The gateway already records
// requests, errors and latency of every route; a service's own metrics count what only it knows.

export interface Counter {
  inc(labels: Record<string, string>, by?: number): void;
}

export interface Metrics {
  counter(name: string, help: string): Counter;
  /** Every series, in the Prometheus text exposition format. */
  render(): string;
}

export function createMetrics(): Metrics {
  const counters = new Map<string, { help: string; series: Map<string, number> }>();
  return {
    counter(name, help) {
      const series = new Map<string, number>();
      counters.set(name, { help, series });
      return {
        inc(labels, by = 1) {
          const key = Object.entries(labels)
            .sort(([a], [b]) => (a < b ? -1 : 1))
            .map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`)
            .join(",");
          series.set(key, (series.get(key) ?? 0) + by);
        },
      };
    },
    render() {
      const lines: string[] = [];
      for (const [name, { help, series }] of counters) {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
        for (const [labels, value] of series) lines.push(`${name}${labels === "" ? "" : `{${labels}}`} ${value}`);
      }
      return `${lines.join("\n")}\n`;
    },
  };
}
