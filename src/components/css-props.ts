/**
 * `style=${cssProps({ background: … })}`: inline styles set through the CSSOM
 * (`element.style.setProperty`) and never as a `style="…"` attribute string, so figures work
 * under a Content-Security-Policy without `style-src 'unsafe-inline'` (lit's `styleMap` writes
 * the attribute on first render, which such a policy blocks).
 */
import { noChange } from 'lit';
import { Directive, PartType, directive, type AttributePart, type PartInfo } from 'lit/directive.js';

type Props = Readonly<Record<string, string | number | null | undefined>>;

/** backgroundImage -> background-image; custom properties (--x) stay as they are. */
const cssName = (k: string) => (k.startsWith('--') ? k : k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`));

class CssProps extends Directive {
  private previous = new Set<string>();

  constructor(info: PartInfo) {
    super(info);
    if (info.type !== PartType.ATTRIBUTE || info.name !== 'style') throw new Error('cssProps belongs in a style attribute binding');
  }

  render(_props: Props): unknown {
    return noChange;
  }

  override update(part: AttributePart, [props]: [Props]): unknown {
    const style = (part.element as HTMLElement).style;
    for (const k of this.previous) if (!(k in props)) style.removeProperty(cssName(k));
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === '') style.removeProperty(cssName(k));
      else style.setProperty(cssName(k), String(v));
    }
    this.previous = new Set(Object.keys(props));
    return noChange;
  }
}

export const cssProps = directive(CssProps);
