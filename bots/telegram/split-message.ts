import { fenceLine, isClosingFence } from './telegram-html.js'

/** Telegram's limit on one message's text, in UTF-16 code units after entity parsing. */
export const telegramMessageLimit = 4096

/** Room kept at the end of a piece for closing a code block the cut leaves open. */
const closingReserve = 16

interface OpenFence {
  readonly marker: string
  readonly language: string
}

/**
 * Splits Markdown into pieces of at most `limit` characters, cutting at a paragraph break when
 * there is one in the second half of the window, else at a line break, else at a space, else
 * anywhere (never inside a surrogate pair). A code block cut in two is closed at the end of one
 * piece and reopened, with its language, at the start of the next, so each piece renders alone.
 */
export function splitMessage(text: string, limit = telegramMessageLimit): string[] {
  const pieces: string[] = []
  let rest = text.trim()
  while (rest.length > 0) {
    if (rest.length <= limit) {
      pieces.push(rest)
      break
    }
    const cut = cutPosition(rest, limit - closingReserve)
    const piece = rest.slice(0, cut).trimEnd()
    const remainder = rest.slice(cut)
    const fence = unclosedFence(piece)
    if (fence === null) {
      pieces.push(piece)
      rest = remainder.trimStart()
    } else {
      pieces.push(`${piece}\n${fence.marker}`)
      rest = `${fence.marker}${fence.language}\n${remainder.replace(/^\n/, '')}`
    }
  }
  return pieces.filter((piece) => piece.trim().length > 0)
}

function cutPosition(text: string, window: number): number {
  const head = text.slice(0, window + 1)
  const minimum = Math.floor(window / 2)
  for (const separator of ['\n\n', '\n', ' ']) {
    const at = head.lastIndexOf(separator)
    if (at >= minimum) return at
  }
  const code = text.charCodeAt(window - 1)
  const splitsSurrogatePair = code >= 0xd800 && code <= 0xdbff
  return splitsSurrogatePair ? window - 1 : window
}

/** The code block left open at the end of `text`, if any. */
function unclosedFence(text: string): OpenFence | null {
  let open: OpenFence | null = null
  for (const line of text.split('\n')) {
    const fence = fenceLine.exec(line)
    if (!fence) continue
    if (open === null) open = { marker: fence[1], language: fence[2] }
    else if (isClosingFence(line, open.marker)) open = null
  }
  return open
}

