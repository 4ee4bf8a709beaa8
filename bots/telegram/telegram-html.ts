/**
 * Markdown as models write it, turned into Telegram's HTML parse mode. Every character of the
 * input is either escaped or consumed by a construct whose opening and closing markers were both
 * found, and every tag is emitted with its closing tag by the same call, so the output always
 * parses: unbalanced markup (`**bold`, an unclosed fence, `a < b`) simply stays literal text.
 * Telegram counts the limit on the text after parsing, which is never longer than the input.
 * https://core.telegram.org/bots/api#html-style
 */

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (char) => htmlEscapes[char] ?? char)
}

const htmlEscapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }

/** The opening line of a fenced code block: its marker and language. */
export const fenceLine = /^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]{0,32})/
const quotePattern = /^\s{0,3}>\s?/

export function markdownToTelegramHtml(markdown: string): string {
  const lines = markdown.split('\n')
  const out: string[] = []
  for (let i = 0; i < lines.length; i++) {
    const fence = fenceLine.exec(lines[i])
    if (fence) {
      const marker = fence[1]
      const language = fence[2]
      const body: string[] = []
      i++
      // An unclosed fence (a reply cut off by the token limit) runs to the end: still code.
      while (i < lines.length && !isClosingFence(lines[i], marker)) body.push(lines[i++])
      const code = escapeHtml(body.join('\n'))
      out.push(language ? `<pre><code class="language-${escapeHtml(language)}">${code}</code></pre>` : `<pre>${code}</pre>`)
      continue
    }
    if (quotePattern.test(lines[i])) {
      const quoted: string[] = []
      for (; i < lines.length && quotePattern.test(lines[i]); i++) quoted.push(convertInline(lines[i].replace(quotePattern, '')))
      i--
      out.push(`<blockquote>${quoted.join('\n')}</blockquote>`)
      continue
    }
    out.push(convertLine(lines[i]))
  }
  return out.join('\n')
}

/** A line of only the opening fence's character, at least as many: CommonMark's closing fence. */
export function isClosingFence(line: string, marker: string): boolean {
  const trimmed = line.trim()
  return trimmed.length >= marker.length && trimmed === marker[0].repeat(trimmed.length)
}

function convertLine(line: string): string {
  const heading = /^\s{0,3}#{1,6}\s+(.*?\S)\s*#*\s*$/.exec(line)
  if (heading) return `<b>${convertInline(heading[1])}</b>`
  const bullet = /^(\s*)[-*+]\s+(.*)$/.exec(line)
  if (bullet) return `${bullet[1]}• ${convertInline(bullet[2])}`
  return convertInline(line)
}

interface InlineRule {
  readonly open: string
  readonly close: string
  readonly tag: string
  /** Markers must not touch a letter or digit on the outside (snake_case, 2*3*4). */
  readonly wordBoundary: boolean
}

const inlineRules: readonly InlineRule[] = [
  { open: '**', close: '**', tag: 'b', wordBoundary: false },
  { open: '__', close: '__', tag: 'b', wordBoundary: true },
  { open: '~~', close: '~~', tag: 's', wordBoundary: false },
  { open: '||', close: '||', tag: 'tg-spoiler', wordBoundary: false },
  { open: '*', close: '*', tag: 'i', wordBoundary: true },
  { open: '_', close: '_', tag: 'i', wordBoundary: true },
]

function convertInline(text: string): string {
  let out = ''
  let literalStart = 0
  let i = 0
  while (i < text.length) {
    const match = matchInlineAt(text, i)
    if (match === null) {
      i++
      continue
    }
    out += escapeHtml(text.slice(literalStart, i)) + match.html
    i = match.end
    literalStart = i
  }
  return out + escapeHtml(text.slice(literalStart))
}

interface InlineMatch {
  readonly html: string
  readonly end: number
}

function matchInlineAt(text: string, at: number): InlineMatch | null {
  const char = text[at]
  if (char === '`') return matchCode(text, at)
  if (char === '[') return matchLink(text, at)
  for (const rule of inlineRules) {
    if (!text.startsWith(rule.open, at)) continue
    const match = matchDelimited(text, at, rule)
    if (match) return match
  }
  return null
}

function matchCode(text: string, at: number): InlineMatch | null {
  let ticks = 0
  while (text[at + ticks] === '`') ticks++
  const marker = '`'.repeat(ticks)
  const close = text.indexOf(marker, at + ticks)
  if (close <= at + ticks) return null
  return { html: `<code>${escapeHtml(text.slice(at + ticks, close))}</code>`, end: close + ticks }
}

function matchLink(text: string, at: number): InlineMatch | null {
  const link = /^\[([^\]]+)\]\(((?:https?:\/\/|tg:\/\/|mailto:)[^\s)]+)\)/.exec(text.slice(at))
  if (!link) return null
  return { html: `<a href="${escapeHtml(link[2])}">${convertInline(link[1])}</a>`, end: at + link[0].length }
}

function matchDelimited(text: string, at: number, rule: InlineRule): InlineMatch | null {
  const contentStart = at + rule.open.length
  if (contentStart >= text.length || /\s/.test(text[contentStart])) return null
  if (rule.wordBoundary && isWordChar(text[at - 1])) return null
  for (let close = text.indexOf(rule.close, contentStart + 1); close !== -1; close = text.indexOf(rule.close, close + 1)) {
    if (/\s/.test(text[close - 1])) continue
    const end = close + rule.close.length
    if (rule.wordBoundary && isWordChar(text[end])) continue
    // A single marker never closes inside a longer run: in `*a **b** c*` the italic ends at the last `*`.
    if (rule.open.length === 1 && (text[end] === rule.close || text[close - 1] === rule.close)) continue
    return { html: `<${rule.tag}>${convertInline(text.slice(contentStart, close))}</${rule.tag}>`, end }
  }
  return null
}

function isWordChar(char: string | undefined): boolean {
  return char !== undefined && /[\p{L}\p{N}]/u.test(char)
}
