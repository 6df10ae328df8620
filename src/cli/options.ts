// Parsing of the option values shared by the commands, with errors a user can act on.
import { UnderstudyError } from '../errors.js';

export function parseMs(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new UnderstudyError('ERR_USAGE', `${name} takes a non-negative number of milliseconds, not ${JSON.stringify(value)}`);
  return n;
}

export function parsePositiveInt(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UnderstudyError('ERR_USAGE', `${name} takes a positive integer, not ${JSON.stringify(value)}`);
  return n;
}

/** `--dense-regions <pages>`: pages of a 2 MiB region (0..512). */
export function parseRegionPages(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 512) throw new UnderstudyError('ERR_USAGE', `${name} takes a number of pages from 0 to 512 (of a 2 MiB region), not ${JSON.stringify(value)}`);
  return n;
}

/** `--dir host:guest`, `--dir path` (same path inside), `--dir :guest` (an empty directory). */
export function parsePreopen(value: string): { guestPath: string; hostPath?: string } {
  const i = value.indexOf(':');
  if (i < 0) return { guestPath: value, hostPath: value };
  const host = value.slice(0, i);
  const guest = value.slice(i + 1);
  if (!guest.startsWith('/')) throw new UnderstudyError('ERR_USAGE', `--dir ${value}: the guest path must be absolute`);
  return host ? { guestPath: guest, hostPath: host } : { guestPath: guest };
}

/** `--export guest:host` */
export function parseExport(value: string): [string, string] {
  const i = value.indexOf(':');
  if (i <= 0 || i === value.length - 1) throw new UnderstudyError('ERR_USAGE', `--export takes guestPath:hostDir, not ${JSON.stringify(value)}`);
  return [value.slice(0, i), value.slice(i + 1)];
}

export function parseEnv(value: string): [string, string] {
  const i = value.indexOf('=');
  if (i <= 0) throw new UnderstudyError('ERR_USAGE', `--env takes NAME=value, not ${JSON.stringify(value)}`);
  return [value.slice(0, i), value.slice(i + 1)];
}

export function collect<T>(parse: (v: string) => T) {
  return (value: string, previous: T[] = []): T[] => [...previous, parse(value)];
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}
