// ANSI SGR colours of build logs as CSS classes. Pure: text in, segments out; the text
// stays text (log lines are untrusted and only ever become text nodes).
// eslint-disable-next-line no-control-regex
// CSI (colours are 'm'), OSC (titles, links) up to BEL or ST, charset designations, other
// two-byte escapes, and the remaining control characters (tab kept)
const ESCAPES = /\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[()*+#][0-9A-Za-z]|\x1b[@-Z\\-_]|[\x00-\x08\x0b-\x1f\x7f]/g;

export function initialStyle() {
  return {bold: false, dim: false, italic: false, underline: false, fg: null, bg: null};
}

function applySgr(style, params) {
  const codes = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
  for (let i = 0; i < codes.length; i += 1) {
    const c = codes[i];
    if (c === 0) Object.assign(style, initialStyle());
    else if (c === 1) style.bold = true;
    else if (c === 2) style.dim = true;
    else if (c === 3) style.italic = true;
    else if (c === 4) style.underline = true;
    else if (c === 22) { style.bold = false; style.dim = false; }
    else if (c === 23) style.italic = false;
    else if (c === 24) style.underline = false;
    else if (c >= 30 && c <= 37) style.fg = c - 30;
    else if (c >= 90 && c <= 97) style.fg = c - 90 + 8;
    else if (c === 39) style.fg = null;
    else if (c >= 40 && c <= 47) style.bg = c - 40;
    else if (c >= 100 && c <= 107) style.bg = c - 100 + 8;
    else if (c === 49) style.bg = null;
    else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
      const n = codes[i + 2];
      if (n < 16) style[c === 38 ? 'fg' : 'bg'] = n;
      i += 2;
    } else if ((c === 38 || c === 48) && codes[i + 1] === 2) {
      i += 4; // true colour: left as the default colour
    }
  }
}

export function classesOf(style) {
  const out = [];
  if (style.bold) out.push('ansi-bold');
  if (style.dim) out.push('ansi-dim');
  if (style.italic) out.push('ansi-italic');
  if (style.underline) out.push('ansi-underline');
  if (style.fg !== null) out.push(`ansi-fg-${style.fg}`);
  if (style.bg !== null) out.push(`ansi-bg-${style.bg}`);
  return out.join(' ');
}

// one line (no newline in it) -> [{text, cls}]; `style` carries over to the next line
export function parseLine(line, style) {
  // a carriage return redraws the line: what a terminal would show is after the last one
  const cr = line.lastIndexOf('\r');
  if (cr >= 0 && cr < line.length - 1) line = line.slice(cr + 1);
  const segments = [];
  let last = 0;
  const push = (text) => {
    if (!text) return;
    const cls = classesOf(style);
    const prev = segments[segments.length - 1];
    if (prev && prev.cls === cls) prev.text += text; // one span per run of one style
    else segments.push({text, cls});
  };
  ESCAPES.lastIndex = 0;
  let m;
  while ((m = ESCAPES.exec(line)) !== null) {
    push(line.slice(last, m.index));
    if (m[2] === 'm') applySgr(style, m[1]);
    last = ESCAPES.lastIndex;
  }
  push(line.slice(last));
  return segments;
}
