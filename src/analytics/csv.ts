/** RFC 4180 fields: quoted when they hold a comma, quote, CR or LF; quotes doubled. */
export function csvField(value: string | number | boolean | null): string {
  if (value === null) return ''
  const text = String(value)
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

export function csvLine(values: readonly (string | number | boolean | null)[]): string {
  return values.map(csvField).join(',') + '\r\n'
}
