// Formatting shared by the pages: dates, durations, token states, CSV.
import { isNever } from './graph';

const kDay = 24 * 3600 * 1000;

export function formatDate(iso: string | null | undefined): string {
  if (isNever(iso)) return 'never';
  const d = new Date(iso!);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

// "in 12 days", "3 hours ago": coarse, for people scanning a table.
export function relative(iso: string | null | undefined, now = Date.now()): string {
  if (isNever(iso)) return 'never';
  const ms = new Date(iso!).getTime() - now;
  const abs = Math.abs(ms);
  const [n, unit] =
    abs >= kDay
      ? [Math.round(abs / kDay), 'day']
      : abs >= 3600e3
        ? [Math.round(abs / 3600e3), 'hour']
        : abs >= 60e3
          ? [Math.round(abs / 60e3), 'minute']
          : [Math.round(abs / 1e3), 'second'];
  const text = `${n} ${unit}${n === 1 ? '' : 's'}`;
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}

export function daysUntil(iso: string, now = Date.now()): number {
  return (new Date(iso).getTime() - now) / kDay;
}

// What a token state means and what to do about it (README "Token states" says the same).
export const kStates: Record<string, { label: string; tone: 'ok' | 'warn' | 'bad' | 'neutral'; advice: string }> = {
  valid: { label: 'Valid', tone: 'ok', advice: '' },
  expired: {
    label: 'Expired',
    tone: 'bad',
    advice: 'Download a new .vpptoken in Apple Business or School Manager and renew this token.',
  },
  invalid: { label: 'Invalid', tone: 'bad', advice: 'Apple refused the token: upload a fresh .vpptoken.' },
  assignedToExternalMDM: {
    label: 'Another MDM',
    tone: 'warn',
    advice: 'Another MDM manages this location. Take it over by setting claimTokenManagementFromExternalMdm.',
  },
  duplicateLocationId: {
    label: 'Duplicate location',
    tone: 'warn',
    advice: 'Another token of this tenant is for the same location; remove one of them.',
  },
  unknown: { label: 'Unknown', tone: 'neutral', advice: 'Not synced yet.' },
};

export function stateInfo(state: string) {
  return kStates[state] ?? { label: state, tone: 'neutral' as const, advice: '' };
}

// RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled. A field
// that a spreadsheet would run as a formula gets a leading apostrophe (CSV injection).
export function csvField(value: string | number | null | undefined): string {
  let text = value === null || value === undefined ? '' : String(value);
  if (/^[=+\-@\t\r]/.test(text) && typeof value === 'string') text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(header: string[], rows: (string | number | null | undefined)[][]): string {
  return [header, ...rows].map((row) => row.map(csvField).join(',')).join('\r\n') + '\r\n';
}

export function download(filename: string, text: string, type = 'text/csv;charset=utf-8'): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
