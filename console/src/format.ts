const integer = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });

export function count(value: number): string {
  return integer.format(value);
}

export function rate(value: number): string {
  return decimal.format(value);
}

/** A duration given in seconds, as ms below a second: short enough for a chart's axis. */
export function milliseconds(seconds: number): string {
  const ms = seconds * 1000;
  return ms < 10 ? `${decimal.format(ms)} ms` : ms < 1000 ? `${integer.format(ms)} ms` : `${decimal.format(seconds)} s`;
}

export function clock(iso: string): string {
  return new Date(iso).toLocaleTimeString("en-GB", { hour12: false });
}

export function dateTime(iso: string): string {
  return new Date(iso).toLocaleString("en-GB", { hour12: false, dateStyle: "medium", timeStyle: "medium" });
}

export function bytes(value: number): string {
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${decimal.format(value / 1024)} KiB`;
  return `${decimal.format(value / 1024 / 1024)} MiB`;
}
