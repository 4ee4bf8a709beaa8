/**
 * RFC 4180 fields: quoted when they hold a comma, quote, CR or LF; quotes doubled.
 *
 * Text that a spreadsheet would run as a formula (it starts with =, +, -, @, tab or CR: an
 * error message or model name chosen by whoever reports events) gets a leading apostrophe,
 * as OWASP recommends against CSV injection. Numbers and booleans are written as they are.
 */
export function csvField(value: string | number | boolean | null): string {
  if (value === null) return ''
  const text = typeof value === 'string' && /^[=+\-@\t\r]/.test(value) ? `'${value}` : String(value)
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

export function csvLine(values: readonly (string | number | boolean | null)[]): string {
  return values.map(csvField).join(',') + '\r\n'
}
